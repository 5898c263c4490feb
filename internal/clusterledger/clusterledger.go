// Package clusterledger keeps the hub's ledger on the JetStream cluster
// when the hub runs as replicas, so that every replica appends to one log
// and no replica's loss forks or shortens it.
//
// The order of the log is the order of a replicated stream (TL_LEDGER):
// entry i is the stream's message i+1, acknowledged by a quorum of the
// cluster before Append returns. Each replica keeps a local ledger.Log as
// a copy of the stream's prefix — the Merkle tree, the signed checkpoints
// and the proofs are computed from it — and brings it up to date before
// it signs, proves or appends. Appends carry the stream sequence they
// expect (optimistic concurrency), so two replicas appending at once never
// interleave behind each other's back: the one refused catches up and
// tries again.
//
// Guarantees: an index returned by Append names the entry in the stream
// and in the local copy; the local copy is always a prefix of the stream;
// Open refuses a local copy that is not (ErrFork), and seeds an empty
// stream from the local ledger of a hub that becomes a cluster.
package clusterledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"taxlink/internal/ledger"
	"taxlink/internal/pause"
	"taxlink/internal/queue"
)

// Stream is the name of the replicated stream holding the entries.
const Stream = "TL_LEDGER"

const subject = "ledger"

// ackTimeout bounds the wait for the cluster's answer to an append.
const ackTimeout = 5 * time.Second

// maxBatch bounds the entries committed together.
const maxBatch = 256

// ErrFork: the local ledger does not match the cluster's. The replica
// must not serve until an operator resolves it (restore the replica's
// ledger from the cluster: remove it and let it catch up).
var ErrFork = errors.New("clusterledger: the local ledger is not a prefix of the cluster's")

// Log is the hub's ledger shared by the replicas of a cluster. It is safe
// for concurrent use.
type Log struct {
	local  *ledger.Log
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger

	// mu serialises bringing local up to date and committing to it.
	mu   sync.Mutex
	reqs chan *request
	stop chan struct{}
	done chan struct{}
}

type request struct {
	data  []byte
	index int64
	err   error
	done  chan struct{}
}

// Open creates the stream if needed, on q's storage and with its
// replication, checks that local is a prefix of it, brings local up to
// date and returns the shared log. local must be writable (opened with a
// signer).
func Open(ctx context.Context, q *queue.Queue, local *ledger.Log, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	st, err := q.CreateStream(ctx, jetstream.StreamConfig{
		Name:     Stream,
		Subjects: []string{subject},
		// The log is never trimmed, and no message of it is removed.
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		DenyDelete:  true,
		DenyPurge:   true,
		MaxMsgSize:  ledger.MaxEntrySize + 1024,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("clusterledger: %w", err)
	}
	l := &Log{local: local, js: q.JetStream(), stream: st, log: logger,
		reqs: make(chan *request), stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.start(ctx); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// start checks local against the stream, seeds an empty stream from a
// local ledger, and catches up.
func (l *Log) start(ctx context.Context) error {
	last, err := l.last(ctx)
	if err != nil {
		return err
	}
	size := l.local.Size()
	switch {
	case last == 0 && size > 0:
		l.log.Info("seeding the cluster's ledger from this replica's", "entries", size)
		for i := int64(0); i < size; i++ {
			e, err := l.local.Entry(i)
			if err != nil {
				return fmt.Errorf("clusterledger: seed: %w", err)
			}
			if _, err := l.js.Publish(ctx, subject, e, jetstream.WithExpectLastSequence(uint64(i))); err != nil {
				return fmt.Errorf("clusterledger: seed entry %d: %w", i, err)
			}
		}
		return nil
	case uint64(size) > last:
		return fmt.Errorf("%w: this replica holds %d entries, the cluster %d", ErrFork, size, last)
	case size > 0:
		mine, err := l.local.Entry(size - 1)
		if err != nil {
			return fmt.Errorf("clusterledger: %w", err)
		}
		theirs, err := l.stream.GetMsg(ctx, uint64(size))
		if err != nil {
			return fmt.Errorf("clusterledger: read entry %d: %w", size-1, err)
		}
		if !bytes.Equal(mine, theirs.Data) {
			return fmt.Errorf("%w: entry %d differs", ErrFork, size-1)
		}
	}
	_, err = l.catchUp(ctx)
	return err
}

// Local returns the replica's copy (for backups, gauges and offline
// checks); appends go through l.
func (l *Log) Local() *ledger.Log { return l.local }

// Close stops the committer; it does not close the local ledger.
func (l *Log) Close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// Append appends data as one entry once a quorum of the cluster holds it
// and the local copy has it, and returns its index. Concurrent appends of
// a replica are committed together.
func (l *Log) Append(ctx context.Context, data []byte) (int64, error) {
	r := &request{data: data, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.stop:
		return 0, ledger.ErrClosed
	}
	<-r.done
	return r.index, r.err
}

// Checkpoint brings the local copy up to date and signs a checkpoint of
// it (ledger.Log.Checkpoint).
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	l.mu.Lock()
	_, err := l.catchUp(ctx)
	l.mu.Unlock()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return l.local.Checkpoint(ctx)
}

// Bundle returns the inclusion bundle of entry index, catching up first
// when the entry was appended by another replica.
func (l *Log) Bundle(index int64) (ledger.Bundle, error) {
	if err := l.upTo(index + 1); err != nil {
		return ledger.Bundle{}, err
	}
	return l.local.Bundle(index)
}

// ConsistencyProof proves that the tree of newSize entries extends that
// of oldSize, catching up first when needed.
func (l *Log) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	if err := l.upTo(newSize); err != nil {
		return nil, err
	}
	return l.local.ConsistencyProof(oldSize, newSize)
}

func (l *Log) upTo(size int64) error {
	if l.local.Size() >= size {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.catchUp(ctx)
	return err
}

// last returns the stream's last sequence. The stream's leader alone
// answers: a request that reached none while a lost leader was being
// replaced is never answered, so each request has ackTimeout.
func (l *Log) last(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("clusterledger: stream state: %w", err)
	}
	return info.State.LastSeq, nil
}

// catchUp appends to the local copy what the stream holds beyond it and
// returns those entries, the first at the local size before the call.
// The caller holds l.mu.
func (l *Log) catchUp(ctx context.Context) ([][]byte, error) {
	last, err := l.last(ctx)
	if err != nil {
		return nil, err
	}
	size := l.local.Size()
	if uint64(size) > last {
		return nil, fmt.Errorf("%w: this replica holds %d entries, the cluster %d", ErrFork, size, last)
	}
	if uint64(size) == last {
		return nil, nil
	}
	// Direct gets, answered by any replica holding the message: no
	// consumer to create through the meta leader, which may be the
	// replica just lost. A replica that has not got the message yet
	// answers "not found", and the next catch-up takes it.
	var got, chunk [][]byte
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if _, err := l.local.AppendBatch(ctx, chunk); err != nil {
			return fmt.Errorf("clusterledger: copy entries: %w", err)
		}
		got, chunk = append(got, chunk...), nil
		return nil
	}
	for seq := uint64(size) + 1; seq <= last; seq++ {
		gctx, cancel := context.WithTimeout(ctx, ackTimeout)
		m, err := l.stream.GetMsg(gctx, seq)
		cancel()
		if err != nil {
			return got, errors.Join(fmt.Errorf("clusterledger: read entry %d: %w", seq-1, err), flush())
		}
		chunk = append(chunk, m.Data)
		if len(chunk) == ledger.MaxBatchEntries {
			if err := flush(); err != nil {
				return got, err
			}
		}
	}
	if err := flush(); err != nil {
		return got, err
	}
	return got, nil
}

// run commits the appends handed to it, in batches, until Close.
func (l *Log) run() {
	defer close(l.done)
	for {
		var batch []*request
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.stop:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		l.commit(batch)
	}
}

// commit publishes the batch with the sequences it expects, then settles
// every request from what the stream holds: an entry found there (under
// the index it landed at) is done, one not found is tried again after the
// local copy caught up.
func (l *Log) commit(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	pending := batch
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			// Another replica got in first: step back a random while, so
			// that replicas appending at once take turns.
			pause.For(ctx, time.Duration(rand.Int64N(int64(min(attempt, 50))*int64(time.Millisecond))+1))
		}
		if ctx.Err() != nil {
			for _, r := range pending {
				r.err = fmt.Errorf("clusterledger: append not confirmed by the cluster after %d attempts", attempt)
				close(r.done)
			}
			return
		}
		base := l.local.Size()
		futures := make([]jetstream.PubAckFuture, len(pending))
		var perr error
		for i, r := range pending {
			futures[i], perr = l.js.PublishAsync(subject, r.data, jetstream.WithExpectLastSequence(uint64(base)+uint64(i)))
			if perr != nil {
				futures = futures[:i]
				break
			}
		}
		allOK := perr == nil
		// An answer lost with a replica never comes: after a while the
		// stream says what landed.
		actx, cancel := context.WithTimeout(ctx, ackTimeout)
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				allOK = allOK && ack.Sequence == uint64(base)+uint64(i)+1
			case <-f.Err():
				allOK = false
			case <-actx.Done():
				allOK = false
			}
		}
		cancel()
		if allOK {
			entries := make([][]byte, len(pending))
			for i, r := range pending {
				entries[i] = r.data
			}
			if _, err := l.local.AppendBatch(ctx, entries); err != nil {
				for _, r := range pending {
					r.err = fmt.Errorf("clusterledger: copy entries: %w", err)
					close(r.done)
				}
				return
			}
			for i, r := range pending {
				r.index = base + int64(i)
				close(r.done)
			}
			return
		}
		// Another replica appended first, or an answer was lost: the
		// stream says what landed.
		got, err := l.catchUp(ctx)
		if err != nil {
			l.log.Warn("ledger catch-up failed", "err", err)
			pause.For(ctx, 100*time.Millisecond)
		}
		landed := make(map[string][]int64, len(got))
		for i, e := range got {
			landed[string(e)] = append(landed[string(e)], base+int64(i))
		}
		var again []*request
		for _, r := range pending {
			if at := landed[string(r.data)]; len(at) > 0 {
				r.index = at[0]
				landed[string(r.data)] = at[1:]
				close(r.done)
				continue
			}
			again = append(again, r)
		}
		pending = again
	}
}
