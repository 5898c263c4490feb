// Package acceptancetest is the conformance suite every acceptance.Store
// passes.
package acceptancetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/acceptance"
)

// Opener returns a store for one subtest and a function that closes it and
// opens it again on the same data (what a hub restart does).
type Opener func(t *testing.T) (s acceptance.Store, reopen func() acceptance.Store)

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s acceptance.Store, reopen func() acceptance.Store)
	}{
		{"RoundTrip", roundTrip},
		{"FirstKept", firstKept},
		{"Invalid", invalid},
		{"Concurrent", concurrent},
		{"SameIDConcurrent", sameIDConcurrent},
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

func newID() string { return ulid.Make().String() }

func receiptOf(id string, n int) []byte {
	return fmt.Appendf(nil, `{"kind":"accepted","envelope_id":%q,"n":%d}`, id, n)
}

func mustGet(t *testing.T, ctx context.Context, s acceptance.Store, id string, want []byte) {
	t.Helper()
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%s): %v, want the stored receipt", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) = %s, want %s", id, got, want)
	}
}

func roundTrip(t *testing.T, ctx context.Context, s acceptance.Store, _ func() acceptance.Store) {
	id := newID()
	if _, err := s.Get(ctx, id); !errors.Is(err, acceptance.ErrNotFound) {
		t.Fatalf("Get of an envelope never stored: %v, want ErrNotFound", err)
	}
	rc := receiptOf(id, 1)
	stored, err := s.Put(ctx, id, rc)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if !bytes.Equal(stored, rc) {
		t.Fatalf("Put returned %s, want the receipt it stored, %s", stored, rc)
	}
	mustGet(t, ctx, s, id, rc)
	if _, err := s.Get(ctx, newID()); !errors.Is(err, acceptance.ErrNotFound) {
		t.Fatalf("Get of another envelope: %v, want ErrNotFound", err)
	}
}

func firstKept(t *testing.T, ctx context.Context, s acceptance.Store, _ func() acceptance.Store) {
	id := newID()
	first := receiptOf(id, 1)
	if _, err := s.Put(ctx, id, first); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := s.Put(ctx, id, receiptOf(id, 2))
	if err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("second Put returned %s, want the first receipt %s", got, first)
	}
	mustGet(t, ctx, s, id, first)
}

func invalid(t *testing.T, ctx context.Context, s acceptance.Store, _ func() acceptance.Store) {
	id := newID()
	cases := []struct {
		name string
		id   string
		rc   []byte
	}{
		{"empty id", "", receiptOf(id, 1)},
		{"not a ULID", "lg:011002", receiptOf(id, 1)},
		{"lowercase ULID", strings.ToLower(id), receiptOf(id, 1)},
		{"subject wildcard", id[:25] + ">", receiptOf(id, 1)},
		{"empty receipt", id, nil},
		{"oversized receipt", id, bytes.Repeat([]byte("x"), 1<<20)},
	}
	for _, c := range cases {
		if _, err := s.Put(ctx, c.id, c.rc); !errors.Is(err, acceptance.ErrInvalid) {
			t.Errorf("Put with %s: %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, acceptance.ErrNotFound) {
		t.Errorf("after refused Puts, Get(%s): %v, want ErrNotFound: nothing stored", id, err)
	}
}

func concurrent(t *testing.T, ctx context.Context, s acceptance.Store, _ func() acceptance.Store) {
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID()
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range ids {
		wg.Go(func() { _, errs[i] = s.Put(ctx, id, receiptOf(id, i)) })
	}
	wg.Wait()
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("concurrent Put %d: %v", i, errs[i])
		}
		mustGet(t, ctx, s, id, receiptOf(id, i))
	}
}

func sameIDConcurrent(t *testing.T, ctx context.Context, s acceptance.Store, _ func() acceptance.Store) {
	const n = 16
	id := newID()
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = s.Put(ctx, id, receiptOf(id, i)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Put %d of the same envelope: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent Puts of one envelope answered different receipts: %s and %s", got[0], got[i])
		}
	}
	mustGet(t, ctx, s, id, got[0])
}

func reopened(t *testing.T, ctx context.Context, s acceptance.Store, reopen func() acceptance.Store) {
	id := newID()
	rc := receiptOf(id, 1)
	if _, err := s.Put(ctx, id, rc); err != nil {
		t.Fatalf("Put: %v", err)
	}
	s = reopen()
	mustGet(t, ctx, s, id, rc)
	if _, err := s.Put(ctx, id, receiptOf(id, 2)); err != nil {
		t.Fatalf("Put after reopening: %v", err)
	}
	mustGet(t, ctx, s, id, rc)
}
