// Package recordingstest is the conformance suite every recordings.Store
// passes.
package recordingstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/recordings"
)

// Opener returns a store for one subtest and a function that closes it and
// opens it again on the same data (what a hub restart does).
type Opener func(t *testing.T) (s recordings.Store, reopen func() recordings.Store)

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s recordings.Store, reopen func() recordings.Store)
	}{
		{"ByNodeInOrder", byNodeInOrder},
		{"Batches", batches},
		{"RepeatNotStoredAgain", repeat},
		{"WaitWokenByPut", waitWoken},
		{"WaitEnds", waitEnds},
		{"Invalid", invalid},
		{"Concurrent", concurrent},
		{"Reopen", reopened},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, reopen := open(t)
			c.run(t, ctx, s, reopen)
		})
	}
}

const (
	nta   = "nta:hq"
	other = "lg:130001"
	brief = 50 * time.Millisecond // the wait of a read expected to find nothing
)

func receiptOf(id string, n int) []byte {
	return fmt.Appendf(nil, `{"kind":"recorded","envelope_id":%q,"n":%d}`, id, n)
}

func mustPut(t *testing.T, ctx context.Context, s recordings.Store, node, id string, rc []byte, index int64) {
	t.Helper()
	if err := s.Put(ctx, node, id, rc, index); err != nil {
		t.Fatalf("Put(%s, %s): %v", node, id, err)
	}
}

func mustAfter(t *testing.T, ctx context.Context, s recordings.Store, node string, after uint64, limit int, wait time.Duration) []recordings.Stored {
	t.Helper()
	got, err := s.After(ctx, node, after, limit, wait)
	if err != nil {
		t.Fatalf("After(%s, %d, %d): %v", node, after, limit, err)
	}
	return got
}

func byNodeInOrder(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	if last, err := s.Last(ctx); err != nil || last != 0 {
		t.Fatalf("Last of an empty store = %d, %v; want 0", last, err)
	}
	if got := mustAfter(t, ctx, s, nta, 0, 10, brief); len(got) != 0 {
		t.Fatalf("an empty store returned %d receipts", len(got))
	}
	a, b, c := ulid.Make().String(), ulid.Make().String(), ulid.Make().String()
	mustPut(t, ctx, s, nta, a, receiptOf(a, 1), 7)
	mustPut(t, ctx, s, other, b, receiptOf(b, 2), 8)
	mustPut(t, ctx, s, nta, c, receiptOf(c, 3), 9)
	all := mustAfter(t, ctx, s, nta, 0, 10, brief)
	if len(all) != 2 || !bytes.Equal(all[0].Receipt, receiptOf(a, 1)) || !bytes.Equal(all[1].Receipt, receiptOf(c, 3)) ||
		all[0].LedgerIndex != 7 || all[1].LedgerIndex != 9 || all[0].Seq == 0 || all[1].Seq <= all[0].Seq {
		t.Fatalf("receipts for %s = %+v; want a's (ledger 7) then c's (ledger 9), increasing sequences", nta, all)
	}
	if got := mustAfter(t, ctx, s, other, 0, 10, brief); len(got) != 1 || got[0].LedgerIndex != 8 {
		t.Fatalf("receipts for %s = %+v; want b's alone", other, got)
	}
	rest := mustAfter(t, ctx, s, nta, all[0].Seq, 10, brief)
	if len(rest) != 1 || rest[0].Seq != all[1].Seq {
		t.Fatalf("after the first sequence: %+v; want c's alone", rest)
	}
	if got := mustAfter(t, ctx, s, nta, all[1].Seq, 10, brief); len(got) != 0 {
		t.Fatalf("after the last sequence: %+v; want none", got)
	}
	if last, err := s.Last(ctx); err != nil || last < all[1].Seq {
		t.Fatalf("Last = %d, %v; want at least %d", last, err, all[1].Seq)
	}
}

func batches(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	const n, limit = 250, 100
	for i := range n {
		id := ulid.Make().String()
		mustPut(t, ctx, s, nta, id, receiptOf(id, i), int64(i))
		oid := ulid.Make().String()
		mustPut(t, ctx, s, other, oid, receiptOf(oid, -1), 1)
	}
	var after uint64
	i := 0
	for i < n {
		got := mustAfter(t, ctx, s, nta, after, limit, brief)
		if len(got) == 0 || len(got) > limit {
			t.Fatalf("batch after %d: %d receipts; want 1 to %d", after, len(got), limit)
		}
		for _, r := range got {
			if r.LedgerIndex != int64(i) || r.Seq <= after || !bytes.Contains(r.Receipt, fmt.Appendf(nil, `"n":%d}`, i)) {
				t.Fatalf("receipt %d: %s (ledger %d, seq %d after %d)", i, r.Receipt, r.LedgerIndex, r.Seq, after)
			}
			after = r.Seq
			i++
		}
	}
	if got := mustAfter(t, ctx, s, nta, after, limit, brief); len(got) != 0 {
		t.Fatalf("after the last: %d receipts; want none", len(got))
	}
}

func repeat(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	id := ulid.Make().String()
	mustPut(t, ctx, s, nta, id, receiptOf(id, 1), 3)
	mustPut(t, ctx, s, nta, id, receiptOf(id, 1), 3)
	if got := mustAfter(t, ctx, s, nta, 0, 10, brief); len(got) != 1 {
		t.Fatalf("a receipt stored twice is read %d times; want once", len(got))
	}
}

func waitWoken(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	const wait = 20 * time.Second
	id := ulid.Make().String()
	type result struct {
		got []recordings.Stored
		err error
		in  time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		got, err := s.After(ctx, nta, 0, 10, wait)
		done <- result{got, err, time.Since(start)}
	}()
	// Another node's receipt first: it must not end the wait.
	oid := ulid.Make().String()
	mustPut(t, ctx, s, other, oid, receiptOf(oid, 0), 1)
	time.Sleep(100 * time.Millisecond) // let the read start waiting, so that the wake, not the first read, finds it
	mustPut(t, ctx, s, nta, id, receiptOf(id, 1), 2)
	r := <-done
	if r.err != nil || len(r.got) != 1 || r.got[0].LedgerIndex != 2 {
		t.Fatalf("a read waiting for %s returned %+v, %v; want the receipt stored while it waited", nta, r.got, r.err)
	}
	if r.in >= wait {
		t.Fatalf("the read returned after %v, its whole wait: a Put did not wake it", r.in)
	}
}

func waitEnds(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	if got, err := s.After(ctx, nta, 0, 10, brief); err != nil || len(got) != 0 {
		t.Fatalf("a read with nothing to find = %+v, %v; want none and no error when its wait ends", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.After(cctx, nta, 0, 10, time.Minute); err == nil {
		t.Fatal("a read with a cancelled context returned no error")
	}
}

func invalid(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	id := ulid.Make().String()
	cases := []struct {
		name, node, id string
		rc             []byte
		index          int64
	}{
		{"empty node", "", id, receiptOf(id, 1), 1},
		{"node without kind", "hq", id, receiptOf(id, 1), 1},
		{"node with a subject wildcard", "nta:h>", id, receiptOf(id, 1), 1},
		{"empty id", nta, "", receiptOf(id, 1), 1},
		{"not a ULID", nta, "lg:011002", receiptOf(id, 1), 1},
		{"empty receipt", nta, id, nil, 1},
		{"oversized receipt", nta, id, bytes.Repeat([]byte("x"), 1<<20), 1},
		{"negative ledger index", nta, id, receiptOf(id, 1), -1},
	}
	for _, c := range cases {
		if err := s.Put(ctx, c.node, c.id, c.rc, c.index); !errors.Is(err, recordings.ErrInvalid) {
			t.Errorf("Put with %s: %v, want ErrInvalid", c.name, err)
		}
	}
	for _, c := range []struct {
		name, node string
		limit      int
	}{{"limit 0", nta, 0}, {"limit above MaxLimit", nta, recordings.MaxLimit + 1}, {"bad node", "*", 10}} {
		if _, err := s.After(ctx, c.node, 0, c.limit, brief); !errors.Is(err, recordings.ErrInvalid) {
			t.Errorf("After with %s: %v, want ErrInvalid", c.name, err)
		}
	}
	if last, err := s.Last(ctx); err != nil || last != 0 {
		t.Errorf("after refused Puts, Last = %d, %v; want 0: nothing stored", last, err)
	}
}

func concurrent(t *testing.T, ctx context.Context, s recordings.Store, _ func() recordings.Store) {
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := ulid.Make().String()
			errs[i] = s.Put(ctx, nta, id, receiptOf(id, i), int64(i))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put %d: %v", i, err)
		}
	}
	got := mustAfter(t, ctx, s, nta, 0, recordings.MaxLimit, brief)
	seen := map[int64]bool{}
	for i, r := range got {
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Fatalf("sequences not increasing: %d after %d", r.Seq, got[i-1].Seq)
		}
		seen[r.LedgerIndex] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("%d concurrent Puts read back as %d receipts (%d distinct); want each once", n, len(got), len(seen))
	}
}

func reopened(t *testing.T, ctx context.Context, s recordings.Store, reopen func() recordings.Store) {
	id := ulid.Make().String()
	mustPut(t, ctx, s, nta, id, receiptOf(id, 1), 5)
	before := mustAfter(t, ctx, s, nta, 0, 10, brief)
	s = reopen()
	after := mustAfter(t, ctx, s, nta, 0, 10, brief)
	if len(after) != 1 || after[0].Seq != before[0].Seq || after[0].LedgerIndex != 5 {
		t.Fatalf("after reopening: %+v; want %+v", after, before)
	}
	next := ulid.Make().String()
	mustPut(t, ctx, s, nta, next, receiptOf(next, 2), 6)
	got := mustAfter(t, ctx, s, nta, before[0].Seq, 10, brief)
	if len(got) != 1 || got[0].Seq <= before[0].Seq {
		t.Fatalf("a Put after reopening: %+v; want one receipt with a sequence above %d", got, before[0].Seq)
	}
}
