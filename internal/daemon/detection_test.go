package daemon_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/operator"
)

// TestDetectionAlertsReachSinks configures the hub with a webhook, sends it
// a burst of refused TLS handshakes (clients without a certificate), and
// checks that the built-in rule raises one alert that reaches both the
// webhook and the hub's console.
func TestDetectionAlertsReachSinks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub")
	}
	got := make(chan map[string]any, 10)
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &a) == nil && r.Header.Get("X-Taxlink-Signature") != "" {
			got <- a
		}
	}))
	defer wh.Close()
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secret, []byte("s3cret-for-hmac"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := devnet.EditConfig(lay.HubConfig, func(cfg map[string]any) {
		cfg["detection"] = map[string]any{"webhooks": []any{map[string]any{"url": wh.URL + "/alerts", "secret_file": secret}}}
	}); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, lay)
	for range 25 {
		// Without a client certificate (and without trusting the dev CA):
		// the hub refuses every handshake.
		c, err := tls.Dial("tcp", h.Addr, &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS13})
		if err == nil {
			c.Close()
		}
	}
	select {
	case a := <-got:
		if a["rule"] != "detect.handshake-failures" {
			t.Errorf("webhook alert %v", a)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no alert reached the webhook")
	}
	ops, err := operator.Open(operator.Config{Path: filepath.Join(filepath.Dir(lay.HubConfig), "data", "console.db"), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		as, _ := ops.Alerts(context.Background(), 10, false)
		if len(as) > 0 && as[0].Kind == "detect.handshake-failures" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console shows %+v, not the detection alert", as)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
