package node_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/synth"
)

// TestLargePayloadStreams sends scanned returns of 20 MB and 64 MB end to
// end — far beyond JetStream's 1 MiB message limit — and checks that each
// arrives intact with both receipts, and that no stage held the big one
// whole in memory: sender, hub and recipient all run in this process, and
// the heap in use never grows by the payload's size. (The embedded
// JetStream server keeps up to three 8 MB block buffers whatever the
// payload, which is why the 20 MB case alone could not tell.)
func TestLargePayloadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 84 MB; skipped with -short")
	}
	nw := devtest.Start(t)
	for _, tc := range []struct {
		size      int
		checkHeap bool
	}{{20 << 20, false}, {64 << 20, true}} {
		t.Run(fmt.Sprintf("%dMB", tc.size>>20), func(t *testing.T) {
			sendLarge(t, nw, tc.size, tc.checkHeap)
		})
	}
}

func sendLarge(t *testing.T, nw *devnet.Network, size int, checkHeap bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	defer debug.SetGCPercent(debug.SetGCPercent(25))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()

	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		_, err := synth.WritePDF(pw, size, 42)
		pw.CloseWithError(err)
	}()
	nta := nw.Nodes[devnet.NTAID]
	id, rc, err := nta.Node.Submit(ctx, node.Submission{
		Recipient: devnet.SapporoID, Type: "paper-return-scan", ContentType: "application/pdf",
		Payload: io.TeeReader(pr, h),
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if rc == nil || rc.EnvelopeID != id {
		t.Fatalf("no acceptance receipt for %s", id)
	}
	sent := [32]byte(h.Sum(nil))

	for {
		if _, err := nta.Node.PollReceipts(ctx, time.Second); err != nil && ctx.Err() == nil {
			t.Logf("poll: %v", err)
		}
		o, err := nta.Store.GetOutgoing(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Recorded != nil {
			if a, r := node.VerifyBoth(nta.Directory(), devnet.HubID, o); a != nil || r != nil {
				t.Fatalf("receipts do not verify: %v, %v", a, r)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no recording receipt for the 20 MB envelope")
		}
	}
	sapporo := nw.Nodes[devnet.SapporoID]
	pt, hdr, err := sapporo.Node.Open(ctx, devnet.SapporoID, id)
	if err != nil {
		t.Fatalf("open at 札幌市: %v", err)
	}
	got := sha256.New()
	n, err := io.Copy(got, pt)
	pt.Close()
	if err != nil {
		t.Fatalf("read plaintext: %v", err)
	}
	close(stop)
	<-sampled
	if [32]byte(got.Sum(nil)) != sent {
		t.Fatalf("the %d bytes opened at 札幌市 differ from what was sent", n)
	}
	if hdr.PayloadSize < uint64(size)*9/10 {
		t.Errorf("payload only %d bytes", hdr.PayloadSize)
	}
	if backlog, _ := nw.Queue().Backlog(ctx, devnet.SapporoID); backlog != 0 {
		t.Errorf("queue still holds %d after the recording receipt", backlog)
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("payload %d bytes; heap in use grew by at most %d bytes", hdr.PayloadSize, growth)
	if checkHeap && growth > int64(hdr.PayloadSize) {
		t.Errorf("heap in use grew by %d bytes for a %d byte payload: some stage holds it whole", growth, hdr.PayloadSize)
	}
}
