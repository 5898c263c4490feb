package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
)

// TestDeliveryLoopsFollowTheQueue checks that a hub alone keeps a
// recipient's delivery loop only while something is queued for it: none at
// start, one started by an acceptance and stopped after delivery_idle,
// every envelope recorded when submissions come just around the idle time
// (the loop stopping while another is accepted), and a loop started at the
// hub's start for what was queued before it stopped.
func TestDeliveryLoopsFollowTheQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	const idle = 300 * time.Millisecond
	nw := devtest.StartWith(t, devnet.Options{Prepare: func(lay *devnet.Layout) error {
		return devnet.EditConfig(lay.HubConfig, func(cfg map[string]any) { cfg["delivery_idle"] = idle.String() })
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hub := nw.Hub
	nta := nw.Nodes[devnet.NTAID].Node
	loops := func() int { return hub.Hub.Stats().DeliveryLoops }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not so before the deadline (delivery loops: %d)", what, loops())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	consumers := func() int {
		n := 0
		for name := range hub.Queue.JetStream().StreamNames(ctx).Name() {
			if !strings.HasPrefix(name, "TL_QUEUE_") {
				continue
			}
			s, err := hub.Queue.JetStream().Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			for range s.ConsumerNames(ctx).Name() {
				n++
			}
		}
		return n
	}
	recorded := func(rcpt string) int64 { return nw.Recorded(ctx, rcpt) }
	submit := func(rcpt string, i int) {
		t.Helper()
		if _, _, err := nta.Submit(ctx, node.Submission{Recipient: rcpt, Type: "income-tax-return", ContentType: "application/xml",
			Payload: strings.NewReader(fmt.Sprintf("<r n=\"%d\"/>", i))}); err != nil {
			t.Fatalf("submit %d to %s: %v", i, rcpt, err)
		}
	}

	if n := loops(); n != 0 {
		t.Fatalf("%d delivery loops at the start with nothing queued, want 0", n)
	}
	if n := consumers(); n != 0 {
		t.Fatalf("%d queue consumers at the start with nothing queued, want 0", n)
	}

	submit(devnet.SapporoID, 0)
	if n := loops(); n != 1 {
		t.Errorf("%d delivery loops right after an acceptance for one recipient, want 1", n)
	}
	waitFor("the envelope recorded at 札幌市", func() bool { return recorded(devnet.SapporoID) == 1 })
	waitFor("the idle loop stopped", func() bool { return loops() == 0 })
	if n := consumers(); n != 0 {
		t.Errorf("%d queue consumers left after the idle stop, want 0", n)
	}

	// Submissions just around the idle time: some find the loop about to
	// stop, some find none.
	rcpts := []string{devnet.SapporoID, devnet.TokyoID}
	want := map[string]int64{devnet.SapporoID: 1}
	for i := range 24 {
		rcpt := rcpts[i%len(rcpts)]
		submit(rcpt, i+1)
		want[rcpt]++
		time.Sleep(idle/2 + rand.N(idle))
	}
	for _, rcpt := range rcpts {
		waitFor(fmt.Sprintf("%d envelopes recorded at %s", want[rcpt], rcpt), func() bool { return recorded(rcpt) == want[rcpt] })
	}
	waitFor("every idle loop stopped", func() bool { return loops() == 0 })

	// Queued while the recipient's node is down, and the hub stopped: the
	// hub's start finds the backlog and starts that loop only.
	if err := nw.Nodes[devnet.SapporoID].Stop(); err != nil {
		t.Fatal(err)
	}
	delete(nw.Nodes, devnet.SapporoID)
	for i := range 3 {
		submit(devnet.SapporoID, 100+i)
	}
	if err := hub.Stop(); err != nil {
		t.Fatal(err)
	}
	lay, _ := nw.Layout.Node(devnet.SapporoID)
	sapporo, err := daemon.StartNode(ctx, lay.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart 札幌市: %v", err)
	}
	nw.Nodes[devnet.SapporoID] = sapporo
	hub, err = daemon.StartHub(ctx, nw.Layout.HubConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart the hub: %v", err)
	}
	defer hub.Stop()
	nw.Hub = hub
	waitFor("the hub's start to begin the loop of the recipient with a backlog", func() bool { return loops() >= 1 })
	if n := loops(); n != 1 {
		t.Errorf("%d delivery loops after the start with one recipient's backlog, want 1", n)
	}
	waitFor("the backlog recorded after the restart", func() bool { return recorded(devnet.SapporoID) == want[devnet.SapporoID]+3 })
	waitFor("the loop stopped once the backlog was delivered", func() bool { return loops() == 0 })
}
