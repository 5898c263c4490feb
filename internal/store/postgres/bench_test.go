package postgres

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxlink/internal/store"
)

// BenchmarkRecord records ciphertexts one after the other (ns/op, MB/s).
// Each Record alternates with the same insert done directly with pgx
// (record row and its chunks in one transaction, no pre-check, no lock, no
// staging, no retry) into an identical schema on the same server, so that
// both see the same disk: raw-ns/op is its time and x-raw the ratio of the
// two.
func BenchmarkRecord(b *testing.B) {
	for _, size := range []int{8 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s := openTest(b)
			raw := openTest(b) // creates the identical schema
			ctx := context.Background()
			payload := bytes.Repeat([]byte{0xA5}, size)
			var storeTime, rawTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				rec := testRecord(fmt.Sprintf("01B%d-%d", b.N, i), "tenant-a", int64(size))
				start := time.Now()
				if _, _, err := s.Record(ctx, rec, bytes.NewReader(payload)); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := rawInsert(ctx, raw.pool, raw.sql, rec, payload, raw.opts.chunkSize); err != nil {
					b.Fatal(err)
				}
				storeTime += mid.Sub(start)
				rawTime += time.Since(mid)
			}
			b.StopTimer()
			b.ReportMetric(float64(storeTime.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(size)*float64(b.N)/storeTime.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(rawTime.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(storeTime)/float64(rawTime), "x-raw")
		})
	}
}

// rawInsert stores rec and its ciphertext the plain way: one transaction,
// the record row, then one INSERT per chunk.
func rawInsert(ctx context.Context, pool *pgxpool.Pool, q statements, rec store.Record, payload []byte, chunkSize int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var seq int64
		err := tx.QueryRow(ctx, q.insertRecord, rec.ID, rec.Type, rec.Sender, rec.Recipient, toNS(rec.Created), toNS(rec.RecordedAt),
			rec.Header, rec.Signature, rec.CiphertextSize, rec.Receipt, token()).Scan(&seq)
		if err != nil {
			return err
		}
		for idx := int64(0); len(payload) > 0; idx++ {
			n := min(chunkSize, len(payload))
			if _, err := tx.Exec(ctx, q.insertChunk, rec.ID, idx, payload[:n]); err != nil {
				return err
			}
			payload = payload[n:]
		}
		return nil
	})
}
