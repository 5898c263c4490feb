package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"taxlink/internal/acceptance"
	"taxlink/internal/acceptance/acceptancetest"
)

func openAlone(t testing.TB, dir string) *Queue {
	t.Helper()
	q, err := Open(t.Context(), Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("open queue in %s: %v", dir, err)
	}
	return q
}

// bucket returns the TL_ACCEPTED bucket of q, created as a shared queue
// creates it.
func bucket(t testing.TB, q *Queue) jetstream.KeyValue {
	t.Helper()
	kv, err := q.js.CreateOrUpdateKeyValue(t.Context(), acceptedBucket(1))
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return kv
}

// TestKVAcceptancesConformance runs the store the replicas of a cluster
// share through the suite every acceptance store passes; the bucket here
// is on one server, which changes nothing in what the store does.
func TestKVAcceptancesConformance(t *testing.T) {
	acceptancetest.Run(t, func(t *testing.T) (acceptance.Store, func() acceptance.Store) {
		dir := t.TempDir()
		q := openAlone(t, dir)
		t.Cleanup(func() { q.Close() })
		return kvAcceptances{bucket(t, q)}, func() acceptance.Store {
			q.Close()
			q = openAlone(t, dir)
			return kvAcceptances{bucket(t, q)}
		}
	})
}

// TestMoveAccepted checks that a hub alone whose store holds the
// TL_ACCEPTED bucket of an earlier version moves every receipt into its
// acceptance file at start, then deletes the bucket, and that a failed move
// leaves the bucket whole for the next start.
func TestMoveAccepted(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	q := openAlone(t, dir)
	if q.Acceptances() != nil {
		t.Fatal("a queue alone offers the shared bucket as its acceptance store")
	}
	if n, err := q.MoveAccepted(ctx, nil); n != 0 || err != nil {
		t.Fatalf("MoveAccepted with no bucket: %d, %v; want 0, nil", n, err)
	}
	kv := bucket(t, q)
	want := map[string]string{}
	for i := range 2*moveBatch + 7 {
		id := ulid.Make().String()
		want[id] = fmt.Sprintf("receipt %d", i)
		if _, err := kv.Put(ctx, id, []byte(want[id])); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()

	q = openAlone(t, dir)
	defer q.Close()
	boom := errors.New("disk full")
	calls := 0
	if _, err := q.MoveAccepted(ctx, func(context.Context, []acceptance.Record) error {
		if calls++; calls == 2 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Fatalf("MoveAccepted with a failing put: %v, want its error", err)
	}
	if _, err := q.js.KeyValue(ctx, acceptedKV); err != nil {
		t.Fatalf("the bucket is gone after a failed move: %v", err)
	}

	db, err := acceptance.Open(filepath.Join(t.TempDir(), "accepted.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := q.MoveAccepted(ctx, db.Import)
	if err != nil || n != len(want) {
		t.Fatalf("MoveAccepted: %d, %v; want %d moved", n, err, len(want))
	}
	for id, rc := range want {
		if got, err := db.Get(ctx, id); err != nil || string(got) != rc {
			t.Fatalf("receipt of %s after the move: %q, %v; want %q", id, got, err, rc)
		}
	}
	if _, err := q.js.KeyValue(ctx, acceptedKV); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the bucket after the move: %v, want it deleted", err)
	}
	if n, err := q.MoveAccepted(ctx, db.Import); n != 0 || err != nil {
		t.Errorf("a second MoveAccepted: %d, %v; want 0, nil", n, err)
	}
}

// BenchmarkAcceptancesPut stores 700-byte receipts from 64 goroutines, as
// concurrent acceptances do, in the bucket the replicas share (on one
// server, SyncAlways as the hub runs it) and in the file a hub alone uses;
// heap-B/key is the heap that stays with each receipt stored.
func BenchmarkAcceptancesPut(b *testing.B) {
	rc := make([]byte, 700)
	for _, c := range []struct {
		name string
		open func(b *testing.B) acceptance.Store
	}{
		{"bucket", func(b *testing.B) acceptance.Store {
			q := openAlone(b, b.TempDir())
			b.Cleanup(q.Close)
			return kvAcceptances{bucket(b, q)}
		}},
		{"file", func(b *testing.B) acceptance.Store {
			db, err := acceptance.Open(filepath.Join(b.TempDir(), "accepted.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := c.open(b)
			before := heapInUse()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Put(context.Background(), ulid.Make().String(), rc); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(heapInUse()-before)/float64(b.N), "heap-B/key")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
