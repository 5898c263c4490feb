package hub_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/ledger"
	"taxlink/internal/node"
	"taxlink/internal/notekey"
	"taxlink/internal/receipt"
)

// TestReceiptsInLedger checks that each acceptance receipt names its ledger
// entry, that the hub proves the entry's inclusion in a signed checkpoint
// anyone can verify with the directory, that a node may not fetch proofs
// about other participants' envelopes, and that the node's witness
// follows the ledger as it grows.
func TestReceiptsInLedger(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nta := nw.Nodes[devnet.NTAID]
	verifiers, err := notekey.FromDirectory(nw.Hub.Directory())
	if err != nil {
		t.Fatal(err)
	}
	var indexes []uint64
	for i := range 5 {
		_, rc, err := nta.Node.Submit(ctx, node.Submission{Recipient: nw.Layout.Recipients[i%len(nw.Layout.Recipients)], Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
		if err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, rc.Seq)
		raw, err := nta.Node.Bundle(ctx, int64(rc.Seq))
		if err != nil {
			t.Fatalf("bundle for ledger entry %d: %v", rc.Seq, err)
		}
		b, err := ledger.ParseBundle(raw)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.VerifyBundle(b, verifiers)
		if err != nil {
			t.Fatalf("bundle does not verify: %v", err)
		}
		want, _ := rc.LedgerEntry()
		if !bytes.Equal(b.Entry, want) || b.Index != int64(rc.Seq) || cp.Size <= b.Index {
			t.Errorf("bundle proves entry %d of %d, not the receipt's", b.Index, cp.Size)
		}
		if err := nta.Node.CheckLedger(ctx); err != nil {
			t.Errorf("witness refused a growing ledger: %v", err)
		}
	}
	for i := 1; i < len(indexes); i++ {
		if indexes[i] <= indexes[i-1] {
			t.Errorf("ledger indexes not increasing: %v", indexes)
		}
	}
	// The recording receipts come back with their ledger index; each is
	// proved like an acceptance.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := nta.Node.PollReceipts(ctx, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, acc, rec, _ := nta.Store.OutgoingCounts(ctx); rec == acc {
			break
		}
	}
	page, err := nta.Store.ListOutgoing(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page {
		if o.Recorded == nil || o.RecordedIndex < 0 {
			t.Fatalf("%s: recording receipt %v, ledger index %d", o.ID, o.Recorded != nil, o.RecordedIndex)
		}
		raw, err := nta.Node.Bundle(ctx, o.RecordedIndex)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ledger.ParseBundle(raw)
		if _, err := ledger.VerifyBundle(b, verifiers); err != nil {
			t.Fatalf("recording bundle: %v", err)
		}
		rc, _ := receipt.Parse(o.Recorded)
		want, _ := rc.LedgerEntry()
		if !bytes.Equal(b.Entry, want) {
			t.Errorf("%s: ledger entry %d is not the recording receipt", o.ID, o.RecordedIndex)
		}
	}

	// 東京都's node may not see the proof of an envelope to 札幌市.
	_, rc, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Nodes[devnet.TokyoID].Node.Bundle(ctx, int64(rc.Seq)); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("東京都 got the proof of an envelope to 札幌市: %v", err)
	}
}
