package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"taxlink/internal/standard"
	"testing"
	"time"

	"taxlink/internal/selfcheck"
)

// runSelfcheck runs `taxlink selfcheck ARGS…` in-process through its cobra
// command and returns its error, stdout and stderr.
func runSelfcheck(t *testing.T, args ...string) (error, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	c := selfcheckCmd()
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errw)
	c.SilenceUsage, c.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := c.ExecuteContext(ctx)
	return err, out.String(), errw.String()
}

// TestSelfcheckDev runs `taxlink selfcheck --dev` end to end: a fresh dev
// network, every process checked, the report files written, and a last
// line of JSON counting every item of the catalogue.
func TestSelfcheckDev(t *testing.T) {
	outDir := filepath.Join(t.TempDir(), "report")
	err, out, errw := runSelfcheck(t, "--dev", "--out", outDir)
	if err != nil && !errors.Is(err, errFailed) {
		t.Fatalf("selfcheck --dev: %v\nstdout:\n%s\nstderr:\n%s", err, out, errw)
	}
	m := lastJSON(t, out)
	n := float64(len(standard.Catalogue()))
	if m["items"] != n {
		t.Fatalf("items = %v, want the catalogue's %v\n%s", m["items"], n, out)
	}
	sum := m["pass"].(float64) + m["fail"].(float64) + m["attested"].(float64) + m["unattested"].(float64)
	if sum != n {
		t.Errorf("pass+fail+attested+unattested = %v, want %v", sum, n)
	}
	if m["processes"] != float64(5) || m["config"] != "dev" {
		t.Errorf("processes %v config %v, want 5 and dev", m["processes"], m["config"])
	}
	if (m["fail"].(float64) > 0) != errors.Is(err, errFailed) {
		t.Errorf("fail = %v but the command returned %v", m["fail"], err)
	}
	// Nothing is attested on a fresh network.
	if m["attested"] != float64(0) {
		t.Errorf("attested = %v on a fresh network", m["attested"])
	}
	b, rerr := os.ReadFile(filepath.Join(outDir, "selfcheck.json"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	var doc selfcheck.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Reports) != 5 {
		t.Fatalf("%d reports, want 5", len(doc.Reports))
	}
	// What a fresh dev network must pass in every process: these are
	// built in or set by devnet.
	mustPass := []string{"第4-3-(4)", "第4-3-(5)", "第4-4-(2)", "第4-4-(6)", "第4-5-(1)", "第4-5-(3)", "第4-9-(2)", "第4-10-(1)", "第2-1-(3)"}
	for _, r := range doc.Reports {
		if !r.Running {
			t.Errorf("%s: not seen running", r.Participant)
		}
		for _, it := range r.Items {
			for _, id := range mustPass {
				if it.ID == id && it.Status != selfcheck.StatusPass {
					t.Errorf("%s %s: %s: %s", r.Participant, it.ID, it.Status, it.Reason)
				}
			}
		}
	}
	md, rerr := os.ReadFile(filepath.Join(outDir, "selfcheck.md"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, h := range []string{"自己点検結果", "項番", "項目", "結果", "根拠"} {
		if !strings.Contains(string(md), h) {
			t.Errorf("selfcheck.md lacks %s", h)
		}
	}
	t.Logf("selfcheck --dev:\n%s", out)
}

// TestSelfcheckConfigAndAttest checks one node's configuration written by
// `taxlink dev --init` (not running), records an attestation with the
// stop-gap command and sees the item attested.
func TestSelfcheckConfigAndAttest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	if code, out, errw := run(t, context.Background(), "dev", "--init", dir); code != 0 {
		t.Fatalf("dev --init: %d\n%s\n%s", code, out, errw)
	}
	cfg := filepath.Join(dir, "nodes", "lg-011002", "node.json")
	err, out, errw := runSelfcheck(t, "attest", "--config", cfg, "--item", "4-1-1", "--by", "tanaka", "--statement", "入室資格者名簿 2026年度版", "--valid", "30d")
	if err != nil {
		t.Fatalf("attest: %v\n%s\n%s", err, out, errw)
	}
	if err, _, _ := runSelfcheck(t, "attest", "--config", cfg, "--item", "第4-5-(1)", "--by", "tanaka", "--statement", "x"); err == nil {
		t.Errorf("an automated item was attested")
	}
	outDir := t.TempDir()
	err, out, _ = runSelfcheck(t, "--config", cfg, "--out", outDir, "--offline")
	if !errors.Is(err, errFailed) {
		t.Errorf("a node that never ran (no audit log, no backup) did not fail: %v", err)
	}
	m := lastJSON(t, out)
	if m["items"] != float64(len(standard.Catalogue())) || m["attested"] != float64(1) || m["config"] != cfg {
		t.Errorf("last line %v", m)
	}
	if !regexp.MustCompile(`第4-1-\(1\)\s+attested`).MatchString(out) {
		t.Errorf("第4-1-(1) not attested in the table:\n%s", out)
	}
	err, out, _ = runSelfcheck(t, "items")
	if err != nil {
		t.Fatal(err)
	}
	if m := lastJSON(t, out); m["items"] != float64(len(standard.Catalogue())) {
		t.Errorf("items: %v", m)
	}
}
