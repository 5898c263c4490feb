package ledger

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Result is what BenchMillion measured.
type Result struct {
	Entries       int64         // entries appended
	EntrySize     int           // bytes per entry
	BatchSize     int           // entries per AppendBatch call
	Appenders     int           // concurrent AppendBatch callers
	AppendTime    time.Duration // wall time of all appends
	AppendsPerSec float64       // Entries / AppendTime
	OpenTime      time.Duration // reopening the log (full scan and verification)
	Proofs        int           // inclusion proofs made and verified
	ProveMean     time.Duration // mean time to make one inclusion proof
	VerifyMean    time.Duration // mean time to verify one (VerifyInclusion)
	ProofHashes   int           // hashes in the longest inclusion proof
	ProofBytes    int           // bytes of that proof (32 per hash)
	BundleBytes   int           // JSON size of one proof Bundle
	DiskBytes     int64         // total size of the log's files
}

// String formats r on one line per figure.
func (r Result) String() string {
	return fmt.Sprintf("entries        %d × %d B (batches of %d, %d appenders)\n"+
		"append         %v, %.0f entries/s\n"+
		"reopen+verify  %v\n"+
		"inclusion      %d proofs: prove %v, verify %v each; %d hashes = %d B; bundle %d B\n"+
		"disk           %d B (%.1f B/entry)\n",
		r.Entries, r.EntrySize, r.BatchSize, r.Appenders,
		r.AppendTime.Round(time.Millisecond), r.AppendsPerSec,
		r.OpenTime.Round(time.Millisecond),
		r.Proofs, r.ProveMean, r.VerifyMean, r.ProofHashes, r.ProofBytes, r.BundleBytes,
		r.DiskBytes, float64(r.DiskBytes)/float64(max(r.Entries, 1)))
}

// BenchMillion creates a log in dir (which must not hold one), appends
// 1,000,000 entries of 200 pseudo-random bytes in batches of 1,000 from 4
// concurrent callers, durably (fdatasync as always), checkpoints, reopens
// the log (which verifies all of it), and then makes and verifies
// inclusion proofs of 1,000 random entries against the checkpoint.
// progress, if not nil, is called with the number of entries appended so
// far after each batch (serially). The signing key is an ephemeral one.
func BenchMillion(dir string, progress func(int)) (Result, error) {
	return Bench(dir, 1_000_000, progress)
}

// Bench is BenchMillion for total entries (at least 1,000, a multiple of
// the batch size of 1,000 is measured exactly).
func Bench(dir string, total int, progress func(int)) (Result, error) {
	if total < 1000 {
		return Result{}, fmt.Errorf("ledger: bench: %d entries, want at least 1000", total)
	}
	const (
		entrySize = 200
		batchSize = 1000
		appenders = 4
		proofs    = 1000
	)
	res := Result{Entries: int64(total), EntrySize: entrySize, BatchSize: batchSize, Appenders: appenders, Proofs: proofs}
	if _, err := os.Stat(filepath.Join(dir, fileHead)); err == nil {
		return res, fmt.Errorf("ledger: bench: %s already holds a log", dir)
	}
	skey, vkey, err := note.GenerateKey(crand.Reader, "bench.taxlink.invalid")
	if err != nil {
		return res, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return res, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return res, err
	}
	opts := Options{Origin: "bench.taxlink.invalid/ledger", Signer: signer, Verifier: verifier}
	l, err := Open(dir, opts)
	if err != nil {
		return res, err
	}
	defer func() {
		if l != nil {
			l.Close()
		}
	}()

	ctx := context.Background()
	var (
		mu     sync.Mutex
		done   int
		next   int
		errAll error
		wg     sync.WaitGroup
	)
	start := time.Now()
	for a := range appenders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(a), 1))
			batch := make([][]byte, batchSize)
			for {
				mu.Lock()
				if next >= total || errAll != nil {
					mu.Unlock()
					return
				}
				next += batchSize
				mu.Unlock()
				for i := range batch {
					e := make([]byte, entrySize)
					for j := 0; j < entrySize; j += 8 {
						v := rng.Uint64()
						for k := 0; k < 8 && j+k < entrySize; k++ {
							e[j+k] = byte(v >> (8 * k))
						}
					}
					batch[i] = e
				}
				_, err := l.AppendBatch(ctx, batch)
				mu.Lock()
				if err != nil {
					errAll = errors.Join(errAll, err)
				} else {
					done += batchSize
					if progress != nil {
						progress(done)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.AppendTime = time.Since(start)
	if errAll != nil {
		return res, errAll
	}
	res.AppendsPerSec = float64(total) / res.AppendTime.Seconds()
	if _, err := l.Checkpoint(ctx); err != nil {
		return res, err
	}
	if err := l.Close(); err != nil {
		return res, err
	}
	l = nil

	start = time.Now()
	l, err = Open(dir, opts)
	if err != nil {
		return res, err
	}
	res.OpenTime = time.Since(start)
	cp := l.Latest()
	if cp.Size != int64(total) {
		return res, fmt.Errorf("ledger: bench: checkpoint size %d after reopen, want %d", cp.Size, total)
	}

	rng := rand.New(rand.NewPCG(7, 7))
	var prove, verify time.Duration
	for range proofs {
		i := rng.Int64N(int64(total))
		entry, err := l.Entry(i)
		if err != nil {
			return res, err
		}
		t0 := time.Now()
		p, err := l.InclusionProof(i, cp.Size)
		if err != nil {
			return res, err
		}
		t1 := time.Now()
		if err := VerifyInclusion(cp, i, entry, p); err != nil {
			return res, err
		}
		verify += time.Since(t1)
		prove += t1.Sub(t0)
		res.ProofHashes = max(res.ProofHashes, len(p))
	}
	res.ProveMean = prove / proofs
	res.VerifyMean = verify / proofs
	res.ProofBytes = res.ProofHashes * 32
	b, err := l.Bundle(rng.Int64N(int64(total)))
	if err != nil {
		return res, err
	}
	j, err := b.Marshal()
	if err != nil {
		return res, err
	}
	res.BundleBytes = len(j)
	for _, name := range []string{fileEntries, fileHashes, fileCheckpoints, fileHead} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			res.DiskBytes += fi.Size()
		}
	}
	return res, nil
}
