package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/acceptance"
)

// acceptedBucket is the configuration of the TL_ACCEPTED bucket.
func acceptedBucket(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:   acceptedKV,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	}
}

// Acceptances returns the acceptance receipts the replicas of a cluster
// (or the hubs of an external JetStream) share: the TL_ACCEPTED bucket,
// replicated as the queues are. A hub alone keeps them in an
// acceptance.DB instead, and gets nil.
//
// JetStream holds every key of a bucket in memory (about 180 bytes each),
// so that this store grows with every envelope a cluster accepts.
func (q *Queue) Acceptances() acceptance.Store {
	if !q.opts.shared() {
		return nil
	}
	return kvAcceptances{q.kv}
}

// kvAcceptances is an acceptance.Store in a JetStream key-value bucket.
type kvAcceptances struct{ kv jetstream.KeyValue }

func (a kvAcceptances) Get(ctx context.Context, id string) ([]byte, error) {
	if acceptance.CheckID(id) != nil {
		// Not a key this store holds, nor one to put into a subject.
		return nil, fmt.Errorf("queue: envelope %q: %w", id, acceptance.ErrNotFound)
	}
	e, err := a.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("queue: envelope %s: %w", id, acceptance.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: look up the acceptance of %s: %w", id, err)
	}
	return e.Value(), nil
}

func (a kvAcceptances) Put(ctx context.Context, id string, rc []byte) ([]byte, error) {
	if err := acceptance.Check(id, rc); err != nil {
		return nil, err
	}
	_, err := a.kv.Create(ctx, id, rc)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return a.Get(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: store the acceptance of %s: %w", id, err)
	}
	return rc, nil
}

// moveBatch is how many receipts MoveAccepted hands over at once, and
// how many queue entries moveShards stores per commit.
const moveBatch = 1000

// MoveAccepted hands the acceptance receipts an earlier version of a hub
// alone kept in the TL_ACCEPTED bucket to put, moveBatch at a time, then
// deletes the bucket. It returns how many it moved: none for a queue
// shared by replicas, whose bucket stays, or with no such bucket. If it
// fails, the bucket stays whole and the next start moves it again (put
// must keep what it stored already, as acceptance.DB.Import does).
func (q *Queue) MoveAccepted(ctx context.Context, put func(context.Context, []acceptance.Record) error) (int, error) {
	if q.opts.shared() || q.kv == nil {
		return 0, nil
	}
	w, err := q.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("queue: read bucket %s: %w", acceptedKV, err)
	}
	defer w.Stop()
	var batch []acceptance.Record
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := put(ctx, batch); err != nil {
			return fmt.Errorf("queue: move the receipts of bucket %s: %w", acceptedKV, err)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if e == nil { // every key read
			break
		}
		batch = append(batch, acceptance.Record{ID: e.Key(), Receipt: e.Value()})
		if len(batch) == moveBatch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	if err := q.js.DeleteKeyValue(ctx, acceptedKV); err != nil {
		return n, fmt.Errorf("queue: delete bucket %s after moving its receipts: %w", acceptedKV, err)
	}
	q.kv = nil
	return n, nil
}
