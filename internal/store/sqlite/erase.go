package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"taxlink/internal/store"
)

// Erase implements [store.Inbox.Erase] in one IMMEDIATE transaction. The
// connections run with secure_delete on, so SQLite overwrites the freed
// pages of the records and their chunks with zeros as it deletes them; the
// old pages remain in the write-ahead log until its next checkpoint.
func (s *Store) Erase(ctx context.Context, q store.EraseQuery) (store.Erased, error) {
	if err := s.live(); err != nil {
		return store.Erased{}, err
	}
	if err := q.Validate(); err != nil {
		return store.Erased{}, err
	}
	op := "erase records of " + q.Recipient
	var out store.Erased
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		out = store.Erased{}
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, ciphertext_size FROM records
WHERE recipient = ? AND (? = '' OR type = ?) AND recorded_ns < ? ORDER BY seq LIMIT ?`,
			q.Recipient, q.Type, q.Type, toNS(q.RecordedBefore), q.Limit)
		if err != nil {
			return s.fail(op, err)
		}
		var seqs []int64
		for rows.Next() {
			var seq, size int64
			var id string
			if err := rows.Scan(&seq, &id, &size); err != nil {
				rows.Close()
				return s.fail(op, err)
			}
			seqs = append(seqs, seq)
			out.IDs = append(out.IDs, id)
			out.Bytes += size
		}
		if err := rows.Err(); err != nil {
			return s.fail(op, err)
		}
		rows.Close()
		delChunks, err := tx.PrepareContext(ctx, `DELETE FROM chunks WHERE record_seq = ?`)
		if err != nil {
			return s.fail(op, err)
		}
		defer delChunks.Close()
		delRecord, err := tx.PrepareContext(ctx, `DELETE FROM records WHERE seq = ?`)
		if err != nil {
			return s.fail(op, err)
		}
		defer delRecord.Close()
		for _, seq := range seqs {
			if _, err := delChunks.ExecContext(ctx, seq); err != nil {
				return s.fail(op+": deleting chunks", err)
			}
			if _, err := delRecord.ExecContext(ctx, seq); err != nil {
				return s.fail(op+": deleting a record", err)
			}
		}
		out.Count = int64(len(seqs))
		return nil
	})
	if err != nil {
		return store.Erased{}, err
	}
	return out, nil
}

// Vacuum checkpoints the write-ahead log into the database and truncates
// it (secure_delete has already zeroed the freed pages; the log held their
// old images), then rebuilds the database file so that freed pages leave
// it. It implements store.Vacuumer.
func (s *Store) Vacuum(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: vacuum: %w", store.ErrClosed)
	}
	for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return s.fail("vacuum", err)
		}
	}
	return nil
}
