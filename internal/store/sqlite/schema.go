package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// applicationID marks a SQLite file as a taxlink store (PRAGMA
// application_id): "TXLK".
const applicationID = 0x54584C4B

// migrations returns the schema migrations in order: migrations()[i] takes
// the schema from version i to version i+1 (PRAGMA user_version). Entries
// are only ever appended; a released entry is never edited.
func migrations() []string {
	return []string{
		// 1: the inbox.
		`
CREATE TABLE records (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
	id              TEXT    NOT NULL UNIQUE,
	type            TEXT    NOT NULL,
	sender          TEXT    NOT NULL,
	recipient       TEXT    NOT NULL,
	created_ns      INTEGER NOT NULL,
	recorded_ns     INTEGER NOT NULL,
	header          BLOB    NOT NULL,
	signature       BLOB    NOT NULL,
	ciphertext_size INTEGER NOT NULL CHECK (ciphertext_size >= 0),
	receipt         BLOB    NOT NULL
) STRICT;
CREATE INDEX records_by_recipient ON records (recipient, seq);
CREATE TABLE chunks (
	record_seq INTEGER NOT NULL REFERENCES records (seq) ON DELETE CASCADE,
	idx        INTEGER NOT NULL CHECK (idx >= 0),
	data       BLOB    NOT NULL,
	PRIMARY KEY (record_seq, idx)
) STRICT;
`,
		// 2: the outbox and named cursors.
		`
CREATE TABLE outgoing (
	id            TEXT    NOT NULL PRIMARY KEY,
	type          TEXT    NOT NULL,
	sender        TEXT    NOT NULL,
	recipient     TEXT    NOT NULL,
	created_ns    INTEGER NOT NULL,
	envelope_path TEXT    NOT NULL,
	accepted      BLOB,
	accepted_ns   INTEGER,
	recorded      BLOB,
	recorded_ns   INTEGER,
	last_error    TEXT    NOT NULL DEFAULT '',
	CHECK ((accepted IS NULL) = (accepted_ns IS NULL)),
	CHECK ((recorded IS NULL) = (recorded_ns IS NULL))
) STRICT, WITHOUT ROWID;
CREATE INDEX outgoing_pending ON outgoing (created_ns, id)
	WHERE accepted IS NULL AND recorded IS NULL;
CREATE TABLE cursors (
	name  TEXT    NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL -- a uint64, stored bit for bit as an int64
) STRICT, WITHOUT ROWID;
`,
		// 3: where the hub's ledger holds each recording receipt.
		`
ALTER TABLE outgoing ADD COLUMN recorded_index INTEGER CHECK (recorded_index >= 0);
`,
		// 4: small envelopes held in the outbox itself, committed with
		// their entry instead of synced to side files one by one.
		`
ALTER TABLE outgoing ADD COLUMN envelope BLOB;
`,
	}
}

// migrate brings the schema to the latest version in one IMMEDIATE
// transaction, so that processes opening the same file at once apply each
// migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	ms := migrations()
	return s.write(ctx, "migrate", func(tx *sql.Tx) error {
		var version, appID int64
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
			return fmt.Errorf("reading the application ID: %w", err)
		}
		switch {
		case appID != applicationID && appID != 0:
			return fmt.Errorf("%w: application_id is %#x, want %#x", ErrForeign, appID, applicationID)
		case appID == 0 && version != 0:
			return fmt.Errorf("%w: application_id is unset but user_version is %d", ErrForeign, version)
		case version > int64(len(ms)):
			return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrSchemaTooNew, version, len(ms))
		}
		if version == 0 {
			var n int64
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
				return fmt.Errorf("inspecting a new database: %w", err)
			}
			if n != 0 {
				return fmt.Errorf("%w: an unversioned database already holds %d schema objects", ErrForeign, n)
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
				return fmt.Errorf("setting the application ID: %w", err)
			}
		}
		for v := version; v < int64(len(ms)); v++ {
			if _, err := tx.ExecContext(ctx, ms[v]); err != nil {
				return fmt.Errorf("migrating the schema to version %d: %w", v+1, err)
			}
		}
		if version < int64(len(ms)) {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(ms))); err != nil {
				return fmt.Errorf("setting the schema version to %d: %w", len(ms), err)
			}
		}
		return nil
	})
}
