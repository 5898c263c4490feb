package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/receipt"
)

// TestDeadRecipientDoesNotBlockOthers stops 東京都's node, sends to every
// recipient, and checks that everyone else records everything while 東京都's
// share waits in its queue; then restarts the node and checks it drains.
func TestDeadRecipientDoesNotBlockOthers(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tokyo := nw.Nodes[devnet.TokyoID]
	if err := tokyo.Stop(); err != nil {
		t.Fatalf("stop 東京都: %v", err)
	}
	delete(nw.Nodes, devnet.TokyoID)

	nta := nw.Nodes[devnet.NTAID].Node
	const perRecipient = 20
	sent := map[string][]string{}
	for i := range perRecipient * len(nw.Layout.Recipients) {
		rcpt := nw.Layout.Recipients[i%len(nw.Layout.Recipients)]
		id, _, err := nta.Submit(ctx, node.Submission{
			Recipient: rcpt, Type: "income-tax-return", ContentType: "application/xml",
			Payload: bytes.NewReader(fmt.Appendf(nil, "<r n=\"%d\"/>", i)),
		})
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		sent[rcpt] = append(sent[rcpt], id)
	}

	recorded := func(rcpt string) int64 { return nw.Recorded(ctx, rcpt) }
	for _, rcpt := range nw.Layout.Recipients {
		if rcpt == devnet.TokyoID {
			continue
		}
		for recorded(rcpt) < perRecipient {
			if ctx.Err() != nil {
				t.Fatalf("%s recorded %d of %d while 東京都 was down: a dead recipient held up the others", rcpt, recorded(rcpt), perRecipient)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	backlog, err := nw.Queue().Backlog(ctx, devnet.TokyoID)
	if err != nil {
		t.Fatal(err)
	}
	if backlog != perRecipient {
		t.Errorf("東京都's queue holds %d, want %d while its node is down", backlog, perRecipient)
	}
	if nw.Hub.Hub.Stats().Retries == 0 {
		t.Errorf("no delivery retries counted while 東京都 was down")
	}

	// Bring 東京都 back: its queue drains. The hub's backoff may have grown
	// to tens of seconds by now; the deadline allows for it.
	n, _ := nw.Layout.Node(devnet.TokyoID)
	svc, err := daemon.StartNode(ctx, n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart 東京都: %v", err)
	}
	nw.Nodes[devnet.TokyoID] = svc
	for recorded(devnet.TokyoID) < perRecipient {
		if ctx.Err() != nil {
			t.Fatalf("東京都 recorded %d of %d after it came back", recorded(devnet.TokyoID), perRecipient)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range sent[devnet.TokyoID] {
		rec, err := svc.Store.Get(ctx, devnet.TokyoID, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		rc, err := receipt.Parse(rec.Receipt)
		if err != nil || rc.Issuer != devnet.TokyoID {
			t.Errorf("%s: stored receipt %v issuer %v", id, err, rc)
		}
	}
}
