package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/recordings"
)

// receiptStreamConfig is the configuration of the TL_RECEIPTS stream.
func receiptStreamConfig(dup time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       receiptStream,
		Subjects:   []string{"r.>"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: dup,
		MaxMsgSize: 64 << 10,
		// Senders read their receipts with direct gets, answered by any
		// replica: no consumer per poll.
		AllowDirect: true,
	}
}

// Recordings returns the recording receipts the replicas of a cluster (or
// the hubs of an external JetStream) share: the TL_RECEIPTS stream,
// replicated as the queues are, a receipt's sequence its stream sequence.
// A hub alone keeps them in a recordings.DB instead, and gets nil.
//
// JetStream syncs each message on its own (SyncAlways), where the file
// commits the receipts stored together with one sync.
func (q *Queue) Recordings() recordings.Store {
	if !q.opts.shared() {
		return nil
	}
	return streamRecordings{q}
}

// streamRecordings is a recordings.Store in the TL_RECEIPTS stream.
type streamRecordings struct{ q *Queue }

// Put implements recordings.Store: a repeat within the duplicate window is
// a no-op.
func (r streamRecordings) Put(ctx context.Context, senderNode, id string, receipt []byte, ledgerIndex int64) error {
	if err := recordings.CheckPut(senderNode, id, receipt, ledgerIndex); err != nil {
		return err
	}
	msg := nats.NewMsg("r." + Token(senderNode))
	msg.Header.Set(jetstream.MsgIDHeader, "r."+id)
	msg.Header.Set(ledgerHeader, strconv.FormatInt(ledgerIndex, 10))
	msg.Data = receipt
	if _, err := r.q.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("queue: store receipt: %w", err)
	}
	return nil
}

// Last implements recordings.Store.
func (r streamRecordings) Last(ctx context.Context) (uint64, error) {
	// Looking the stream up fetches its state: no second request.
	s, err := r.q.js.Stream(ctx, receiptStream)
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

// After implements recordings.Store. It reads with direct gets of the
// sender's subject and waits on a plain subscription to it: a poll costs
// no consumer on the server.
func (r streamRecordings) After(ctx context.Context, senderNode string, after uint64, limit int, wait time.Duration) ([]recordings.Stored, error) {
	if err := recordings.CheckAfter(senderNode, limit); err != nil {
		return nil, err
	}
	q := r.q
	subj := "r." + Token(senderNode)
	// Subscribed before the first read, so that a receipt stored between
	// the read and the wait wakes the wait.
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	sub, err := q.nc.Subscribe(subj, func(*nats.Msg) {
		notify()
		// The subscription hears a receipt as it is published, and the
		// stream stores it a moment later: a read at once can miss it,
		// so look again shortly after.
		for _, d := range [...]time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 500 * time.Millisecond} {
			time.AfterFunc(d, notify)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("queue: read receipts: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	return recordings.Wait(ctx, wait, func() <-chan struct{} { return wake }, func() ([]recordings.Stored, error) {
		msgs, err := q.readReceipts(ctx, subj, after, limit)
		out := make([]recordings.Stored, len(msgs))
		for i, m := range msgs {
			out[i] = m.Stored
		}
		return out, err
	})
}

// streamReceipt is a message of TL_RECEIPTS as stored.
type streamReceipt struct {
	recordings.Stored
	subject, msgID string
}

// readReceipts reads up to limit receipts of subj (a wildcard reads every
// node's) after sequence after, in one batched direct get: the stream
// answers with the receipts, then an end-of-batch status. One get per
// receipt took the stream's read lock once each, behind its synced writes,
// and a poll of 500 receipts took seconds under load.
func (q *Queue) readReceipts(ctx context.Context, subj string, after uint64, limit int) ([]streamReceipt, error) {
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{after + 1, subj, limit})
	if err != nil {
		return nil, fmt.Errorf("queue: read receipts: %w", err)
	}
	inbox := q.nc.NewInbox()
	sub, err := q.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("queue: read receipts: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := q.nc.PublishRequest(directGetPrefix+receiptStream, inbox, req); err != nil {
		return nil, fmt.Errorf("queue: read receipts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, receiptsReadTimeout)
	defer cancel()
	var out []streamReceipt
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("queue: read receipts: %w", err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204", "404": // the end of the batch; nothing after the cursor
			return out, nil
		default:
			return nil, fmt.Errorf("queue: read receipts: status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, errors.New("queue: read receipts: a receipt without its sequence")
		}
		li, err := strconv.ParseInt(m.Header.Get(ledgerHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("queue: receipt %d: bad ledger index", seq)
		}
		out = append(out, streamReceipt{
			Stored:  recordings.Stored{Seq: seq, Receipt: m.Data, LedgerIndex: li},
			subject: m.Header.Get(jetstream.SubjectHeader),
			msgID:   m.Header.Get(jetstream.MsgIDHeader),
		})
	}
}

const (
	// directGetPrefix is the subject prefix of direct gets of a stream.
	directGetPrefix = "$JS.API.DIRECT.GET."
	// receiptsReadTimeout bounds the wait for a batch of receipts.
	receiptsReadTimeout = 30 * time.Second
)

// MoveReceipts hands the recording receipts of a hub alone's TL_RECEIPTS
// stream (kept there by earlier versions) to put, in batches and in
// sequence order with their sequences, then deletes the stream, and
// returns how many it handed over. Without the stream, or for a shared
// queue, it does nothing. If put fails the stream is kept whole, for the
// next start to move again (put must skip what it holds already).
func (q *Queue) MoveReceipts(ctx context.Context, put func(context.Context, []recordings.Record) error) (int, error) {
	if q.opts.shared() {
		return 0, nil
	}
	if _, err := q.js.Stream(ctx, receiptStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("queue: look for stream %s: %w", receiptStream, err)
	}
	var after uint64
	n := 0
	for {
		msgs, err := q.readReceipts(ctx, "r.>", after, moveBatch)
		if err != nil {
			return n, err
		}
		if len(msgs) == 0 {
			break
		}
		batch := make([]recordings.Record, len(msgs))
		for i, m := range msgs {
			batch[i] = recordings.Record{
				Stored:     m.Stored,
				SenderNode: untoken(strings.TrimPrefix(m.subject, "r.")),
				ID:         strings.TrimPrefix(m.msgID, "r."),
			}
		}
		if err := put(ctx, batch); err != nil {
			return n, fmt.Errorf("queue: move the receipts of stream %s: %w", receiptStream, err)
		}
		n += len(batch)
		after = msgs[len(msgs)-1].Seq
	}
	if err := q.js.DeleteStream(ctx, receiptStream); err != nil {
		return n, fmt.Errorf("queue: delete stream %s after moving its receipts: %w", receiptStream, err)
	}
	return n, nil
}

// untoken returns the participant ID whose subject token (Token) is tok:
// a participant ID's value has neither ':' nor '.', so the first '_' was
// its ':'.
func untoken(tok string) string { return strings.Replace(tok, "_", ":", 1) }
