package clusterledger_test

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/clusterledger"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
	"taxlink/internal/queue"
)

// fixture is one JetStream store and the hub key every replica's local
// ledger signs with.
type fixture struct {
	t   *testing.T
	q   *queue.Queue
	key *ecdsa.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	q, err := queue.Open(t.Context(), queue.Options{StoreDir: filepath.Join(t.TempDir(), "js")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, q: q, key: key}
}

// local opens a replica's own ledger in a new directory.
func (f *fixture) local() *ledger.Log {
	f.t.Helper()
	s, err := notekey.NewSigner("hub:test", f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := notekey.NewVerifier("hub:test", &f.key.PublicKey)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := ledger.Open(filepath.Join(f.t.TempDir(), "ledger"), ledger.Options{Origin: "taxlink/test/hub:test/ledger", Signer: s, Verifier: v})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { l.Close() })
	return l
}

func (f *fixture) open(local *ledger.Log) (*clusterledger.Log, error) {
	l, err := clusterledger.Open(f.t.Context(), f.q, local, nil)
	if err == nil {
		f.t.Cleanup(l.Close)
	}
	return l, err
}

// TestReplicasAppendToOneLog appends from two replicas at once and checks
// that they agree on every index, entry and the tree.
func TestReplicasAppendToOneLog(t *testing.T) {
	f := newFixture(t)
	a, err := f.open(f.local())
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.open(f.local())
	if err != nil {
		t.Fatal(err)
	}
	const each = 150
	var (
		mu  sync.Mutex
		at  = map[int64]string{}
		wg  sync.WaitGroup
		ctx = t.Context()
	)
	for r, l := range map[string]*clusterledger.Log{"a": a, "b": b} {
		for w := range 4 {
			wg.Go(func() {
				for i := range each / 4 {
					data := fmt.Sprintf("%s-%d-%d", r, w, i)
					idx, err := l.Append(ctx, []byte(data))
					if err != nil {
						t.Errorf("append %s: %v", data, err)
						return
					}
					mu.Lock()
					if prev, dup := at[idx]; dup {
						t.Errorf("index %d given to %s and %s", idx, prev, data)
					}
					at[idx] = data
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	ca, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Size != cb.Size || ca.Hash != cb.Hash {
		t.Fatalf("replicas disagree: %d %x and %d %x", ca.Size, ca.Hash, cb.Size, cb.Hash)
	}
	if ca.Size != int64(len(at)) {
		t.Fatalf("log of %d entries after %d appends", ca.Size, len(at))
	}
	for idx, data := range at {
		for name, l := range map[string]*clusterledger.Log{"a": a, "b": b} {
			got, err := l.Local().Entry(idx)
			if err != nil || string(got) != data {
				t.Fatalf("replica %s entry %d = %q, %v; want %q", name, idx, got, err, data)
			}
		}
	}
	// A proof served by one replica for the other's entry checks.
	bundle, err := a.Bundle(ca.Size - 1)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := notekey.NewVerifier("hub:test", &f.key.PublicKey)
	if _, err := ledger.VerifyBundle(bundle, note.VerifierList(v)); err != nil {
		t.Fatalf("bundle of the last entry: %v", err)
	}
}

// TestSeedAndCatchUp makes a single hub's ledger the cluster's and lets a
// new, empty replica copy it.
func TestSeedAndCatchUp(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	first := f.local()
	for i := range 5 {
		if _, err := first.Append(ctx, fmt.Appendf(nil, "before the cluster %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := f.open(first)
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := a.Append(ctx, []byte("first in the cluster")); err != nil || idx != 5 {
		t.Fatalf("append after seeding: index %d, %v; want 5", idx, err)
	}
	b, err := f.open(f.local())
	if err != nil {
		t.Fatal(err)
	}
	if b.Local().Size() != 6 {
		t.Fatalf("a new replica holds %d entries, want 6", b.Local().Size())
	}
	ca, _ := a.Checkpoint(ctx)
	cb, _ := b.Checkpoint(ctx)
	if ca.Hash != cb.Hash {
		t.Fatalf("roots differ after catch-up")
	}
}

// TestForkRefused: a replica whose ledger is not a prefix of the
// cluster's does not start.
func TestForkRefused(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a, err := f.open(f.local())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := a.Append(ctx, fmt.Appendf(nil, "entry %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string][]string{
		"a different entry": {"entry 0", "something else"},
		"more entries":      {"entry 0", "entry 1", "entry 2", "entry 3"},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			l := f.local()
			for _, e := range entries {
				if _, err := l.Append(ctx, []byte(e)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := f.open(l)
			if !errors.Is(err, clusterledger.ErrFork) {
				t.Fatalf("Open = %v, want ErrFork", err)
			}
			if l.Size() != int64(len(entries)) {
				t.Fatalf("the refused replica's ledger changed: %d entries", l.Size())
			}
		})
	}
}
