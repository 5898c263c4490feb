package daemon_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/console"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/erasure"
	"taxlink/internal/node"
	"taxlink/internal/scan"
	"taxlink/internal/scan/scantest"
)

// TestNodeQuarantinesMalware runs a node with a real clamd (whose only
// signature is a harmless test marker) and sends it a clean and an
// infected notification: the infected one is recorded (nothing accepted is
// lost) but quarantined, audited and never opened for data use; the clean
// one opens once scanned.
func TestNodeQuarantinesMalware(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network and clamd")
	}
	clamd := scantest.Start(t)
	nw := devtest.StartWith(t, devnet.Options{Prepare: func(lay *devnet.Layout) error {
		n, _ := lay.Node(devnet.SapporoID)
		return devnet.EditConfig(n.Config, func(cfg map[string]any) {
			cfg["scanner"] = map[string]any{"clamd": clamd.Address(), "every": "100ms"}
		})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	nta := nw.Nodes[devnet.NTAID].Node
	send := func(body string) string {
		id, _, err := nta.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	clean := send("<DATA><NOTE>clean</NOTE></DATA>")
	infected := send("<DATA><NOTE>" + scantest.Marker + "</NOTE></DATA>")

	svc := nw.Nodes[devnet.SapporoID]
	for _, id := range []string{clean, infected} {
		for {
			if st, _, _ := svc.Scans.State(devnet.SapporoID, id); st != scan.Pending {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("record %s was not scanned in time", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if st, v, _ := svc.Scans.State(devnet.SapporoID, infected); st != scan.Quarantined || v.Signature != scantest.SignatureReported {
		t.Errorf("infected record: state %s, verdict %+v", st, v)
	}
	if n, err := svc.Store.Count(ctx, devnet.SapporoID); err != nil || n != 2 {
		t.Errorf("recorded %d, %v; want both recorded (quarantine keeps, never drops)", n, err)
	}
	if _, _, err := svc.Records.Open(ctx, "town-user", "127.0.0.1:1", devnet.SapporoID, infected); !errors.Is(err, console.ErrQuarantined) {
		t.Errorf("opening the infected record for data use: %v, want ErrQuarantined", err)
	}
	rc, o, err := svc.Records.Open(ctx, "town-user", "127.0.0.1:1", devnet.SapporoID, clean)
	if err != nil {
		t.Fatalf("opening the clean record: %v", err)
	}
	rc.Close()
	if o.ContentType != "application/xml" {
		t.Errorf("clean record content type %q", o.ContentType)
	}
}

// TestLoadNodeSkipsErasedTenant restarts a node after a decommission (the
// tenant listed in erased-tenants.json, its key file destroyed): the node
// starts, without that tenant's key, and keeps the others.
func TestLoadNodeSkipsErasedTenant(t *testing.T) {
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := lay.Node(devnet.OutsourcerID)
	dir := filepath.Dir(n.Config)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "erased-tenants.json"), []byte(`["lg:013323"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := erasure.DestroyFile(filepath.Join(dir, "sealing-lg-013323.key")); err != nil {
		t.Fatal(err)
	}
	l, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("the node does not start after a decommission: %v", err)
	}
	defer l.Close()
	if ids := l.Node.RemoveTenantKeys("lg:013323"); len(ids) != 0 {
		t.Errorf("the erased tenant's keys were loaded: %v", ids)
	}
	if ids := l.Node.RemoveTenantKeys("lg:013030"); len(ids) != 1 {
		t.Errorf("another tenant's keys: %v, want one", ids)
	}
}
