package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"taxlink/internal/store"
)

var _ store.NodeStore = (*Store)(nil)

// The outbox and the cursors ([store.Outbox]) behave exactly as in
// store/sqlite. Every operation is one statement (an implicit transaction)
// re-run after a transient failure like the inbox's (see the package
// documentation); each is safe to re-run: the updates are conditional and
// idempotent, and Enqueue recognizes the row of an earlier attempt of the
// same call by its random token.

const outgoingColumns = `id, type, sender, recipient, created_ns, envelope_path, accepted, accepted_ns, recorded, recorded_ns, last_error, recorded_index`

// outboxSQL returns the statements of the outbox, naming the tables of
// schema q (sanitized).
func outboxSQL(q string) map[string]string {
	o, c := q+".outgoing", q+".cursors"
	return map[string]string{
		"enqueue": `INSERT INTO ` + o + ` (id, type, sender, recipient, created_ns, envelope_path, last_error, attempt, envelope)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
		"attempt": `SELECT attempt FROM ` + o + ` WHERE id = $1`,
		"pending": `SELECT ` + outgoingColumns + ` FROM ` + o + `
WHERE accepted IS NULL AND recorded IS NULL ORDER BY created_ns, id LIMIT $1`,
		"list": `SELECT ` + outgoingColumns + ` FROM ` + o + ` WHERE id > $1 ORDER BY id LIMIT $2`,
		"get":  `SELECT ` + outgoingColumns + `, envelope FROM ` + o + ` WHERE id = $1`,
		// The EXISTS sees the snapshot the UPDATE started from.
		"accepted": `WITH u AS (UPDATE ` + o + ` SET accepted = $2, accepted_ns = $3, envelope = NULL WHERE id = $1 AND accepted IS NULL RETURNING 1)
SELECT (SELECT count(*) FROM u), EXISTS (SELECT 1 FROM ` + o + ` WHERE id = $1)`,
		"recorded": `WITH u AS (UPDATE ` + o + ` SET recorded = $2, recorded_ns = $3 WHERE id = $1 AND recorded IS NULL RETURNING 1)
SELECT (SELECT count(*) FROM u), EXISTS (SELECT 1 FROM ` + o + ` WHERE id = $1)`,
		"index": `WITH u AS (UPDATE ` + o + ` SET recorded_index = $2 WHERE id = $1 AND (recorded_index IS NULL OR recorded_index = $2) RETURNING 1)
SELECT (SELECT count(*) FROM u), EXISTS (SELECT 1 FROM ` + o + ` WHERE id = $1)`,
		"lastError": `UPDATE ` + o + ` SET last_error = $2 WHERE id = $1`,
		"counts":    `SELECT count(*), count(accepted), count(recorded) FROM ` + o,
		"cursor":    `SELECT value FROM ` + c + ` WHERE name = $1`,
		"setCursor": `INSERT INTO ` + c + ` (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
	}
}

// osql returns the outbox statement named key.
func (s *Store) osql(key string) string {
	return s.outbox[key]
}

// scanOutgoing scans the outgoingColumns, then into extra.
func scanOutgoing(row pgx.Row, extra ...any) (store.Outgoing, error) {
	var o store.Outgoing
	var created int64
	var accepted, recorded, index *int64
	err := row.Scan(append([]any{&o.ID, &o.Type, &o.Sender, &o.Recipient, &created, &o.EnvelopePath,
		&o.Accepted, &accepted, &o.Recorded, &recorded, &o.LastError, &index}, extra...)...)
	o.Created = fromNS(created)
	if accepted != nil {
		o.AcceptedAt = fromNS(*accepted)
	}
	if recorded != nil {
		o.RecordedAt = fromNS(*recorded)
	}
	o.RecordedIndex = -1
	if index != nil {
		o.RecordedIndex = *index
	}
	return o, err
}

// Enqueue implements [store.Outbox.Enqueue].
func (s *Store) Enqueue(ctx context.Context, o store.Outgoing) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := o.ValidateNew(); err != nil {
		return err
	}
	op := "enqueue " + o.ID
	var tokens [][]byte // of every attempt of this call
	err := s.retry(ctx, func(ctx context.Context) error {
		token := make([]byte, 16)
		rand.Read(token) // never fails
		tokens = append(tokens, token)
		tag, err := s.pool.Exec(ctx, s.osql("enqueue"), o.ID, o.Type, o.Sender, o.Recipient, toNS(o.Created), o.EnvelopePath, o.LastError, token, o.Envelope)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var attempt []byte
		err = s.pool.QueryRow(ctx, s.osql("attempt"), o.ID).Scan(&attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: the outgoing %s was there and is gone", errRaced, o.ID)
		}
		if err != nil {
			return err
		}
		// A row inserted by an earlier attempt of this call, whose
		// COMMIT succeeded although the attempt failed, is ours.
		for _, t := range tokens {
			if bytes.Equal(t, attempt) {
				return nil
			}
		}
		return fmt.Errorf("postgres: %s: %w: already in the outbox", op, store.ErrConflict)
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return s.fail(op, err)
	}
	return err
}

// Pending implements [store.Outbox.Pending].
func (s *Store) Pending(ctx context.Context, limit int) ([]store.Outgoing, error) {
	if err := store.ValidateLimit(limit); err != nil {
		return nil, err
	}
	return s.listOutgoing(ctx, "pending", s.osql("pending"), limit)
}

// ListOutgoing implements [store.Outbox.ListOutgoing].
func (s *Store) ListOutgoing(ctx context.Context, afterID string, limit int) ([]store.Outgoing, error) {
	if err := store.ValidateLimit(limit); err != nil {
		return nil, err
	}
	return s.listOutgoing(ctx, "list outgoing", s.osql("list"), afterID, limit)
}

func (s *Store) listOutgoing(ctx context.Context, op, query string, args ...any) ([]store.Outgoing, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	var out []store.Outgoing
	err := s.retry(ctx, func(ctx context.Context) error {
		out = nil
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			o, err := scanOutgoing(rows)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// GetOutgoing implements [store.Outbox.GetOutgoing].
func (s *Store) GetOutgoing(ctx context.Context, id string) (store.Outgoing, error) {
	if err := s.live(); err != nil {
		return store.Outgoing{}, err
	}
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return store.Outgoing{}, err
	}
	var o store.Outgoing
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		var env []byte
		o, err = scanOutgoing(s.pool.QueryRow(ctx, s.osql("get"), id), &env)
		o.Envelope = env
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Outgoing{}, fmt.Errorf("postgres: outgoing %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Outgoing{}, s.fail("get outgoing "+id, err)
	}
	return o, nil
}

// MarkAccepted implements [store.Outbox.MarkAccepted].
func (s *Store) MarkAccepted(ctx context.Context, id string, receipt []byte, at time.Time) error {
	return s.mark(ctx, "accepted", id, receipt, at, -1)
}

// MarkRecorded implements [store.Outbox.MarkRecorded]: with an index, its
// two updates run in one transaction.
func (s *Store) MarkRecorded(ctx context.Context, id string, receipt []byte, at time.Time, index int64) error {
	return s.mark(ctx, "recorded", id, receipt, at, index)
}

// mark sets what (accepted or recorded) and its time once and, with index
// >= 0, the recorded index (set once).
func (s *Store) mark(ctx context.Context, what, id string, receipt []byte, at time.Time, index int64) error {
	if err := s.live(); err != nil {
		return err
	}
	op := "mark " + id + " " + what
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if len(receipt) == 0 || len(receipt) > store.MaxHeaderLen {
		return fmt.Errorf("%w: %s: receipt is %d bytes, want 1..%d", store.ErrInvalid, op, len(receipt), store.MaxHeaderLen)
	}
	if !at.IsZero() && !store.InTimeRange(at) {
		return fmt.Errorf("%w: %s: time %v is outside the storable range", store.ErrInvalid, op, at)
	}
	if at.IsZero() {
		at = s.opts.now() // once, so that a re-run stores the same time
	}
	if index < 0 {
		_, exists, err := s.update(ctx, s.pool, s.osql(what), id, receipt, toNS(at))
		switch {
		case err != nil:
			return s.fail(op, err)
		case !exists:
			return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
		}
		return nil // marked now, or already marked (the first mark stays)
	}
	errConflict := errors.New("another index is already stored")
	err := s.retry(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			_, exists, err := updateOnce(ctx, tx, s.osql(what), id, receipt, toNS(at))
			if err != nil || !exists {
				return cmp.Or(err, store.ErrNotFound)
			}
			if updated, _, err := updateOnce(ctx, tx, s.osql("index"), id, index); err != nil || !updated {
				return cmp.Or(err, errConflict)
			}
			return nil
		})
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	case errors.Is(err, errConflict):
		return fmt.Errorf("%w: %s: %w", store.ErrConflict, op, errConflict)
	case err != nil:
		return s.fail(op, err)
	}
	return nil
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// update runs one of the conditional update statements on q, retrying,
// and returns whether it updated the row and whether the row exists.
func (s *Store) update(ctx context.Context, q rowQuerier, query string, args ...any) (updated, exists bool, err error) {
	err = s.retry(ctx, func(ctx context.Context) error {
		updated, exists, err = updateOnce(ctx, q, query, args...)
		return err
	})
	return updated, exists, err
}

// updateOnce runs one of the conditional update statements on q once.
func updateOnce(ctx context.Context, q rowQuerier, query string, args ...any) (updated, exists bool, err error) {
	var n int64
	if err := q.QueryRow(ctx, query, args...).Scan(&n, &exists); err != nil {
		return false, false, err
	}
	return n == 1, exists, nil
}

// SetRecordedIndex implements [store.Outbox.SetRecordedIndex].
func (s *Store) SetRecordedIndex(ctx context.Context, id string, index int64) error {
	if err := s.live(); err != nil {
		return err
	}
	op := "set recorded index of " + id
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if index < 0 {
		return fmt.Errorf("%w: %s: index %d is negative", store.ErrInvalid, op, index)
	}
	updated, exists, err := s.update(ctx, s.pool, s.osql("index"), id, index)
	switch {
	case err != nil:
		return s.fail(op, err)
	case updated:
		return nil
	case !exists:
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%w: %s: another index is already stored", store.ErrConflict, op)
}

// SetLastError implements [store.Outbox.SetLastError].
func (s *Store) SetLastError(ctx context.Context, id, code string) error {
	if err := s.live(); err != nil {
		return err
	}
	op := "set last error of " + id
	if err := store.ValidateID("outgoing ID", id); err != nil {
		return err
	}
	if err := store.ValidateErrorCode(code); err != nil {
		return err
	}
	var n int64
	err := s.retry(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, s.osql("lastError"), id, code)
		n = tag.RowsAffected()
		return err
	})
	switch {
	case err != nil:
		return s.fail(op, err)
	case n == 0:
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

// OutgoingCounts implements [store.Outbox.OutgoingCounts].
func (s *Store) OutgoingCounts(ctx context.Context) (total, accepted, recorded int64, err error) {
	if err := s.live(); err != nil {
		return 0, 0, 0, err
	}
	err = s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.osql("counts")).Scan(&total, &accepted, &recorded)
	})
	if err != nil {
		return 0, 0, 0, s.fail("outgoing counts", err)
	}
	return total, accepted, recorded, nil
}

// Cursor implements [store.Outbox.Cursor].
func (s *Store) Cursor(ctx context.Context, name string) (uint64, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	if err := store.ValidateID("cursor name", name); err != nil {
		return 0, err
	}
	var v int64
	err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.osql("cursor"), name).Scan(&v)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("cursor "+name, err)
	}
	return uint64(v), nil
}

// SetCursor implements [store.Outbox.SetCursor].
func (s *Store) SetCursor(ctx context.Context, name string, v uint64) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := store.ValidateID("cursor name", name); err != nil {
		return err
	}
	err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, s.osql("setCursor"), name, int64(v))
		return err
	})
	if err != nil {
		return s.fail("set cursor "+name, err)
	}
	return nil
}
