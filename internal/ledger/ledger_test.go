package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Open(dir, testOptions(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if l.Size() != 0 || l.Latest().Note != nil {
		t.Fatalf("new log: Size %d, Latest %+v; want 0 and none", l.Size(), l.Latest())
	}
	appendN(t, l, 0, 10)
	first, err := l.AppendBatch(ctx, [][]byte{entryFor(10), entryFor(11), {}, entryFor(13)})
	if err != nil || first != 10 {
		t.Fatalf("AppendBatch = %d, %v; want 10, nil", first, err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if cp.Size != 14 || cp.Origin != testOrigin {
		t.Fatalf("Checkpoint = size %d origin %q; want 14, %q", cp.Size, cp.Origin, testOrigin)
	}
	want := func(i int64) []byte {
		if i == 12 {
			return []byte{}
		}
		return entryFor(i)
	}
	check := func(l *Log) {
		t.Helper()
		if l.Size() != 14 {
			t.Fatalf("Size = %d, want 14", l.Size())
		}
		for i := range int64(14) {
			got, err := l.Entry(i)
			if err != nil || !bytes.Equal(got, want(i)) {
				t.Fatalf("Entry(%d) = %q, %v; want %q", i, got, err, want(i))
			}
		}
		if _, err := l.Entry(14); !errors.Is(err, ErrRange) {
			t.Fatalf("Entry(14) error = %v, want ErrRange", err)
		}
		root, err := l.TreeHash(14)
		if err != nil || root != cp.Hash {
			t.Fatalf("TreeHash(14) = %v, %v; want the checkpoint's %v", root, err, cp.Hash)
		}
		if got := l.Latest(); !bytes.Equal(got.Note, cp.Note) {
			t.Fatalf("Latest note differs after reopen:\n%s\nwant\n%s", got.Note, cp.Note)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l2 := openTest(t, dir)
	check(l2)
	if r := l2.Recovered(); len(r) != 0 {
		t.Fatalf("clean reopen recovered %v", r)
	}
	// The checkpoint text is the C2SP body, signed with the test key.
	n, err := note.Open(cp.Note, testVerifiers(t))
	if err != nil {
		t.Fatalf("note.Open(checkpoint): %v", err)
	}
	if want := checkpointText(testOrigin, 14, cp.Hash); n.Text != want {
		t.Fatalf("checkpoint text %q, want %q", n.Text, want)
	}
	// Appending continues after reopen.
	appendN(t, l2, 14, 3)
	if rep, err := VerifyDir(dir, testVerifiers(t)); err != nil || rep.Entries != 17 || rep.Checkpoints != 1 {
		t.Fatalf("VerifyDir = %+v, %v; want 17 entries, 1 checkpoint", rep, err)
	}
}

func TestFrontierMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var fr frontier
	for n := range int64(300) {
		want, err := tlog.StoredHashes(n, entryFor(n), reader)
		if err != nil {
			t.Fatal(err)
		}
		got := fr.add(tlog.RecordHash(entryFor(n)), nil)
		if len(got) != len(want) {
			t.Fatalf("record %d: frontier gave %d stored hashes, tlog %d", n, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("record %d: stored hash %d differs from tlog's", n, i)
			}
		}
		stored = append(stored, want...)
		root, _ := tlog.TreeHash(n+1, reader)
		if fr.root() != root {
			t.Fatalf("root after %d records differs from tlog.TreeHash", n+1)
		}
	}
}

func TestProofs(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	var cps []Checkpoint
	for _, k := range []int64{1, 1, 1, 4, 1, 8, 13, 71} { // sizes 1,2,3,7,8,16,29,100
		from := l.Size()
		batch := make([][]byte, k)
		for i := range batch {
			batch[i] = entryFor(from + int64(i))
		}
		if _, err := l.AppendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	for _, cp := range cps {
		for i := range cp.Size {
			p, err := l.InclusionProof(i, cp.Size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, cp.Size, err)
			}
			if err := tlog.CheckRecord(p, cp.Size, cp.Hash, i, tlog.RecordHash(entryFor(i))); err != nil {
				t.Fatalf("tlog.CheckRecord(%d in %d): %v", i, cp.Size, err)
			}
			if err := VerifyInclusion(cp, i, entryFor(i), p); err != nil {
				t.Fatalf("VerifyInclusion(%d in %d): %v", i, cp.Size, err)
			}
			if err := VerifyInclusion(cp, i, entryFor(i+1), p); !errors.Is(err, ErrBadProof) {
				t.Fatalf("VerifyInclusion with the wrong entry = %v, want ErrBadProof", err)
			}
		}
		if err := VerifyInclusion(cp, cp.Size, entryFor(cp.Size), nil); !errors.Is(err, ErrBadProof) {
			t.Fatalf("VerifyInclusion past the tree = %v, want ErrBadProof", err)
		}
	}
	for i, old := range cps {
		for _, new := range cps[i:] {
			p, err := l.ConsistencyProof(old.Size, new.Size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", old.Size, new.Size, err)
			}
			if old.Size < new.Size {
				if err := tlog.CheckTree(p, new.Size, new.Hash, old.Size, old.Hash); err != nil {
					t.Fatalf("tlog.CheckTree(%d → %d): %v", old.Size, new.Size, err)
				}
			}
			if err := VerifyConsistency(old, new, p); err != nil {
				t.Fatalf("VerifyConsistency(%d → %d): %v", old.Size, new.Size, err)
			}
			if old.Size < new.Size {
				if err := VerifyConsistency(new, old, nil); !errors.Is(err, ErrRollback) {
					t.Fatalf("VerifyConsistency(%d → %d) = %v, want ErrRollback", new.Size, old.Size, err)
				}
				if len(p) > 0 {
					bad := append(tlog.TreeProof(nil), p...)
					bad[0][0] ^= 1
					if err := VerifyConsistency(old, new, bad); !errors.Is(err, ErrBadProof) {
						t.Fatalf("VerifyConsistency with a flipped proof bit = %v, want ErrBadProof", err)
					}
				}
			}
		}
	}
	forked := cps[3]
	forked.Hash[0] ^= 1
	if err := VerifyConsistency(cps[3], forked, nil); !errors.Is(err, ErrFork) {
		t.Fatalf("same size, different root: %v, want ErrFork", err)
	}
	if _, err := l.InclusionProof(5, l.Size()+1); !errors.Is(err, ErrRange) {
		t.Fatalf("InclusionProof beyond the log = %v, want ErrRange", err)
	}
	if _, err := l.ConsistencyProof(5, 4); !errors.Is(err, ErrRange) {
		t.Fatalf("ConsistencyProof(5, 4) = %v, want ErrRange", err)
	}
}

func TestCheckpointUnchangedWithoutAppends(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	empty, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if empty.Size != 0 || empty.Hash != emptyTreeHash() {
		t.Fatalf("empty log checkpoint: size %d root %v", empty.Size, empty.Hash)
	}
	appendN(t, l, 0, 3)
	a, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, dir, fileCheckpoints)
	b, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Note, b.Note) {
		t.Fatalf("second Checkpoint without appends signed a new note")
	}
	if after := fileSize(t, dir, fileCheckpoints); after != before {
		t.Fatalf("checkpoints file grew from %d to %d bytes without appends", before, after)
	}
	if l.checkpointCount() != 2 {
		t.Fatalf("%d checkpoints, want 2", l.checkpointCount())
	}
}

func TestGroupCommitConcurrentAppenders(t *testing.T) {
	const appenders, each = 16, 150
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[int64][]byte{}
	)
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				data := []byte{byte(a), byte(i), byte(i >> 8)}
				data = append(data, entryFor(int64(a*each+i))...)
				idx, err := l.Append(ctx, data)
				if err != nil {
					t.Errorf("appender %d: Append: %v", a, err)
					return
				}
				mu.Lock()
				if _, dup := got[idx]; dup {
					t.Errorf("index %d returned twice", idx)
				}
				got[idx] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = appenders * each
	if l.Size() != total || len(got) != total {
		t.Fatalf("Size %d, %d distinct indexes; want %d", l.Size(), len(got), total)
	}
	for idx, want := range got {
		e, err := l.Entry(idx)
		if err != nil || !bytes.Equal(e, want) {
			t.Fatalf("Entry(%d) = %q, %v; want what Append stored there, %q", idx, e, err, want)
		}
	}
	commits := l.syncs.Load()
	t.Logf("%d appends in %d group commits (%.1f per fsync)", total, commits, float64(total)/float64(commits))
	if commits >= total*3/4 {
		t.Fatalf("%d commits for %d concurrent appends: appends are not being grouped", commits, total)
	}
	if _, err := VerifyDir(dir, testVerifiers(t)); err != nil {
		t.Fatalf("VerifyDir after concurrent appends: %v", err)
	}
}

func TestAppendErrors(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	if _, err := l.Append(ctx, make([]byte, MaxEntrySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of %d bytes = %v, want ErrTooLarge", MaxEntrySize+1, err)
	}
	if _, err := l.Append(ctx, make([]byte, MaxEntrySize)); err != nil {
		t.Fatalf("Append of exactly MaxEntrySize bytes: %v", err)
	}
	if _, err := l.AppendBatch(ctx, make([][]byte, MaxBatchEntries+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendBatch of %d entries = %v, want ErrTooLarge", MaxBatchEntries+1, err)
	}
	if _, err := l.AppendBatch(ctx, nil); !errors.Is(err, ErrRange) {
		t.Fatalf("empty AppendBatch = %v, want ErrRange", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(canceled, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context = %v, want context.Canceled", err)
	}
	if l.Size() != 1 {
		t.Fatalf("Size = %d after one good append, want 1", l.Size())
	}
	if _, err := Open(dir, testOptions(t)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writable Open = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Checkpoint(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Checkpoint after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Entry(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Entry after Close = %v, want ErrClosed", err)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 5, 5)
	other := otherOptions(t)
	tests := []struct {
		name string
		opts Options
		want error  // sentinel, or nil to only expect an error
		msg  string // substring of the message
	}{
		{"no verifier", Options{Origin: testOrigin}, nil, "Verifier is required"},
		{"bad origin", Options{Origin: "has space", Verifier: mustVerifier(t, testVKey)}, nil, "Origin"},
		{"signer of another key", Options{Origin: testOrigin, Signer: other.Signer, Verifier: mustVerifier(t, testVKey)}, nil, "but Options.Verifier is"},
		{"another origin", Options{Origin: otherOrigin, Signer: mustSigner(t, testSKey), Verifier: mustVerifier(t, testVKey)}, ErrForeign, "Options.Origin"},
		{"another verifier", Options{Origin: testOrigin, Signer: other.Signer, Verifier: other.Verifier}, ErrCorrupt, "signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(dir, tt.opts)
			if err == nil {
				l.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tt.msg)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Open error %v does not wrap %v", err, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.msg)) {
				t.Fatalf("Open error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 20, 10)
	// A torn tail that a read-only open must leave alone.
	f, err := os.OpenFile(filepath.Join(dir, fileEntries), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(appendRecord(nil, 20, entryFor(20))[:30])
	f.Close()
	before := fileSize(t, dir, fileEntries)

	opts := testOptions(t)
	opts.Signer = nil
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("read-only Open: %v", err)
	}
	defer l.Close()
	if l.Size() != 20 {
		t.Fatalf("Size = %d, want 20", l.Size())
	}
	if e, err := l.Entry(19); err != nil || !bytes.Equal(e, entryFor(19)) {
		t.Fatalf("Entry(19) = %q, %v", e, err)
	}
	if _, err := l.Append(context.Background(), []byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append on a read-only log = %v, want ErrReadOnly", err)
	}
	if _, err := l.Checkpoint(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Checkpoint on a read-only log = %v, want ErrReadOnly", err)
	}
	if r := l.Recovered(); len(r) != 1 || r[0].Kind != KindTorn {
		t.Fatalf("Recovered = %v, want one torn tail", r)
	}
	if after := fileSize(t, dir, fileEntries); after != before {
		t.Fatalf("read-only Open changed entries from %d to %d bytes", before, after)
	}
	if _, err := Open(t.TempDir(), opts); err == nil {
		t.Fatalf("read-only Open of an empty directory succeeded")
	}
}

func TestRecoveryOfCrashLeftovers(t *testing.T) {
	const n = 40
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		kinds  []Kind // recoverable kinds VerifyDir and Open report
	}{
		{"partial entry header", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileEntries, appendRecord(nil, n, entryFor(n))[:9])
		}, []Kind{KindTorn}},
		{"partial entry body", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileEntries, appendRecord(nil, n, entryFor(n))[:30])
		}, []Kind{KindTorn}},
		{"zero-filled entries tail", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileEntries, make([]byte, 4096))
		}, []Kind{KindTorn}},
		{"last entry with a bad CRC and no checkpoint over it", func(t *testing.T, dir string) {
			rec := appendRecord(nil, n, entryFor(n))
			rec[len(rec)-1] ^= 0xff
			appendBytes(t, dir, fileEntries, rec)
		}, []Kind{KindTorn}},
		{"entry written, hashes not", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileEntries, appendRecord(nil, n, entryFor(n)))
		}, []Kind{KindTorn}},
		{"partial hash slot", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileHashes, make([]byte, 13))
		}, []Kind{KindTorn}},
		{"hash slots without their entries", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileHashes, bytes.Repeat([]byte{7}, 3*32))
		}, []Kind{KindTorn}},
		{"hash slots after the last checkpoint zeroed (written, not synced, power lost)", func(t *testing.T, dir string) {
			l := openTest(t, dir)
			appendN(t, l, n, 5)
			l.Close()
			from := tlog.StoredHashCount(n)
			zeroSlots(t, dir, from, tlog.StoredHashCount(n+5)-from)
		}, []Kind{KindTorn}},
		{"one hash slot after the last checkpoint stale, later ones intact", func(t *testing.T, dir string) {
			l := openTest(t, dir)
			appendN(t, l, n, 5)
			l.Close()
			zeroSlots(t, dir, tlog.StoredHashCount(n)+2, 1)
		}, []Kind{KindTorn}},
		{"partial checkpoint", func(t *testing.T, dir string) {
			appendBytes(t, dir, fileCheckpoints, appendRecord(nil, 4, []byte("test.taxlink.invalid/ledger\n41\n"))[:25])
		}, []Kind{KindTorn}},
		{"head update interrupted", func(t *testing.T, dir string) {
			l := openTest(t, dir)
			appendN(t, l, n, 1)
			before, _ := os.ReadFile(filepath.Join(dir, fileHead))
			if _, err := l.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			l.Close()
			if err := os.WriteFile(filepath.Join(dir, fileHead), before, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []Kind{KindStaleHead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, n, 10)
			tt.damage(t, dir)
			rep, err := VerifyDir(dir, testVerifiers(t))
			if err != nil {
				t.Fatalf("VerifyDir reports a crash leftover as corruption: %v", err)
			}
			if !sameKinds(rep.Recoverable, tt.kinds) {
				t.Fatalf("VerifyDir Recoverable = %v, want kinds %v", rep.Recoverable, tt.kinds)
			}
			size := rep.Entries
			l := openTest(t, dir)
			if !sameKinds(l.Recovered(), tt.kinds) {
				t.Fatalf("Recovered = %v, want kinds %v", l.Recovered(), tt.kinds)
			}
			if l.Size() != size {
				t.Fatalf("Size after recovery = %d, want %d", l.Size(), size)
			}
			for i := range size {
				if e, err := l.Entry(i); err != nil || !bytes.Equal(e, entryFor(i)) {
					t.Fatalf("Entry(%d) after recovery = %q, %v", i, e, err)
				}
			}
			appendN(t, l, size, 2)
			if _, err := l.Checkpoint(context.Background()); err != nil {
				t.Fatalf("Checkpoint after recovery: %v", err)
			}
			l.Close()
			rep, err = VerifyDir(dir, testVerifiers(t))
			if err != nil || len(rep.Recoverable) != 0 {
				t.Fatalf("VerifyDir after recovery and new appends: %v, recoverable %v", err, rep.Recoverable)
			}
		})
	}
}

// zeroSlots overwrites count hash slots from slot with zeros, as a power
// loss can leave pages written but not synced.
func zeroSlots(t *testing.T, dir string, slot, count int64) {
	t.Helper()
	edit(t, dir, fileHashes, func(b []byte) []byte {
		_, hdrSize := recordOffsets(t, dir, fileEntries)
		clear(b[hdrSize+slot*tlog.HashSize : hdrSize+(slot+count)*tlog.HashSize])
		return b
	})
}

// TestHashesSyncedAtCheckpoints shows where the hashes file is synced: an
// append waits for the entries file only; a checkpoint and Close sync the
// hashes (TestRecoveryOfCrashLeftovers shows what a crash in between
// leaves and how Open repairs it).
func TestHashesSyncedAtCheckpoints(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 20)
	if s, h := l.syncs.Load(), l.hashSyncs.Load(); s < 20 || h != 0 {
		t.Fatalf("after 20 serial appends: %d entries syncs, %d hashes syncs; want >= 20 and 0", s, h)
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := l.hashSyncs.Load(); h != 1 {
		t.Fatalf("after a checkpoint: %d hashes syncs, want 1", h)
	}
	appendN(t, l, 20, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if h := l.hashSyncs.Load(); h != 2 {
		t.Fatalf("after Close: %d hashes syncs, want 2", h)
	}
	rep, err := VerifyDir(dir, testVerifiers(t))
	if err != nil || len(rep.Recoverable) != 0 || rep.Entries != 23 {
		t.Fatalf("VerifyDir after Close = %+v, %v; want 23 entries, nothing to recover", rep, err)
	}
}

// appendBytes appends raw bytes to a file of dir.
func appendBytes(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// sameKinds reports whether ps has exactly the given kinds, in any order.
func sameKinds(ps []Problem, kinds []Kind) bool {
	got := make([]Kind, 0, len(ps))
	for _, p := range ps {
		got = append(got, p.Kind)
	}
	want := slices.Clone(kinds)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func TestWriteFailureStopsTheLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appendN(t, l, 0, 5)
	l.hsh.Close() // the next write of hashes fails
	if _, err := l.Append(ctx, entryFor(5)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after a write error = %v, want ErrFailed", err)
	}
	if _, err := l.Append(ctx, entryFor(6)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append on a failed log = %v, want ErrFailed", err)
	}
	if _, err := l.Checkpoint(ctx); !errors.Is(err, ErrFailed) {
		t.Fatalf("Checkpoint on a failed log = %v, want ErrFailed", err)
	}
	if l.Size() != 5 {
		t.Fatalf("Size = %d after a failed append, want 5", l.Size())
	}
	l.Close()

	l2 := openTest(t, dir)
	// The failed append's record reached the entries file but not its
	// hashes: its outcome was unknown, and recovery keeps it.
	if n := l2.Size(); n != 5 && n != 6 {
		t.Fatalf("Size after reopening = %d, want 5 or 6", n)
	}
	for i := range l2.Size() {
		if e, err := l2.Entry(i); err != nil || !bytes.Equal(e, entryFor(i)) {
			t.Fatalf("Entry(%d) = %q, %v", i, e, err)
		}
	}
	appendN(t, l2, l2.Size(), 1)
}

func TestEntryDetectsChangesAfterOpen(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	appendN(t, l, 0, 3)
	offs, _ := recordOffsets(t, dir, fileEntries)
	f, err := os.OpenFile(filepath.Join(dir, fileEntries), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), offs[1]+recordHeaderSize)
	f.Close()
	if _, err := l.Entry(1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entries record 1 at offset") {
		t.Fatalf("Entry of a record changed on disk = %v, want ErrCorrupt naming record 1", err)
	}
}

func TestFileFormatBasics(t *testing.T) {
	if allZero(appendRecord(nil, 0, nil)[:recordHeaderSize]) {
		t.Fatalf("the header of an empty record 0 is all zeros: a zero-filled tail would parse as records")
	}
	h := fileHeader{kind: fileCheckpoints, origin: testOrigin}
	h.logID[3] = 7
	b := h.marshal()
	if int64(len(b)) != h.size() {
		t.Fatalf("header is %d bytes, size() says %d", len(b), h.size())
	}
	got, bad, err := readHeader(bytes.NewReader(b), fileCheckpoints)
	if err != nil || bad != "" || got != h {
		t.Fatalf("readHeader = %+v, %q, %v; want %+v", got, bad, err, h)
	}
	if _, bad, _ := readHeader(bytes.NewReader(b), fileEntries); !strings.Contains(bad, "not \"entries\"") {
		t.Fatalf("readHeader of a checkpoints header as entries: %q", bad)
	}
	b[len(b)-6] ^= 1
	if _, bad, _ := readHeader(bytes.NewReader(b), fileCheckpoints); bad != "header: CRC mismatch" {
		t.Fatalf("readHeader of a damaged header: %q", bad)
	}
	hb := headBody{count: 3}
	hb.last[0] = 1
	if got, bad := parseHeadBody(hb.marshal()); bad != "" || got != hb {
		t.Fatalf("parseHeadBody = %+v, %q", got, bad)
	}
}

func TestVerifyDirWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(ctx, entryFor(i)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			if i%7 == 6 {
				if _, err := l.Checkpoint(ctx); err != nil {
					t.Errorf("Checkpoint: %v", err)
					return
				}
			}
		}
	})
	defer wg.Wait()
	defer close(stop)
	for range 30 {
		rep, err := VerifyDir(dir, testVerifiers(t))
		if err != nil {
			t.Fatalf("VerifyDir of a log being appended to (%d entries seen): %v", rep.Entries, err)
		}
	}
}
