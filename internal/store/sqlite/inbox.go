package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"taxlink/internal/store"
)

const recordColumns = `seq, id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt`

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (store.Record, error) {
	var r store.Record
	var created, recorded int64
	err := sc.Scan(&r.Seq, &r.ID, &r.Type, &r.Sender, &r.Recipient, &created, &recorded,
		&r.Header, &r.Signature, &r.CiphertextSize, &r.Receipt)
	r.Created, r.RecordedAt = fromNS(created), fromNS(recorded)
	return r, err
}

// The statements of the inbox, prepared once by Open.
const (
	sqlRecordByID    = `SELECT ` + recordColumns + ` FROM records WHERE id = ?`
	sqlRecordByRef   = `SELECT ` + recordColumns + ` FROM records WHERE id = ? AND recipient = ?`
	sqlInsertRecord  = `INSERT INTO records (id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlInsertChunk   = `INSERT INTO chunks (record_seq, idx, data) VALUES (?, ?, ?)`
	sqlCiphertextRef = `SELECT seq, ciphertext_size FROM records WHERE id = ? AND recipient = ?`
	sqlChunk         = `SELECT data FROM chunks WHERE record_seq = ? AND idx = ?`
	sqlChunksFrom    = `SELECT count(*) FROM chunks WHERE record_seq = ? AND idx >= ?`
	sqlList          = `SELECT ` + recordColumns + ` FROM records WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?`
)

// Record implements [store.Inbox.Record]. The ciphertext is staged (in
// memory below one chunk, in an unlinked spool file otherwise) before the
// write transaction begins; at most CiphertextSize+1 bytes are read from r.
// ctx is not consulted while r is read: a reader that may block must end
// on cancellation itself.
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

	// Fast path, without the write lock: a re-delivery of a recorded
	// envelope does not read r at all.
	got, err := scanRecord(s.stmts[sqlRecordByID].QueryRowContext(ctx, rec.ID))
	switch {
	case err == nil:
		return sameRecord(got, rec)
	case !errors.Is(err, sql.ErrNoRows):
		return store.Record{}, false, s.fail("record "+rec.ID, err)
	}

	st, err := store.Stage("sqlite", rec, r, s.opts.chunkSize, s.opts.spoolDir)
	if err != nil {
		return store.Record{}, false, err
	}
	defer st.Close()
	if err := ctx.Err(); err != nil {
		return store.Record{}, false, fmt.Errorf("sqlite: record %s: %w", rec.ID, err)
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
	err = s.write(ctx, "record "+rec.ID, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts[sqlInsertRecord]).ExecContext(ctx,
			rec.ID, rec.Type, rec.Sender, rec.Recipient, toNS(rec.Created), toNS(rec.RecordedAt),
			rec.Header, rec.Signature, rec.CiphertextSize, rec.Receipt)
		if err != nil {
			return s.fail("record "+rec.ID+": inserting the record", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.fail("record "+rec.ID, err)
		} else if n == 0 { // recorded while we staged
			got, err := scanRecord(tx.StmtContext(ctx, s.stmts[sqlRecordByID]).QueryRowContext(ctx, rec.ID))
			if err != nil {
				return s.fail("record "+rec.ID+": reading the existing record", err)
			}
			stored, existed, err = sameRecord(got, rec)
			return err
		}
		if stored.Seq, err = res.LastInsertId(); err != nil {
			return s.fail("record "+rec.ID+": reading its seq", err)
		}
		if err := s.insertChunks(ctx, tx, stored.Seq, st); err != nil {
			return fmt.Errorf("sqlite: record %s: %w", rec.ID, err)
		}
		return nil
	})
	if err != nil {
		return store.Record{}, false, err
	}
	return stored, existed, nil
}

// sameRecord decides a Record of an ID that exists as got.
func sameRecord(got, rec store.Record) (store.Record, bool, error) {
	if !bytes.Equal(got.Header, rec.Header) {
		return store.Record{}, false, fmt.Errorf("sqlite: record %s: %w: header bytes differ from those recorded at seq %d", rec.ID, store.ErrConflict, got.Seq)
	}
	return got, true, nil
}

// insertChunks stores the staged ciphertext as the chunks of record seq.
func (s *Store) insertChunks(ctx context.Context, tx *sql.Tx, seq int64, st *store.Staged) error {
	stmt := tx.StmtContext(ctx, s.stmts[sqlInsertChunk])
	defer stmt.Close()
	if st.File == nil {
		if len(st.Mem) == 0 {
			return nil
		}
		if _, err := stmt.ExecContext(ctx, seq, 0, st.Mem); err != nil {
			return s.fail("inserting chunk 0", err)
		}
		return nil
	}
	buf := make([]byte, s.opts.chunkSize)
	var total int64
	for idx := 0; ; idx++ {
		n, err := io.ReadFull(st.File, buf)
		if n > 0 {
			if _, err := stmt.ExecContext(ctx, seq, idx, buf[:n]); err != nil {
				return s.fail(fmt.Sprintf("inserting chunk %d", idx), err)
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the spool file: %w", err)
		}
	}
	if total != st.Size {
		return fmt.Errorf("spool file held %d bytes, %d were spooled", total, st.Size)
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
	r, err := scanRecord(s.stmts[sqlRecordByRef].QueryRowContext(ctx, id, recipient))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("sqlite: record %s of %s: %w", id, recipient, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, s.fail("get "+id, err)
	}
	return r, nil
}

// OpenCiphertext implements [store.Inbox.OpenCiphertext]. Each Read that
// needs a new chunk fetches just that chunk, in its own statement; records
// are never modified once recorded, so the chunks need no long-lived read
// transaction and hold no connection between reads.
func (s *Store) OpenCiphertext(ctx context.Context, recipient, id string) (io.ReadCloser, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	if err := store.ValidateRef(recipient, id); err != nil {
		return nil, err
	}
	var seq, size int64
	err := s.stmts[sqlCiphertextRef].QueryRowContext(ctx, id, recipient).Scan(&seq, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: ciphertext of %s of %s: %w", id, recipient, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail("open ciphertext of "+id, err)
	}
	return store.NewChunkReader(ctx, "sqlite", id, size, chunks{s, id, seq}), nil
}

// chunks gives store.NewChunkReader the chunks of the record at seq.
type chunks struct {
	s   *Store
	id  string
	seq int64
}

func (c chunks) Live() error { return c.s.live() }

func (c chunks) Chunk(ctx context.Context, index int64) ([]byte, bool, error) {
	var data []byte
	err := c.s.stmts[sqlChunk].QueryRowContext(ctx, c.seq, index).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, c.s.fail(fmt.Sprintf("ciphertext of %s: chunk %d", c.id, index), err)
	}
	return data, true, nil
}

func (c chunks) ChunksFrom(ctx context.Context, index int64) (int64, error) {
	var n int64
	if err := c.s.stmts[sqlChunksFrom].QueryRowContext(ctx, c.seq, index).Scan(&n); err != nil {
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
	rows, err := s.stmts[sqlList].QueryContext(ctx, q.Recipient, q.AfterSeq, q.Limit)
	if err != nil {
		return nil, s.fail("list "+q.Recipient, err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, s.fail("list "+q.Recipient, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list "+q.Recipient, err)
	}
	return out, nil
}

// Count implements [store.Inbox.Count].
func (s *Store) Count(ctx context.Context, recipient string) (int64, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	var n int64
	var err error
	if recipient == "" {
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n)
	} else {
		if err := store.ValidateID("recipient", recipient); err != nil {
			return 0, err
		}
		err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE recipient = ?`, recipient).Scan(&n)
	}
	if err != nil {
		return 0, s.fail("count", err)
	}
	return n, nil
}
