package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend appends 200-byte entries from 1, 8 and 64 concurrent
// goroutines, durably with group commit, and reports appends/s.
// In the same run it measures the raw rate of the naive durable
// alternative, one write and one fdatasync per entry of the same record
// bytes to a plain file in the same directory, serially (raw_fsync/s) and
// from as many goroutines (rawN_fsync/s), and reports the ledger's rate as
// a multiple of each (x_raw, x_rawN), plus entries per sync round.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run("appenders="+strconv.Itoa(n), func(b *testing.B) { benchmarkAppend(b, n) })
	}
}

func benchmarkAppend(b *testing.B, appenders int) {
	const size = 200
	dir := b.TempDir()
	l, err := Open(filepath.Join(dir, "log"), testOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	entry := make([]byte, size)
	for i := range entry {
		entry[i] = byte(i)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(ctx, entry); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()

	rec := appendRecord(nil, 0, entry)
	raw := rawFsyncRate(b, filepath.Join(dir, "raw1"), rec, 1, min(b.N, 1000))
	raw8 := rawFsyncRate(b, filepath.Join(dir, "raw8"), rec, appenders, min(b.N, 2000))
	b.ReportMetric(rate, "appends/s")
	b.ReportMetric(raw, "raw_fsync/s")
	b.ReportMetric(raw8, "rawN_fsync/s")
	b.ReportMetric(rate/raw, "x_raw")
	b.ReportMetric(rate/raw8, "x_rawN")
	b.ReportMetric(float64(b.N)/float64(max(l.syncs.Load(), 1)), "entries/fsync")
}

// rawFsyncRate writes rec n times to a plain file, each write followed by
// fdatasync, from the given number of goroutines, and returns writes/s.
func rawFsyncRate(b *testing.B, path string, rec []byte, workers, n int) float64 {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var left atomic.Int64
	left.Store(int64(n))
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := f.Write(rec); err != nil {
					b.Error(err)
					return
				}
				if err := datasync(f); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkMillion runs BenchMillion: 1,000,000 durable appends, then
// inclusion proofs at that size. It takes a while and runs only when
// selected with -bench (never as part of go test), and not with -short.
func BenchmarkMillion(b *testing.B) {
	if testing.Short() {
		b.Skip("slow")
	}
	for b.Loop() {
		res, err := BenchMillion(filepath.Join(b.TempDir(), "log"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("\n%s", res)
		b.ReportMetric(res.AppendsPerSec, "appends/s")
		b.ReportMetric(float64(res.ProveMean.Microseconds()), "prove_µs")
		b.ReportMetric(float64(res.VerifyMean.Microseconds()), "verify_µs")
		b.ReportMetric(float64(res.ProofBytes), "proof_B")
		b.ReportMetric(res.OpenTime.Seconds(), "reopen_s")
	}
}
