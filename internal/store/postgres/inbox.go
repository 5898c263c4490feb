package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"taxlink/internal/store"
)

// scanRecord scans the columns recordColumns (and, when attempt is not
// nil, the attempt token after them).
func scanRecord(row pgx.Row, attempt *[]byte) (store.Record, error) {
	var r store.Record
	var created, recorded int64
	dest := []any{&r.Seq, &r.ID, &r.Type, &r.Sender, &r.Recipient, &created, &recorded,
		&r.Header, &r.Signature, &r.CiphertextSize, &r.Receipt}
	if attempt != nil {
		dest = append(dest, attempt)
	}
	err := row.Scan(dest...)
	r.Created, r.RecordedAt = fromNS(created), fromNS(recorded)
	return r, err
}

// Record implements [store.Inbox.Record]. The ciphertext is staged (in
// memory below one chunk, in an unlinked spool file otherwise) before the
// transaction begins; at most CiphertextSize+1 bytes are read from r. ctx
// is not consulted while r is read: a reader that may block must end on
// cancellation itself. The transaction is re-run from the staged
// ciphertext after a transient failure (see the package documentation);
// when ctx ends during COMMIT, Record fails although the record may have
// been stored, and a later Record of the same envelope reports it.
func (s *Store) Record(ctx context.Context, rec store.Record, r io.Reader) (store.Record, bool, error) {
	if err := s.live(); err != nil {
		return store.Record{}, false, err
	}
	if err := rec.Validate(); err != nil {
		return store.Record{}, false, err
	}
	if r == nil {
		return store.Record{}, false, fmt.Errorf("%w: record %s: nil ciphertext reader", store.ErrInvalid, rec.ID)
	}
	op := "record " + rec.ID

	// Fast path, without any lock: a re-delivery of a recorded envelope
	// does not read r at all.
	var got store.Record
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		got, err = scanRecord(s.pool.QueryRow(ctx, s.sql.recordByID, rec.ID), new([]byte))
		return err
	})
	switch {
	case err == nil:
		if err := sameHeader(got, rec); err != nil {
			return store.Record{}, false, err
		}
		return got, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Record{}, false, s.fail(op, err)
	}

	st, err := store.Stage("postgres", rec, r, s.opts.chunkSize, s.opts.spoolDir)
	if err != nil {
		return store.Record{}, false, err
	}
	defer st.Close()
	if err := ctx.Err(); err != nil {
		return store.Record{}, false, fmt.Errorf("postgres: %s: %w", op, err)
	}

	if rec.RecordedAt.IsZero() {
		rec.RecordedAt = s.opts.now()
	}
	stored := store.Record{
		ID: rec.ID, Type: rec.Type, Sender: rec.Sender, Recipient: rec.Recipient,
		Created: fromNS(toNS(rec.Created)), RecordedAt: fromNS(toNS(rec.RecordedAt)),
		Header: bytes.Clone(rec.Header), Signature: bytes.Clone(rec.Signature),
		CiphertextSize: rec.CiphertextSize, Receipt: bytes.Clone(rec.Receipt),
	}
	existed := false
	var tokens [][]byte // of every attempt of this call
	err = s.retry(ctx, func(ctx context.Context) error {
		token := make([]byte, 16)
		rand.Read(token) // never fails
		tokens = append(tokens, token)
		seq, inserted, err := s.recordTx(ctx, rec, st, token)
		if err != nil {
			return err
		}
		if inserted {
			stored.Seq, existed = seq, false
			return nil
		}
		var attempt []byte
		got, err := scanRecord(s.pool.QueryRow(ctx, s.sql.recordByID, rec.ID), &attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: the record of %s was there and is gone", errRaced, rec.ID)
		}
		if err != nil {
			return err
		}
		if err := sameHeader(got, rec); err != nil {
			return err
		}
		// A row inserted by an earlier attempt of this call, whose
		// COMMIT succeeded although the attempt failed, is ours.
		stored, existed = got, true
		for _, t := range tokens {
			if bytes.Equal(t, attempt) {
				existed = false
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrConflict) || errors.Is(err, errSpool):
		return store.Record{}, false, err
	case err != nil:
		return store.Record{}, false, s.fail(op, err)
	}
	return stored, existed, nil
}

// sameHeader decides a Record of an ID that exists as got: nil when the
// headers and recipients are equal, ErrConflict otherwise. The error names
// nothing of a record of another tenant (not even its Seq), and such a
// record is never returned, whatever its header.
func sameHeader(got, rec store.Record) error {
	switch {
	case got.Recipient != rec.Recipient:
		return fmt.Errorf("postgres: record %s of %s: %w: the ID is recorded for another recipient", rec.ID, rec.Recipient, store.ErrConflict)
	case !bytes.Equal(got.Header, rec.Header):
		return fmt.Errorf("postgres: record %s: %w: header bytes differ from those recorded at seq %d", rec.ID, store.ErrConflict, got.Seq)
	}
	return nil
}

// recordTx runs one transaction storing rec with the staged ciphertext and
// the attempt token: chunks first, then, under the commit-order lock, the
// record row, then COMMIT. It returns inserted=false and no error, having
// stored nothing, when a record with rec.ID exists (or was committed while
// this transaction sent its chunks): the insert of a chunk or of the
// record row then fails as a unique violation, which rolls everything
// back.
//
// The lock, the record row and the commit go to the server in one
// pipeline (a pgx batch), so the lock is held for the insert and the WAL
// flush only, never for a round trip to this process. Without a spool
// file that pipeline is the whole transaction: an implicit transaction
// committed at its Sync. With one, COPY needs an explicit transaction that
// the pipeline ends with COMMIT.
func (s *Store) recordTx(ctx context.Context, rec store.Record, st *store.Staged, token []byte) (seq int64, inserted bool, err error) {
	if err := rewind(st); err != nil {
		return 0, false, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, false, err
	}
	defer conn.Release() // the pool drops a connection left inside a transaction

	b := &pgx.Batch{}
	if st.File != nil {
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			return 0, false, err
		}
		defer func() {
			if err != nil || !inserted {
				// Best effort: a connection that fails this is dropped.
				conn.Exec(ctx, "ROLLBACK")
			}
		}()
		src := &chunkSource{id: rec.ID, f: st.File, buf: make([]byte, s.opts.chunkSize)}
		if _, err := conn.CopyFrom(ctx, s.chunks, []string{"record_id", "idx", "data"}, src); err != nil {
			switch {
			case src.err != nil:
				return 0, false, src.err
			case uniqueViolation(err): // another Record of the ID committed first
				return 0, false, nil
			}
			return 0, false, err
		}
		if src.total != st.Size {
			return 0, false, fmt.Errorf("%w: spool file held %d bytes, %d were spooled", errSpool, src.total, st.Size)
		}
	} else if len(st.Mem) > 0 {
		b.Queue(s.sql.insertChunk, rec.ID, int64(0), st.Mem)
	}
	b.Queue(s.sql.lock, s.lockKey)
	b.Queue(s.sql.insertRecord, rec.ID, rec.Type, rec.Sender, rec.Recipient, toNS(rec.Created), toNS(rec.RecordedAt),
		rec.Header, rec.Signature, rec.CiphertextSize, rec.Receipt, token).
		QueryRow(func(row pgx.Row) error { return row.Scan(&seq) })
	if st.File != nil {
		b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() != "COMMIT" { // "ROLLBACK" when the transaction had failed
				return fmt.Errorf("COMMIT answered %q", tag)
			}
			return nil
		})
	}
	// Close returns only once the server has answered the Sync, after
	// the COMMIT (implicit or explicit) has been flushed.
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		if uniqueViolation(err) {
			return 0, false, nil
		}
		return 0, false, err
	}
	if s.opts.afterCommit != nil {
		if err := s.opts.afterCommit(rec.ID); err != nil {
			return 0, false, err
		}
	}
	return seq, true, nil
}

// uniqueViolation reports whether err is PostgreSQL's unique_violation.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// chunkSource feeds the chunks of a spool file to COPY, one chunk of
// len(buf) bytes per row; its buffer is reused, which COPY allows since it
// encodes every row before asking for the next.
type chunkSource struct {
	id    string
	f     io.Reader
	buf   []byte
	n     int   // bytes of the current chunk in buf
	idx   int64 // index of the current chunk
	total int64 // bytes read so far
	eof   bool
	err   error // reading the spool file
}

// Next implements pgx.CopyFromSource.
func (c *chunkSource) Next() bool {
	if c.eof || c.err != nil {
		return false
	}
	if c.n > 0 {
		c.idx++
	}
	n, err := io.ReadFull(c.f, c.buf)
	c.n = n
	c.total += int64(n)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		c.eof = true
	case err != nil:
		c.err = fmt.Errorf("%w: reading the spool file: %w", errSpool, err)
		return false
	}
	return n > 0
}

// Values implements pgx.CopyFromSource.
func (c *chunkSource) Values() ([]any, error) { return []any{c.id, c.idx, c.buf[:c.n]}, nil }

// Err implements pgx.CopyFromSource.
func (c *chunkSource) Err() error { return c.err }

// errSpool marks failures of the local spool file, which are not retried.
var errSpool = errors.New("postgres: spool file failed")

// rewind prepares the spool file to be read from the start again.
func rewind(st *store.Staged) error {
	if err := st.Rewind(); err != nil {
		return fmt.Errorf("%w: rewinding: %w", errSpool, err)
	}
	return nil
}

// Get implements [store.Inbox.Get].
func (s *Store) Get(ctx context.Context, recipient, id string) (store.Record, error) {
	if err := s.live(); err != nil {
		return store.Record{}, err
	}
	if err := store.ValidateRef(recipient, id); err != nil {
		return store.Record{}, err
	}
	var r store.Record
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		r, err = scanRecord(s.pool.QueryRow(ctx, s.sql.recordByRef, id, recipient), nil)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, fmt.Errorf("postgres: record %s of %s: %w", id, recipient, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, s.fail("get "+id, err)
	}
	return r, nil
}

// OpenCiphertext implements [store.Inbox.OpenCiphertext]. Each Read that
// needs a new chunk fetches just that chunk, in its own statement; records
// are never modified once recorded, so the chunks need no long-lived read
// transaction and hold no connection between reads (a reader survives a
// lost connection too).
func (s *Store) OpenCiphertext(ctx context.Context, recipient, id string) (io.ReadCloser, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if err := store.ValidateRef(recipient, id); err != nil {
		return nil, err
	}
	var size int64
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.sql.ciphertextRef, id, recipient).Scan(&size)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: ciphertext of %s of %s: %w", id, recipient, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail("open ciphertext of "+id, err)
	}
	return store.NewChunkReader(ctx, "postgres", id, size, chunks{s, id}), nil
}

// chunks gives store.NewChunkReader the chunks of record id.
type chunks struct {
	s  *Store
	id string
}

func (c chunks) Live() error { return c.s.live() }

func (c chunks) Chunk(ctx context.Context, index int64) ([]byte, bool, error) {
	var data []byte
	err := c.s.retry(ctx, func(ctx context.Context) error {
		return c.s.pool.QueryRow(ctx, c.s.sql.chunk, c.id, index).Scan(&data)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, c.s.fail(fmt.Sprintf("ciphertext of %s: chunk %d", c.id, index), err)
	}
	return data, true, nil
}

func (c chunks) ChunksFrom(ctx context.Context, index int64) (int64, error) {
	var n int64
	err := c.s.retry(ctx, func(ctx context.Context) error {
		return c.s.pool.QueryRow(ctx, c.s.sql.chunksFrom, c.id, index).Scan(&n)
	})
	if err != nil {
		return 0, c.s.fail("ciphertext of "+c.id, err)
	}
	return n, nil
}

// List implements [store.Inbox.List].
func (s *Store) List(ctx context.Context, q store.Query) ([]store.Record, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var out []store.Record
	err := s.retry(ctx, func(ctx context.Context) error {
		out = nil
		rows, err := s.pool.Query(ctx, s.sql.list, q.Recipient, q.AfterSeq, q.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecord(rows, nil)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.fail("list "+q.Recipient, err)
	}
	return out, nil
}

// Count implements [store.Inbox.Count].
func (s *Store) Count(ctx context.Context, recipient string) (int64, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	query, args := s.sql.countAll, []any(nil)
	if recipient != "" {
		if err := store.ValidateID("recipient", recipient); err != nil {
			return 0, err
		}
		query, args = s.sql.count, []any{recipient}
	}
	var n int64
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, query, args...).Scan(&n)
	})
	if err != nil {
		return 0, s.fail("count", err)
	}
	return n, nil
}
