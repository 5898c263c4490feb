package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/pki"
)

// TestHubCluster runs the hub as 3 replicas on a real JetStream cluster
// (R3, mTLS routes on loopback), sends while the replica every node uses
// stops, and checks that acceptance resumes within seconds on another
// replica, that every notification is recorded exactly once, that the
// replicas' ledgers agree, and that the stopped replica catches up when
// it returns.
func TestHubCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-replica cluster")
	}
	dir := t.TempDir()
	lay, err := devnet.Init(dir, devnet.Options{HubReplicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	nw, err := devnet.Start(ctx, lay, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	nta := nw.Nodes[devnet.NTAID]

	const total = 120
	var (
		mu       sync.Mutex
		accepted []time.Time
		ids      = map[string]bool{}
	)
	stopped := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			if i == total/3 {
				// The replica every node sends to goes away.
				if err := nw.Replicas[0].Stop(); err != nil {
					t.Errorf("stop replica 1: %v", err)
				}
				nw.Replicas[0] = nil
				stopped <- time.Now()
			}
			rcpt := lay.Recipients[i%len(lay.Recipients)]
			id, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: rcpt, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader(fmt.Sprintf("<DATA>%d</DATA>", i))})
			if errors.Is(err, node.ErrRefused) {
				t.Errorf("submission %d refused: %v", i, err)
			}
			mu.Lock()
			ids[id] = true
			if err == nil {
				accepted = append(accepted, time.Now())
			}
			mu.Unlock()
		}
	})
	wg.Wait()
	stopAt := <-stopped
	t.Logf("%d submitted in %v", total, time.Since(stopAt).Round(time.Millisecond))

	// Acceptance stopped for at most a few seconds: the first acceptance
	// after the stop came soon after it.
	mu.Lock()
	var firstAfter time.Time
	for _, at := range accepted {
		if at.After(stopAt) {
			firstAfter = at
			break
		}
	}
	mu.Unlock()
	if firstAfter.IsZero() {
		t.Fatal("nothing was accepted after replica 1 stopped")
	}
	gap := firstAfter.Sub(stopAt)
	t.Logf("acceptance resumed %v after replica 1 stopped", gap.Round(time.Millisecond))
	if gap > 10*time.Second {
		t.Errorf("acceptance stopped for %v after losing one replica, want a few seconds", gap)
	}

	// Every notification accepted, recorded once, both receipts back.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		all, acc, rec, err := nta.Store.OutgoingCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if all == total && acc == total && rec == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after losing one replica: %d in the outbox, %d accepted, %d recorded, want %d each", all, acc, rec, total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("all recorded %v after the stop", time.Since(stopAt).Round(time.Millisecond))
	var recorded int64
	for _, n := range lay.Nodes {
		for _, tenant := range n.Tenants {
			if tenant == devnet.NTAID {
				continue
			}
			c, err := nw.Nodes[n.ID].Store.Count(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			recorded += c
		}
	}
	if recorded != total || len(ids) != total {
		t.Errorf("recipients hold %d records of %d distinct submissions, want %d", recorded, len(ids), total)
	}

	// The surviving replicas' ledgers agree, and the returning one
	// catches up to the same tree.
	hubID := pki.Identity{Env: devnet.Environment, ID: devnet.HubID}
	client := devtest.Client(t, nw, devnet.NTAID, hubID)
	tree := func(listen string) string {
		t.Helper()
		resp, err := client.Get("https://" + listen + api.PathCheckpoint)
		if err != nil {
			t.Fatalf("checkpoint of %s: %v", listen, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("checkpoint of %s: HTTP %d %s", listen, resp.StatusCode, b)
		}
		body, _, _ := bytes.Cut(b, []byte("\n\n"))
		return string(body)
	}
	second, third := tree(lay.HubReplicas[1].Listen), tree(lay.HubReplicas[2].Listen)
	if second != third {
		t.Fatalf("replicas 2 and 3 disagree:\n%s\n---\n%s", second, third)
	}
	back, err := devnet.StartReplica(ctx, lay.HubReplicas[0], log)
	if err != nil {
		t.Fatalf("restart replica 1: %v", err)
	}
	nw.Replicas[0] = back
	// A delivery replica 1 held when it stopped is redelivered by another
	// replica after the ack wait, and its recording appended again: the
	// ledger may grow between the snapshots. Caught up means all three
	// agree, within the deadline.
	for {
		first := tree(lay.HubReplicas[0].Listen)
		second, third = tree(lay.HubReplicas[1].Listen), tree(lay.HubReplicas[2].Listen)
		if first == second && second == third {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("replica 1 did not catch up:\n%s\n---\n%s\n---\n%s", first, second, third)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("ledger after the run:\n%s", second)
}
