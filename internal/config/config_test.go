package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeNode writes a valid node configuration with its referenced files
// into a temporary directory, after applying mutate to its JSON object.
func writeNode(t *testing.T, mutate func(m map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"tls.pem", "tls.key", "ca.pem", "signing.key", "directory.json", "directory-key.pem", "sealing.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := map[string]any{
		"role": "node", "id": "lg:011002", "environment": "dev", "listen": "127.0.0.1:7001", "data_dir": "data",
		"tls":         map[string]any{"cert": "tls.pem", "key": "tls.key", "ca": "ca.pem"},
		"signing_key": "signing.key", "directory": "directory.json", "directory_key": "directory-key.pem",
		"hub_url": "https://127.0.0.1:7000", "hub_id": "hub:kiko",
		"sealing_keys": []any{map[string]any{"tenant": "lg:011002", "key_id": "k1", "kem": 80, "file": "sealing.key"}},
	}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	p := filepath.Join(dir, "node.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadNodeValid(t *testing.T) {
	c, err := LoadNode(writeNode(t, nil))
	if err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	if !filepath.IsAbs(c.DataDir) || !strings.HasPrefix(c.SealingKeys[0].File, "file:/") || !strings.HasPrefix(c.TLS.Key, "file:/") {
		t.Errorf("relative paths not resolved: data_dir %q, sealing key %q", c.DataDir, c.SealingKeys[0].File)
	}
}

// TestLoadNodeRefuses checks that each wrong value stops loading with an
// error naming the key.
func TestLoadNodeRefuses(t *testing.T) {
	cases := []struct {
		name, key string
		mutate    func(m map[string]any)
	}{
		{"wrong role", "role", func(m map[string]any) { m["role"] = "hub" }},
		{"bad check digit", "id", func(m map[string]any) { m["id"] = "lg:011003" }},
		{"unknown environment", "environment", func(m map[string]any) { m["environment"] = "staging" }},
		{"listen without port", "listen", func(m map[string]any) { m["listen"] = "127.0.0.1" }},
		{"missing data_dir", "data_dir", func(m map[string]any) { delete(m, "data_dir") }},
		{"missing cert file", "tls.cert", func(m map[string]any) { m["tls"].(map[string]any)["cert"] = "nope.pem" }},
		{"hub over http", "hub_url", func(m map[string]any) { m["hub_url"] = "http://127.0.0.1:7000" }},
		{"hub id not a hub", "hub_id", func(m map[string]any) { m["hub_id"] = "nta:hq" }},
		{"no sealing keys", "sealing_keys", func(m map[string]any) { m["sealing_keys"] = []any{} }},
		{"sealing key tenant", "sealing_keys[0].tenant", func(m map[string]any) {
			m["sealing_keys"].([]any)[0].(map[string]any)["tenant"] = "lg:1"
		}},
		{"unknown key", "listn", func(m map[string]any) { m["listn"] = "x" }},
		{"clear key outside dev", "in the clear", func(m map[string]any) { m["environment"] = "production" }},
		{"encrypted key missing", "tls.key", func(m map[string]any) { m["tls"].(map[string]any)["key"] = "enc:missing.key" }},
		{"pkcs11 without module", "keys.pkcs11_module", func(m map[string]any) { m["signing_key"] = "pkcs11:token=t;object=o" }},
		{"sealing key on a token", "sealing_keys[0].file", func(m map[string]any) {
			m["keys"] = map[string]any{"pkcs11_module": "/usr/lib/softhsm/libsofthsm2.so"}
			m["sealing_keys"].([]any)[0].(map[string]any)["file"] = "pkcs11:token=t;object=o"
		}},
		{"bad key reference", "signing_key", func(m map[string]any) { m["signing_key"] = "pkcs11:token=t;pin-value=1234" }},
		{"unknown store kind", "store.kind", func(m map[string]any) { m["store"] = map[string]any{"kind": "mysql"} }},
		{"postgres without dsn", "store.dsn", func(m map[string]any) { m["store"] = map[string]any{"kind": "postgres"} }},
		{"dsn for sqlite", "store", func(m map[string]any) { m["store"] = map[string]any{"kind": "sqlite", "dsn": "postgres://x"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadNode(writeNode(t, tc.mutate))
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			if !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "unknown field") {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key %q", err, tc.key)
			}
		})
	}
}

func TestLoadTooBig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(p, []byte(strings.Repeat(" ", MaxFileSize+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHub(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: got %v", err)
	}
}
