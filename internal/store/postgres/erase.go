package postgres

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"taxlink/internal/store"
)

// Erase implements [store.Inbox.Erase] with one statement (an implicit
// transaction) that deletes the chosen records and their chunks. The rows
// are removed at COMMIT; their space, and the old tuple versions holding
// the ciphertext, stay in the table files until VACUUM (autovacuum, or an
// operator's VACUUM of the records and chunks tables) reclaims them. Erase
// runs no VACUUM itself, and never VACUUM FULL.
//
// A transient failure is retried; when the connection is lost during the
// COMMIT of an attempt that did commit, the retry finds those records gone
// and the result reports only what the retry erased.
func (s *Store) Erase(ctx context.Context, q store.EraseQuery) (store.Erased, error) {
	if err := s.live(); err != nil {
		return store.Erased{}, err
	}
	if err := q.Validate(); err != nil {
		return store.Erased{}, err
	}
	type gone struct {
		seq, size int64
		id        string
	}
	var erased []gone
	err := s.retry(ctx, func(ctx context.Context) error {
		erased = nil
		rows, err := s.pool.Query(ctx, s.eraseSQL(), q.Recipient, q.Type, toNS(q.RecordedBefore), q.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g gone
			if err := rows.Scan(&g.seq, &g.id, &g.size); err != nil {
				return err
			}
			erased = append(erased, g)
		}
		return rows.Err()
	})
	if err != nil {
		return store.Erased{}, s.fail("erase records of "+q.Recipient, err)
	}
	slices.SortFunc(erased, func(a, b gone) int { return cmp.Compare(a.seq, b.seq) })
	out := store.Erased{Count: int64(len(erased))}
	for _, g := range erased {
		out.IDs = append(out.IDs, g.id)
		out.Bytes += g.size
	}
	return out, nil
}

// eraseSQL is the statement of Erase: $1 recipient, $2 type ("" = all),
// $3 the exclusive bound of recorded_ns, $4 the limit.
func (s *Store) eraseSQL() string {
	q := pgx.Identifier{s.opts.schema}.Sanitize()
	return `WITH doomed AS (
	SELECT seq, id FROM ` + q + `.records
	WHERE recipient = $1 AND ($2::text = '' OR type = $2::text) AND recorded_ns < $3
	ORDER BY seq LIMIT $4
	FOR UPDATE
), chunks_gone AS (
	DELETE FROM ` + q + `.chunks WHERE record_id IN (SELECT id FROM doomed)
)
DELETE FROM ` + q + `.records r USING doomed d WHERE r.seq = d.seq
RETURNING r.seq, r.id, r.ciphertext_size`
}

// Vacuum runs VACUUM on the records and chunks tables so that the erased
// rows' space is reclaimed. It implements store.Vacuumer. (VACUUM FULL,
// which also rewrites the files, takes an exclusive lock; an operator runs
// it in a maintenance window if the policy asks for it.)
func (s *Store) Vacuum(ctx context.Context) error {
	if err := s.live(); err != nil {
		return err
	}
	q := "VACUUM (ANALYZE) " + pgx.Identifier{s.opts.schema, "records"}.Sanitize() + ", " + s.chunks.Sanitize()
	if _, err := s.pool.Exec(ctx, q); err != nil {
		return s.fail("vacuum", err)
	}
	return nil
}
