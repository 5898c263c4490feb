package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"taxlink/internal/store"
)

// MaxErrorCodeLen bounds Outgoing.LastError in bytes.
const MaxErrorCodeLen = store.MaxErrorCodeLen

// Outgoing is an envelope this node submitted (or will submit) to the hub;
// see [store.Outgoing].
type Outgoing = store.Outgoing

var _ store.NodeStore = (*Store)(nil)

const outgoingColumns = `id, type, sender, recipient, created_ns, envelope_path, accepted, accepted_ns, recorded, recorded_ns, last_error, recorded_index`

// The outbox's statements run for every notification a node sends,
// prepared once (see prepare).
const (
	sqlEnqueue = `INSERT INTO outgoing (id, type, sender, recipient, created_ns, envelope_path, last_error, envelope)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlGetOutgoing = `SELECT ` + outgoingColumns + `, envelope FROM outgoing WHERE id = ?`
	// The hub holds the envelope once it accepted it.
	sqlMarkAccepted   = `UPDATE outgoing SET accepted = ?, accepted_ns = ?, envelope = NULL WHERE id = ? AND accepted IS NULL`
	sqlMarkRecorded   = `UPDATE outgoing SET recorded = ?, recorded_ns = ? WHERE id = ? AND recorded IS NULL`
	sqlRecordedIndex  = `UPDATE outgoing SET recorded_index = ? WHERE id = ? AND (recorded_index IS NULL OR recorded_index = ?)`
	sqlOutgoingExists = `SELECT 1 FROM outgoing WHERE id = ?`
	sqlCursor         = `SELECT value FROM cursors WHERE name = ?`
	sqlSetCursor      = `INSERT INTO cursors (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`
)

// scanOutgoing scans the outgoingColumns, then into extra.
func scanOutgoing(sc scanner, extra ...any) (Outgoing, error) {
	var o Outgoing
	var created int64
	var accepted, recorded, index sql.NullInt64
	err := sc.Scan(append([]any{&o.ID, &o.Type, &o.Sender, &o.Recipient, &created, &o.EnvelopePath,
		&o.Accepted, &accepted, &o.Recorded, &recorded, &o.LastError, &index}, extra...)...)
	o.Created, o.AcceptedAt, o.RecordedAt = fromNS(created), fromNullNS(accepted), fromNullNS(recorded)
	o.RecordedIndex = -1
	if index.Valid {
		o.RecordedIndex = index.Int64
	}
	return o, err
}

// SetRecordedIndex stores where the hub's ledger holds envelope id's
// recording receipt (set once; a repeat with the same index is a no-op).
func (s *Store) SetRecordedIndex(ctx context.Context, id string, index int64) error {
	op := "set recorded index of " + id
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if index < 0 {
		return fmt.Errorf("%w: %s: index %d is negative", store.ErrInvalid, op, index)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error { return s.setIndex(ctx, tx, op, id, index) })
}

// setIndex stores the recorded index of id in tx, once.
func (s *Store) setIndex(ctx context.Context, tx *sql.Tx, op, id string, index int64) error {
	res, err := tx.StmtContext(ctx, s.stmts[sqlRecordedIndex]).ExecContext(ctx, index, id, index)
	if err != nil {
		return s.fail(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail(op, err)
	} else if n == 1 {
		return nil
	}
	if err := s.exists(ctx, tx, op, id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: another index is already stored", store.ErrConflict, op)
}

// validateErrorCode reports, wrapping store.ErrInvalid, a code that is too
// long or holds control characters or invalid UTF-8; "" is valid.
func validateErrorCode(code string) error { return store.ValidateErrorCode(code) }

// validateLimit reports, wrapping store.ErrInvalid, a page size outside
// 1..store.MaxListLimit.
func validateLimit(limit int) error { return store.ValidateLimit(limit) }

// Enqueue durably records o, a new envelope to submit, before it is first
// submitted. ID, Type, Sender and Recipient must be valid identifiers
// (store.ValidateID), Created set, one of EnvelopePath and Envelope, Accepted,
// Recorded, AcceptedAt and RecordedAt unset, and LastError a valid error
// code; otherwise store.ErrInvalid. It fails with store.ErrConflict if the
// ID is already in the outbox, which is left unchanged.
func (s *Store) Enqueue(ctx context.Context, o Outgoing) error {
	if err := o.ValidateNew(); err != nil {
		return err
	}
	return s.write(ctx, "enqueue "+o.ID, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts[sqlEnqueue]).ExecContext(ctx,
			o.ID, o.Type, o.Sender, o.Recipient, toNS(o.Created), o.EnvelopePath, o.LastError, o.Envelope)
		if err != nil {
			return s.fail("enqueue "+o.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.fail("enqueue "+o.ID, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: enqueue %s: %w: already in the outbox", o.ID, store.ErrConflict)
		}
		return nil
	})
}

// Pending returns up to limit (1..store.MaxListLimit) envelopes that are
// neither accepted nor recorded, oldest Created first (ties by ID).
func (s *Store) Pending(ctx context.Context, limit int) ([]Outgoing, error) {
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	return s.listOutgoing(ctx, "pending", `SELECT `+outgoingColumns+` FROM outgoing
WHERE accepted IS NULL AND recorded IS NULL ORDER BY created_ns, id LIMIT ?`, limit)
}

// ListOutgoing returns up to limit (1..store.MaxListLimit) envelopes of the
// outbox with an ID greater than afterID ("" starts at the beginning),
// ordered by ID. Pass the last ID of a page to get the next one.
func (s *Store) ListOutgoing(ctx context.Context, afterID string, limit int) ([]Outgoing, error) {
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	return s.listOutgoing(ctx, "list outgoing", `SELECT `+outgoingColumns+` FROM outgoing
WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

func (s *Store) listOutgoing(ctx context.Context, op, query string, args ...any) ([]Outgoing, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var out []Outgoing
	for rows.Next() {
		o, err := scanOutgoing(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// GetOutgoing returns the outbox entry with that ID, or store.ErrNotFound.
func (s *Store) GetOutgoing(ctx context.Context, id string) (Outgoing, error) {
	if err := s.live(); err != nil {
		return Outgoing{}, err
	}
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return Outgoing{}, err
	}
	var env []byte
	o, err := scanOutgoing(s.stmts[sqlGetOutgoing].QueryRowContext(ctx, id), &env)
	o.Envelope = env
	if errors.Is(err, sql.ErrNoRows) {
		return Outgoing{}, fmt.Errorf("sqlite: outgoing %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Outgoing{}, s.fail("get outgoing "+id, err)
	}
	return o, nil
}

// MarkAccepted records the hub's acceptance receipt of envelope id, taking
// it out of Pending and dropping its inline envelope. It is idempotent: once accepted, later calls leave the
// first receipt and time in place and return nil. A zero at means now. It
// fails with store.ErrNotFound for an unknown id and store.ErrInvalid for
// an empty receipt.
func (s *Store) MarkAccepted(ctx context.Context, id string, receipt []byte, at time.Time) error {
	return s.mark(ctx, "accepted", id, receipt, at, -1)
}

// MarkRecorded records the recipient's recording receipt of envelope id,
// taking it out of Pending (recorded implies delivered, even if the
// acceptance was never marked). It is idempotent like MarkAccepted and fails
// the same way, with store.ErrNotFound for an unknown id. With index >= 0
// it also stores the recorded index, as SetRecordedIndex does, in the same
// write.
func (s *Store) MarkRecorded(ctx context.Context, id string, receipt []byte, at time.Time, index int64) error {
	return s.mark(ctx, "recorded", id, receipt, at, index)
}

// mark sets column (accepted or recorded, a constant) and its time once
// and, with index >= 0, the recorded index.
func (s *Store) mark(ctx context.Context, column, id string, receipt []byte, at time.Time, index int64) error {
	query := sqlMarkRecorded
	if column == "accepted" {
		query = sqlMarkAccepted
	}
	op := "mark " + id + " " + column
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if len(receipt) == 0 || len(receipt) > store.MaxHeaderLen {
		return fmt.Errorf("%w: %s: receipt is %d bytes, want 1..%d", store.ErrInvalid, op, len(receipt), store.MaxHeaderLen)
	}
	if !at.IsZero() && !store.InTimeRange(at) {
		return fmt.Errorf("%w: %s: time %v is outside the storable range", store.ErrInvalid, op, at)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if at.IsZero() {
			at = s.opts.now()
		}
		res, err := tx.StmtContext(ctx, s.stmts[query]).ExecContext(ctx, receipt, toNS(at), id)
		if err != nil {
			return s.fail(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return s.fail(op, err)
		}
		if n != 1 {
			if err := s.exists(ctx, tx, op, id); err != nil {
				return err
			}
		}
		if index < 0 {
			return nil
		}
		return s.setIndex(ctx, tx, op, id, index)
	})
}

// exists returns nil if id is in the outbox, else store.ErrNotFound.
func (s *Store) exists(ctx context.Context, q querier, op, id string) error {
	var one int
	err := q.QueryRowContext(ctx, sqlOutgoingExists, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// SetLastError records code, the last submission error of envelope id
// ("" clears it). code is an error code, never payload data: at most
// MaxErrorCodeLen bytes of UTF-8 without control characters, else
// store.ErrInvalid. It fails with store.ErrNotFound for an unknown id.
func (s *Store) SetLastError(ctx context.Context, id, code string) error {
	op := "set last error of " + id
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if err := validateErrorCode(code); err != nil {
		return err
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outgoing SET last_error = ? WHERE id = ?`, code, id)
		if err != nil {
			return s.fail(op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.fail(op, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
		}
		return nil
	})
}

// OutgoingCounts returns how many envelopes the outbox holds, how many of
// them are accepted and how many recorded.
func (s *Store) OutgoingCounts(ctx context.Context) (total, accepted, recorded int64, err error) {
	if err := s.live(); err != nil {
		return 0, 0, 0, err
	}
	err = s.db.QueryRowContext(ctx, `SELECT count(*), count(accepted), count(recorded) FROM outgoing`).
		Scan(&total, &accepted, &recorded)
	if err != nil {
		return 0, 0, 0, s.fail("outgoing counts", err)
	}
	return total, accepted, recorded, nil
}

// Cursor returns the value of the named cursor (a consumer's position in
// some stream), 0 if it was never set. name must be a valid identifier
// (store.ValidateID).
func (s *Store) Cursor(ctx context.Context, name string) (uint64, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	if err := store.ValidateID("cursor name", name); err != nil {
		return 0, err
	}
	var v int64
	err := s.stmts[sqlCursor].QueryRowContext(ctx, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("cursor "+name, err)
	}
	return uint64(v), nil
}

// SetCursor durably sets the named cursor to v; any uint64 round-trips.
func (s *Store) SetCursor(ctx context.Context, name string, v uint64) error {
	if err := store.ValidateID("cursor name", name); err != nil {
		return err
	}
	op := "set cursor " + name
	return s.write(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.stmts[sqlSetCursor]).ExecContext(ctx, name, int64(v))
		if err != nil {
			return s.fail(op, err)
		}
		return nil
	})
}
