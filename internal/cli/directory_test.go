package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"taxlink/internal/devnet"
)

// TestDirectoryCommands walks an operator's round: show, export the body,
// edit, sign, diff, publish, and a refused rollback and forgery.
func TestDirectoryCommands(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "net")
	if code, out, errw := run(t, ctx, "dev", "--init", dir); code != 0 {
		t.Fatalf("dev --init: %s %s", out, errw)
	}
	lay, _ := devnet.ReadLayout(dir)
	hubCfg := lay.HubConfig
	current := filepath.Join(dir, "directory", "directory.json")
	v1 := filepath.Join(t.TempDir(), "v1.json")
	b, _ := os.ReadFile(current)
	if err := os.WriteFile(v1, b, 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errw := run(t, ctx, "directory", "show", "--config", hubCfg)
	if code != 0 || !strings.Contains(out, "signature verified") || !strings.Contains(out, "lg:013030") || !strings.Contains(out, "certified") {
		t.Fatalf("show: exit %d\n%s\n%s", code, out, errw)
	}

	code, out, errw = run(t, ctx, "directory", "show", "--config", hubCfg, "--body")
	if code != 0 {
		t.Fatalf("show --body: %s", errw)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(out), &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	body["version"] = 2
	for _, p := range body["participants"].([]any) {
		if m := p.(map[string]any); m["id"] == devnet.SapporoID {
			m["suspended"] = true
		}
	}
	edited, _ := json.MarshalIndent(body, "", "  ")
	bodyPath := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyPath, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(t.TempDir(), "v2.json")
	key := filepath.Join(filepath.Dir(hubCfg), "directory-signing.key")
	if code, out, errw := run(t, ctx, "directory", "sign", "--key", "enc:"+key, "--passphrase-file", filepath.Join(dir, "pki", "dev-passphrase"), "--in", bodyPath, "--out", v2); code != 0 {
		t.Fatalf("sign: %s %s", out, errw)
	}

	code, out, _ = run(t, ctx, "directory", "diff", "--config", hubCfg, v1, v2)
	if code != 0 || !strings.Contains(out, "version") || !strings.Contains(out, devnet.SapporoID) || !strings.Contains(out, "changed") {
		t.Errorf("diff: exit %d\n%s", code, out)
	}

	if code, out, errw := run(t, ctx, "directory", "publish", "--config", hubCfg, v2); code != 0 || !strings.Contains(out, "published version 2") {
		t.Fatalf("publish: exit %d\n%s\n%s", code, out, errw)
	}
	if code, _, errw := run(t, ctx, "directory", "publish", "--config", hubCfg, v1); code == 0 || !strings.Contains(errw, "older") {
		t.Errorf("publishing version 1 after 2: exit %d, %q", code, errw)
	}
	signed, _ := os.ReadFile(v2)
	var doc struct {
		Body      []byte `json:"body"`
		Signature []byte `json:"signature"`
	}
	if err := json.Unmarshal(signed, &doc); err != nil {
		t.Fatal(err)
	}
	doc.Body = bytes.Replace(doc.Body, []byte(`"suspended": true`), []byte(`"suspended": false`), 1)
	forged, _ := json.Marshal(doc)
	forgedPath := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(forgedPath, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errw := run(t, ctx, "directory", "show", "--config", hubCfg, forgedPath); code == 0 || !strings.Contains(errw, "signature") {
		t.Errorf("forged directory shown: exit %d, %q", code, errw)
	}
}
