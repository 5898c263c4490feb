package hub_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/pki"
)

// TestBackpressure drives the hub over capacity and short of disk, and a
// recipient short of disk: senders get a retry-later code at once (never a
// timeout), keep their envelopes and resume on their own; nothing
// accepted earlier is lost.
func TestBackpressure(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := nw.Hub.Hub
	nta := nw.Nodes[devnet.NTAID]
	submit := func() (string, error) {
		id, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
		return id, err
	}
	retryable := func(err error, want api.Code) {
		t.Helper()
		if e, ok := api.AsError(err); !ok || e.Code != want || errors.Is(err, node.ErrRefused) {
			t.Fatalf("got %v, want the retryable %s", err, want)
		}
	}

	// Hub short of disk: asks more free space than there is.
	h.SetLimits(256, 1<<62)
	id1, err := submit()
	retryable(err, api.CodeDiskLow)

	// Hub at capacity: one upload holds the only slot.
	h.SetLimits(1, 1)
	pr, pw := io.Pipe()
	b := newBuilder(t, nw)
	_, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
	body := wire(t, hb, sig, ct)
	slow := make(chan error, 1)
	go func() {
		c := devtest.Client(t, nw, devnet.NTAID, pki.Identity{Env: devnet.Environment, ID: devnet.HubID})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+nw.Hub.Addr+api.PathSubmit, pr)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	if _, err := pw.Write(body[:10]); err != nil {
		t.Fatal(err)
	}
	// The slow upload must hold the slot before the next submission
	// arrives: a sender whose preparation is quick got there first.
	for h.InFlight() < 1 {
		if ctx.Err() != nil {
			t.Fatal("the slow upload never reached the hub")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	id2, err := submit()
	retryable(err, api.CodeBusy)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("busy answer took %s: it must be immediate", d)
	}
	pw.Write(body[10:])
	pw.Close()
	<-slow

	// Capacity and disk back: the outbox releases both by itself.
	h.SetLimits(256, 1)
	nta.Node.ResubmitPending(ctx)
	for _, id := range []string{id1, id2} {
		if o, _ := nta.Store.GetOutgoing(ctx, id); o.Accepted == nil {
			t.Fatalf("%s not accepted after the hub recovered (last error %q)", id, o.LastError)
		}
	}

	// A recipient short of disk: the hub keeps the envelope and retries.
	// First let the three envelopes above arrive.
	sapporo := nw.Nodes[devnet.SapporoID]
	for {
		if n, _ := sapporo.Store.Count(ctx, devnet.SapporoID); n == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the envelopes accepted after the recovery were not recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sapporo.Node.SetMinFreeBytes(1 << 62)
	before, _ := sapporo.Store.Count(ctx, devnet.SapporoID)
	retries := h.Stats().Retries
	if _, err := submit(); err != nil {
		t.Fatal(err)
	}
	for h.Stats().Retries == retries {
		if ctx.Err() != nil {
			t.Fatal("the hub never retried a delivery refused for disk space")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := sapporo.Store.Count(ctx, devnet.SapporoID); n != before {
		t.Fatalf("the recipient recorded while short of disk")
	}
	sapporo.Node.SetMinFreeBytes(1)
	for {
		if n, _ := sapporo.Store.Count(ctx, devnet.SapporoID); n == before+1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("not delivered after the recipient recovered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
