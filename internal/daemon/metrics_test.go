package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/node"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAndHealth checks the hub's and a node's /metrics, /healthz
// and /readyz after a notification went through.
func TestMetricsAndHealth(t *testing.T) {
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	h := startHub(t, lay)
	sap, _ := lay.Node(devnet.SapporoID)
	ns, err := daemon.StartNode(ctx, sap.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	if _, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")}); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []*daemon.Service{h, ns} {
		if svc.MetricsAddr == "" {
			t.Fatal("no metrics listener")
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := get(t, "http://"+svc.MetricsAddr+p); code != 200 {
				t.Errorf("%s: %d %s", p, code, body)
			}
		}
	}
	_, hubMetrics := get(t, "http://"+h.MetricsAddr+"/metrics")
	for _, want := range []string{
		`taxlink_hub_accepted_total{type="income-tax-return"} 1`,
		`taxlink_hub_backlog{recipient="lg:011002"}`,
		`taxlink_hub_backlog_oldest_seconds{recipient="lg:130001"} 0`,
		"taxlink_hub_accept_seconds_bucket", "taxlink_hub_ledger_append_seconds_bucket",
		"taxlink_cert_expiry_seconds", "taxlink_disk_free_bytes", "taxlink_auth_failures_total",
		"taxlink_hub_blob_bytes 0",
		`taxlink_hub_accept_step_seconds_count{step="lookup"} 1`, `taxlink_hub_accept_step_seconds_count{step="queue"} 1`,
		`taxlink_hub_accept_step_seconds_count{step="ledger"} 1`, `taxlink_hub_accept_step_seconds_count{step="receipt"} 1`,
		"taxlink_hub_delivery_loops", "taxlink_hub_receipt_waits",
	} {
		if !strings.Contains(hubMetrics, want) {
			t.Errorf("hub metrics lack %q", want)
		}
	}
	// The node records asynchronously; wait for its counter.
	for {
		_, nodeMetrics := get(t, "http://"+ns.MetricsAddr+"/metrics")
		if strings.Contains(nodeMetrics, `taxlink_node_recorded_total{type="income-tax-return"} 1`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node metrics never counted the recording:\n%s", nodeMetrics)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeMetricsNameNoTenant records for two towns on the outsourcer's
// node and checks that its metrics name neither: nothing an outsourcer's
// monitoring sees tells one tenant's activity from another's.
func TestNodeMetricsNameNoTenant(t *testing.T) {
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	startHub(t, lay)
	corp, _ := lay.Node(devnet.OutsourcerID)
	ns, err := daemon.StartNode(ctx, corp.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	for _, town := range corp.Tenants[:2] {
		if _, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: town, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		_, body := get(t, "http://"+ns.MetricsAddr+"/metrics")
		if strings.Contains(body, `taxlink_node_recorded_total{type="income-tax-return"} 2`) {
			for _, town := range corp.Tenants {
				if strings.Contains(body, town) || strings.Contains(body, strings.TrimPrefix(town, "lg:")) {
					t.Errorf("the outsourcer's metrics name the tenant %s", town)
				}
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the node never counted both recordings:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
