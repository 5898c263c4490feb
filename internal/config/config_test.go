package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{"negative disk minimum", "min_free_bytes", func(m map[string]any) { m["min_free_bytes"] = -1 }},
		{"unknown store kind", "store.kind", func(m map[string]any) { m["store"] = map[string]any{"kind": "mysql"} }},
		{"postgres without dsn", "store.dsn", func(m map[string]any) { m["store"] = map[string]any{"kind": "postgres"} }},
		{"dsn for sqlite", "store", func(m map[string]any) { m["store"] = map[string]any{"kind": "sqlite", "dsn": "postgres://x"} }},
		{"hub replica over http", "hub_urls[1]", func(m map[string]any) { m["hub_urls"] = []any{"https://127.0.0.1:7002", "http://127.0.0.1:7003"} }},
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

// TestLoadHubClusterRefuses checks the settings of a hub replica, of an
// external JetStream and of the delivery loops' idle time.
func TestLoadHubClusterRefuses(t *testing.T) {
	cluster := func(mutate func(c map[string]any)) func(m map[string]any) {
		return func(m map[string]any) {
			c := map[string]any{"name": "kiko", "server": "hub-1", "listen": "127.0.0.1:6222",
				"routes": []any{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}}
			mutate(c)
			m["cluster"] = c
		}
	}
	cases := []struct {
		name, key string
		mutate    func(m map[string]any)
	}{
		{"valid cluster", "", cluster(func(map[string]any) {})},
		{"valid external", "", func(m map[string]any) { m["jetstream"] = map[string]any{"url": "tls://a:4222,tls://b:4222"} }},
		{"cluster name", "cluster.name", cluster(func(c map[string]any) { c["name"] = "Kiko Hub" })},
		{"server name", "cluster.server", cluster(func(c map[string]any) { delete(c, "server") })},
		{"listen", "cluster.listen", cluster(func(c map[string]any) { c["listen"] = "6222" })},
		{"route", "cluster.routes[1]", cluster(func(c map[string]any) { c["routes"].([]any)[1] = "nowhere" })},
		{"even replicas", "cluster.replicas", cluster(func(c map[string]any) { c["replicas"] = 2 })},
		{"too few routes", "cluster.routes", cluster(func(c map[string]any) { c["routes"] = []any{"127.0.0.1:6222"} })},
		{"both", "jetstream", func(m map[string]any) {
			cluster(func(map[string]any) {})(m)
			m["jetstream"] = map[string]any{"url": "tls://a:4222"}
		}},
		{"external in the clear", "jetstream.url", func(m map[string]any) { m["jetstream"] = map[string]any{"url": "nats://a:4222"} }},
		{"external replicas", "jetstream.replicas", func(m map[string]any) { m["jetstream"] = map[string]any{"url": "tls://a:4222", "replicas": 4} }},
		{"delivery idle", "", func(m map[string]any) { m["delivery_idle"] = "30s" }},
		{"every loop kept", "", func(m map[string]any) { m["delivery_idle"] = "0s" }},
		{"delivery idle not a duration", "delivery_idle", func(m map[string]any) { m["delivery_idle"] = "2 minutes" }},
		{"delivery idle too short", "delivery_idle", func(m map[string]any) { m["delivery_idle"] = "1ms" }},
		{"delivery idle negative", "delivery_idle", func(m map[string]any) { m["delivery_idle"] = "-1m" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeNode(t, func(m map[string]any) {
				m["role"], m["id"] = "hub", "hub:kiko"
				delete(m, "hub_url")
				delete(m, "hub_id")
				delete(m, "sealing_keys")
				tc.mutate(m)
			})
			_, err := LoadHub(p)
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("valid configuration refused: %v", err)
			case tc.key != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.key)):
				t.Fatalf("error %v, want ErrInvalid naming %q", err, tc.key)
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

// withRetention sets the node's retention rules and legal holds.
func withRetention(rules, holds []any) func(m map[string]any) {
	return func(m map[string]any) {
		if rules != nil {
			m["retention"] = rules
		}
		if holds != nil {
			m["legal_holds"] = holds
		}
	}
}

type obj = map[string]any

func TestLoadNodeRetention(t *testing.T) {
	c, err := LoadNode(writeNode(t, withRetention(
		[]any{obj{"tenant": "lg:011002", "type": "income-tax-return", "keep": "7y"}, obj{"tenant": "lg:011002", "type": "kyuyo-shiharai", "keep": "400d"}},
		[]any{obj{"tenant": "lg:011002", "until": "2027-03-31", "reason": "audit 2026-17"}, obj{"tenant": "lg:011002", "type": "income-tax-return", "reason": "litigation"}},
	)))
	if err != nil {
		t.Fatalf("valid retention refused: %v", err)
	}
	if len(c.Retention) != 2 || c.Retention[0].Keep != "7y" || len(c.LegalHolds) != 2 || c.LegalHolds[0].Until != "2027-03-31" {
		t.Errorf("retention %+v, legal holds %+v", c.Retention, c.LegalHolds)
	}
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if got, _ := c.Retention[0].Cutoff(now); !got.Equal(time.Date(2019, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Cutoff(7y) = %v", got)
	}
	if _, err := LoadNode(writeNode(t, withRetention([]any{obj{"tenant": "lg:011002", "keep": "36h"}}, nil))); err != nil {
		t.Errorf("a rule for all types with a duration refused: %v", err)
	}
}

func TestParseKeep(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"7y":    time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC),
		"10d":   time.Date(2026, 2, 19, 12, 0, 0, 0, time.UTC),
		"36h":   time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
		"1y":    time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		"8760h": time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	} {
		k, err := ParseKeep(in)
		if err != nil {
			t.Errorf("ParseKeep(%q): %v", in, err)
			continue
		}
		if got := k.Before(now); !got.Equal(want) {
			t.Errorf("ParseKeep(%q).Before(%v) = %v, want %v", in, now, got, want)
		}
	}
	for _, in := range []string{"", "0y", "-1y", "7", "7 y", "7Y", "1h", "-48h", "201y", "99999999d", "1y2d", "07y"} {
		if k, err := ParseKeep(in); err == nil {
			t.Errorf("ParseKeep(%q) = %+v, want an error", in, k)
		}
	}
}

func TestLegalHoldInForce(t *testing.T) {
	h := LegalHold{Tenant: "lg:011002", Until: "2027-03-31", Reason: "x"}
	jst := time.FixedZone("JST", 9*60*60)
	for _, c := range []struct {
		now  time.Time
		want bool
	}{
		{time.Date(2027, 3, 31, 23, 59, 59, 0, jst), true},
		{time.Date(2027, 4, 1, 0, 0, 0, 0, jst), false},
		{time.Date(2027, 3, 31, 14, 59, 0, 0, time.UTC), true},
		{time.Date(2027, 3, 31, 15, 0, 0, 0, time.UTC), false},
	} {
		if got := h.InForce(c.now); got != c.want {
			t.Errorf("hold until %s InForce(%v) = %v, want %v", h.Until, c.now, got, c.want)
		}
	}
	if !(LegalHold{Tenant: "t"}).InForce(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("a hold without until is not in force")
	}
	for _, c := range []struct {
		hold, rule string
		want       bool
	}{{"", "a", true}, {"", "", true}, {"a", "a", true}, {"a", "", true}, {"a", "b", false}} {
		if got := (LegalHold{Tenant: "t", Type: c.hold}).Covers("t", c.rule); got != c.want {
			t.Errorf("hold of type %q Covers(rule type %q) = %v, want %v", c.hold, c.rule, got, c.want)
		}
	}
	if (LegalHold{Tenant: "t"}).Covers("u", "") {
		t.Error("a hold covers another tenant")
	}
}

func TestLoadNodeRefusesRetention(t *testing.T) {
	rule := func(kv ...string) obj {
		o := obj{"tenant": "lg:011002", "type": "income-tax-return", "keep": "7y"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(o, kv[i])
			} else {
				o[kv[i]] = kv[i+1]
			}
		}
		return o
	}
	hold := func(kv ...string) obj {
		o := obj{"tenant": "lg:011002", "reason": "audit"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(o, kv[i])
			} else {
				o[kv[i]] = kv[i+1]
			}
		}
		return o
	}
	cases := []struct {
		name, key    string
		rules, holds []any
	}{
		{"rule without tenant", "retention[0].tenant", []any{rule("tenant", "-")}, nil},
		{"rule of a foreign tenant", "retention[0].tenant", []any{rule("tenant", "lg:131016")}, nil},
		{"rule with a bad type", "retention[0].type", []any{rule("type", "Income Tax")}, nil},
		{"rule without keep", "retention[0].keep", []any{rule("keep", "-")}, nil},
		{"rule with a bad keep", "retention[0].keep", []any{rule("keep", "7 years")}, nil},
		{"rule keeping less than a day", "retention[0].keep", []any{rule("keep", "1h")}, nil},
		{"rule keeping zero", "retention[0].keep", []any{rule("keep", "0d")}, nil},
		{"duplicate rule", "retention[1]", []any{rule(), rule("keep", "8y")}, nil},
		{"all types and one type", "retention[0]", []any{rule(), rule("type", "-")}, nil},
		{"rule with an unknown key", "kep", []any{rule("kep", "7y")}, nil},
		{"hold without tenant", "legal_holds[0].tenant", nil, []any{hold("tenant", "-")}},
		{"hold of a foreign tenant", "legal_holds[0].tenant", nil, []any{hold("tenant", "lg:131016")}},
		{"hold with a bad type", "legal_holds[0].type", nil, []any{hold("type", "-x")}},
		{"hold with a bad until", "legal_holds[0].until", nil, []any{hold("until", "2027-02-30")}},
		{"hold with until as a timestamp", "legal_holds[0].until", nil, []any{hold("until", "2027-03-31T00:00:00Z")}},
		{"hold without reason", "legal_holds[0].reason", nil, []any{hold("reason", "-")}},
		{"hold with a blank reason", "legal_holds[0].reason", nil, []any{hold("reason", "  ")}},
		{"hold with a long reason", "legal_holds[0].reason", nil, []any{hold("reason", strings.Repeat("x", 201))}},
		{"hold with a control character", "legal_holds[0].reason", nil, []any{hold("reason", "a\x00b")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadNode(writeNode(t, withRetention(tc.rules, tc.holds)))
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name the key %q", err, tc.key)
			}
		})
	}
}
