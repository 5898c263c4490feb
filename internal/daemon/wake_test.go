package daemon_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/node"
)

// TestBacklogDrainsWhenRecipientReturns stops a recipient's node until
// the hub's deliveries to it back off for many seconds, restarts it, and
// checks that the waiting notifications are delivered within seconds (the
// hub probes an unreachable node and wakes its sleeping deliveries)
// rather than when their backoff runs out.
func TestBacklogDrainsWhenRecipientReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the delivery backoff to grow")
	}
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	nw, err := devnet.Start(ctx, lay, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	if err := nw.Nodes[devnet.SapporoID].Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := nw.Nodes[devnet.NTAID].Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<DATA>" + string(rune('a'+i)) + "</DATA>")}); err != nil {
			t.Fatal(err)
		}
	}
	// Let every delivery back off to attempt 8 or more (up to 25.6 s).
	for nw.Hub.Hub.DeliveryFailures()[devnet.SapporoID] < 24 {
		if ctx.Err() != nil {
			t.Fatal("the deliveries did not back off in time")
		}
		time.Sleep(100 * time.Millisecond)
	}
	n, _ := lay.Node(devnet.SapporoID)
	back, err := daemon.StartNode(ctx, n.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Stop()
	restarted := time.Now()
	for {
		if c, _ := back.Store.Count(ctx, devnet.SapporoID); c == 3 {
			break
		}
		if time.Since(restarted) > 8*time.Second {
			t.Fatalf("the backlog was not delivered within 8 s of the node's return (the backoff is up to 25.6 s)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("delivered %v after the node returned", time.Since(restarted).Round(100*time.Millisecond))
}
