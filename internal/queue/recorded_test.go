package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"taxlink/internal/recordings"
	"taxlink/internal/recordings/recordingstest"
)

// receiptStreamOf creates the TL_RECEIPTS stream in q as a shared queue
// creates it.
func receiptStreamOf(t testing.TB, q *Queue) {
	t.Helper()
	if _, err := q.js.CreateOrUpdateStream(t.Context(), receiptStreamConfig(DefaultDuplicateWindow)); err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

// TestStreamRecordingsConformance runs the store the replicas of a
// cluster share through the suite every recordings store passes; the
// stream here is on one server, which changes nothing in what the store
// does.
func TestStreamRecordingsConformance(t *testing.T) {
	recordingstest.Run(t, func(t *testing.T) (recordings.Store, func() recordings.Store) {
		dir := t.TempDir()
		q := openAlone(t, dir)
		t.Cleanup(func() { q.Close() })
		receiptStreamOf(t, q)
		return streamRecordings{q}, func() recordings.Store {
			q.Close()
			q = openAlone(t, dir)
			return streamRecordings{q}
		}
	})
}

// TestMoveReceipts checks that a hub alone whose store holds the
// TL_RECEIPTS stream of an earlier version hands every receipt over with
// its sequence, sender node, envelope ID and ledger index, then deletes
// the stream; that a failed hand-over keeps the stream whole; and that a
// hub alone no longer creates the stream.
func TestMoveReceipts(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	q := openAlone(t, dir)
	if q.Recordings() != nil {
		t.Fatal("a queue alone offers the shared stream as its recordings store")
	}
	if _, err := q.js.Stream(ctx, receiptStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a queue alone created %s: %v", receiptStream, err)
	}
	if n, err := q.MoveReceipts(ctx, nil); n != 0 || err != nil {
		t.Fatalf("MoveReceipts with no stream: %d, %v; want 0, nil", n, err)
	}
	receiptStreamOf(t, q)
	type rec struct {
		node, id string
		index    int64
	}
	var want []rec
	nodes := []string{"nta:hq", "corp:8700150012345", "lg:130001"}
	for i := range 2*moveBatch + 7 {
		r := rec{nodes[i%len(nodes)], ulid.Make().String(), int64(i)}
		if err := (streamRecordings{q}).Put(ctx, r.node, r.id, fmt.Appendf(nil, "receipt %d", i), r.index); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	q.Close()

	q = openAlone(t, dir)
	defer q.Close()
	boom := errors.New("disk full")
	if _, err := q.MoveReceipts(ctx, func(_ context.Context, _ []recordings.Record) error { return boom }); err == nil {
		t.Fatal("MoveReceipts reported success although put failed")
	}
	var got []recordings.Record
	n, err := q.MoveReceipts(ctx, func(_ context.Context, b []recordings.Record) error { got = append(got, b...); return nil })
	if err != nil || n != len(want) || len(got) != len(want) {
		t.Fatalf("MoveReceipts: %d (%d handed over), %v; want %d", n, len(got), err, len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.SenderNode != w.node || r.ID != w.id || r.LedgerIndex != w.index || r.Seq != uint64(i+1) || string(r.Receipt) != fmt.Sprintf("receipt %d", i) {
			t.Fatalf("receipt %d handed over as %+v; want node %s, id %s, ledger %d, seq %d", i, r, w.node, w.id, w.index, i+1)
		}
	}
	if _, err := q.js.Stream(ctx, receiptStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream %s after the move: %v; want it deleted", receiptStream, err)
	}
}
