package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/blob"
)

// chunkSize is the size of a blob chunk; JetStream's default message limit is
// 1 MiB.
const chunkSize = 512 << 10

// maxChunks bounds the sequences a reference may list (32 GiB of chunks).
const maxChunks = 1 << 16

// chunks is the blob.Store of hubs that share their JetStream (replicas of
// a cluster, or hubs on an external one): a blob is a chain of chunk
// messages in the TL_BLOB stream under a subject of its own,
// b.<key>.<random>, replicated as the queues are. A reference is the
// subject and the chunks' stream sequences in order, "SUBJECT:S1,S2,…".
type chunks struct {
	js jetstream.JetStream
	// bs is TL_BLOB, as created: its cached configuration allows direct
	// gets, and no lookup is needed per blob.
	bs jetstream.Stream
}

// Put implements blob.Store.
func (c *chunks) Put(ctx context.Context, key string, r io.Reader) (string, error) {
	if err := blob.ValidKey(key); err != nil {
		return "", err
	}
	// A subject of this attempt alone, so that a concurrent or later
	// attempt for the same envelope never touches its chunks.
	subj := "b." + blob.Unique(key)
	buf := make([]byte, chunkSize)
	var futures []jetstream.PubAckFuture
	var seqs []uint64
	fail := func(err error) (string, error) {
		_ = c.bs.Purge(context.WithoutCancel(ctx), jetstream.WithPurgeSubject(subj))
		return "", err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			// No deduplication ID: a retry after a failed attempt must
			// store new chunks, not be answered with the sequences of the
			// attempt's chunks that fail purged.
			msg := nats.NewMsg(subj)
			msg.Data = append([]byte(nil), buf[:m]...)
			f, err := c.js.PublishMsgAsync(msg)
			if err != nil {
				return fail(fmt.Errorf("queue: store chunk: %w", err))
			}
			futures = append(futures, f)
			// Bound what is in flight so a big payload is never held whole.
			if len(futures) >= 8 {
				if seqs, err = waitAcks(ctx, futures, seqs); err != nil {
					return fail(err)
				}
				futures = futures[:0]
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fail(fmt.Errorf("queue: read ciphertext: %w", rerr))
		}
	}
	seqs, err := waitAcks(ctx, futures, seqs)
	if err != nil {
		return fail(err)
	}
	list := make([]string, len(seqs))
	for i, s := range seqs {
		list[i] = strconv.FormatUint(s, 10)
	}
	return subj + ":" + strings.Join(list, ","), nil
}

// waitAcks waits for every publish in fs, in order, and appends their
// sequences to seqs.
func waitAcks(ctx context.Context, fs []jetstream.PubAckFuture, seqs []uint64) ([]uint64, error) {
	for _, f := range fs {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				return seqs, fmt.Errorf("queue: store chunk: answered as a duplicate of sequence %d", ack.Sequence)
			}
			seqs = append(seqs, ack.Sequence)
		case err := <-f.Err():
			return seqs, fmt.Errorf("queue: store chunk: %w", err)
		case <-ctx.Done():
			return seqs, ctx.Err()
		}
	}
	return seqs, nil
}

// parseChunkRef splits a reference into its subject and sequences.
func parseChunkRef(ref string) (string, []uint64, error) {
	subj, list, ok := strings.Cut(ref, ":")
	if !ok || !strings.HasPrefix(subj, "b.") {
		return "", nil, fmt.Errorf("%w: %q", blob.ErrBadRef, ref)
	}
	if _, err := blob.Key(subj[2:]); err != nil {
		return "", nil, err
	}
	if list == "" {
		return subj, nil, nil
	}
	fields := strings.Split(list, ",")
	if len(fields) > maxChunks {
		return "", nil, fmt.Errorf("%w: %d chunks", blob.ErrBadRef, len(fields))
	}
	seqs := make([]uint64, len(fields))
	for i, f := range fields {
		s, err := strconv.ParseUint(f, 10, 64)
		if err != nil || s == 0 || strconv.FormatUint(s, 10) != f {
			return "", nil, fmt.Errorf("%w: chunk %q", blob.ErrBadRef, f)
		}
		seqs[i] = s
	}
	return subj, seqs, nil
}

// Open implements blob.Store: the chunks are read one at a time by their
// sequence, so that a big blob is never held whole; a blob removed shows
// as blob.ErrNotFound at the first Read.
func (c *chunks) Open(ctx context.Context, ref string) (io.ReadCloser, error) {
	subj, seqs, err := parseChunkRef(ref)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(&chunkReader{ctx: ctx, bs: c.bs, subj: subj, seqs: seqs}), nil
}

// Remove implements blob.Store.
func (c *chunks) Remove(ctx context.Context, ref string) error {
	subj, _, err := parseChunkRef(ref)
	if err != nil {
		return err
	}
	if err := c.bs.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("queue: remove chunks: %w", err)
	}
	return nil
}

// chunkReader reads a blob's chunks one at a time by their sequence: no
// consumer state, so a slow reader cannot stall it.
type chunkReader struct {
	ctx  context.Context
	bs   jetstream.Stream
	subj string
	seqs []uint64
	cur  []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if len(r.seqs) == 0 {
			return 0, io.EOF
		}
		ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
		msg, err := r.bs.GetMsg(ctx, r.seqs[0])
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("%w: chunk %d of %s", blob.ErrNotFound, r.seqs[0], r.subj)
		}
		if err != nil {
			return 0, fmt.Errorf("queue: read chunk %d: %w", r.seqs[0], err)
		}
		if msg.Subject != r.subj {
			return 0, fmt.Errorf("queue: chunk %d belongs to %s, not %s", r.seqs[0], msg.Subject, r.subj)
		}
		r.cur = msg.Data
		r.seqs = r.seqs[1:]
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// stale returns the names (the subject without "b.") of the blobs whose
// newest chunk was stored before before.
func (c *chunks) stale(ctx context.Context, before time.Time) ([]string, error) {
	info, err := c.bs.Info(ctx, jetstream.WithSubjectFilter("b.>"))
	if err != nil {
		return nil, err
	}
	var out []string
	for subj := range info.State.Subjects {
		m, err := c.bs.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if _, err := blob.Key(subj[2:]); err == nil && m.Time.Before(before) {
			out = append(out, subj[2:])
		}
	}
	return out, nil
}

// name returns the chunks' subject without "b.".
func (c *chunks) name(ref string) string {
	subj, _, err := parseChunkRef(ref)
	if err != nil {
		return ref
	}
	return subj[2:]
}

// removable returns a reference without sequences: Remove purges the
// subject, whatever the chunks.
func (c *chunks) removable(name string) string { return "b." + name + ":" }

func (c *chunks) bytes(ctx context.Context) (int64, error) {
	info, err := c.bs.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Bytes), nil
}
