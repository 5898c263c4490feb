package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/pki"
	"taxlink/internal/receipt"
	"taxlink/internal/store/sqlite"
)

// The hot paths of the sender's side that the envelope, store and ledger
// packages do not benchmark: what the NTA node does per notification with
// receipts and its outbox (see docs/benchmarks.md).

func benchReceipt(b *testing.B, kind receipt.Kind, issuer string) *receipt.Receipt {
	b.Helper()
	return &receipt.Receipt{
		Kind: kind, EnvelopeID: ulid.Make().String(), Type: "income-tax-return",
		Sender: "nta:hq", Recipient: "lg:011002", HeaderDigest: [32]byte{1, 2, 3},
		Issuer: issuer, Time: time.Now().UTC().Truncate(time.Millisecond), Seq: 1,
	}
}

// BenchmarkReceipt measures signing a receipt and encoding it (what the hub
// and the recipient node do per notification) and parsing and verifying one
// (what the sender does three times per notification: the acceptance in
// SubmitPending, both again in VerifyBoth when the recording arrives).
func BenchmarkReceipt(b *testing.B) {
	key, err := pki.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign+marshal", func(b *testing.B) {
		r := benchReceipt(b, receipt.Accepted, "hub:kiko")
		for b.Loop() {
			if err := r.Sign(key); err != nil {
				b.Fatal(err)
			}
			if _, err := r.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		r := benchReceipt(b, receipt.Accepted, "hub:kiko")
		if err := r.Sign(key); err != nil {
			b.Fatal(err)
		}
		raw, err := r.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := receipt.Parse(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse+verify", func(b *testing.B) {
		r := benchReceipt(b, receipt.Accepted, "hub:kiko")
		if err := r.Sign(key); err != nil {
			b.Fatal(err)
		}
		raw, err := r.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			p, err := receipt.Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Verify(&key.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOutbox measures the sender's three durable SQLite commits per
// notification (WAL, synchronous=FULL): Enqueue before submitting,
// MarkAccepted with the hub's receipt, MarkRecorded with the recipient's.
// One op is one notification; commits/s is three times ops/s.
func BenchmarkOutbox(b *testing.B) {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "node.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, err := pki.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	for b.Loop() {
		acc := benchReceipt(b, receipt.Accepted, "hub:kiko")
		if err := acc.Sign(key); err != nil {
			b.Fatal(err)
		}
		accJSON, _ := acc.MarshalJSON()
		rec := *acc
		rec.Kind, rec.Issuer, rec.Signature = receipt.Recorded, "lg:011002", nil
		if err := rec.Sign(key); err != nil {
			b.Fatal(err)
		}
		recJSON, _ := rec.MarshalJSON()
		now := time.Now().UTC()
		if err := st.Enqueue(ctx, sqlite.Outgoing{
			ID: acc.EnvelopeID, Type: acc.Type, Sender: acc.Sender, Recipient: acc.Recipient,
			Created: now, EnvelopePath: "/outbox/" + acc.EnvelopeID,
		}); err != nil {
			b.Fatal(err)
		}
		if err := st.MarkAccepted(ctx, acc.EnvelopeID, accJSON, now); err != nil {
			b.Fatal(err)
		}
		if err := st.MarkRecorded(ctx, acc.EnvelopeID, recJSON, now, -1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(3*float64(b.N)/time.Since(start).Seconds(), "commits/s")
}
