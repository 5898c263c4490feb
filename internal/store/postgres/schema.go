package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrations returns the schema migrations in order: migrations()[i] takes
// the schema from version i to version i+1 (the highest version in the
// schema_version table). Each runs in its own transaction with the search
// path set to the store's schema, so it names tables unqualified. Entries
// are only ever appended; a released entry is never edited.
func migrations() []string {
	return []string{
		// 1: the inbox.
		`
CREATE TABLE records (
	-- Drawn under the commit-order lock (see the package documentation);
	-- the sequence must keep CACHE 1 so that values follow draw order
	-- across sessions. Values of transactions that did not commit are
	-- skipped, never reused.
	seq             bigserial PRIMARY KEY,
	id              text   NOT NULL UNIQUE,
	type            text   NOT NULL,
	sender          text   NOT NULL,
	recipient       text   NOT NULL,
	created_ns      bigint NOT NULL,
	recorded_ns     bigint NOT NULL,
	header          bytea  NOT NULL,
	signature       bytea  NOT NULL,
	ciphertext_size bigint NOT NULL CHECK (ciphertext_size >= 0),
	receipt         bytea  NOT NULL,
	-- Random token of the Record attempt that inserted the row, so that a
	-- retry after an unknown commit outcome recognizes its own row.
	attempt         bytea  NOT NULL CHECK (octet_length(attempt) = 16)
);
CREATE INDEX records_by_recipient ON records (recipient, seq);
CREATE TABLE chunks (
	-- Deferred: a Record sends its chunks before it inserts (and draws the
	-- seq of) its record row, in the same transaction.
	record_id text   NOT NULL REFERENCES records (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	idx       bigint NOT NULL CHECK (idx >= 0),
	data      bytea  NOT NULL,
	PRIMARY KEY (record_id, idx)
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL;
`,
		// 2: the outbox and named cursors, as in store/sqlite (its
		// migrations 2 and 3). IDs and names collate byte-wise ("C"), as
		// SQLite's text does, so that ListOutgoing pages in the same order
		// whatever the database's locale.
		`
CREATE TABLE outgoing (
	id             text COLLATE "C" NOT NULL PRIMARY KEY,
	type           text   NOT NULL,
	sender         text   NOT NULL,
	recipient      text   NOT NULL,
	created_ns     bigint NOT NULL,
	envelope_path  text   NOT NULL,
	accepted       bytea,
	accepted_ns    bigint,
	recorded       bytea,
	recorded_ns    bigint,
	last_error     text   NOT NULL DEFAULT '',
	recorded_index bigint CHECK (recorded_index >= 0),
	-- Random token of the Enqueue attempt that inserted the row, so that
	-- a retry after an unknown commit outcome recognizes its own row.
	attempt        bytea  NOT NULL CHECK (octet_length(attempt) = 16),
	CHECK ((accepted IS NULL) = (accepted_ns IS NULL)),
	CHECK ((recorded IS NULL) = (recorded_ns IS NULL))
);
CREATE INDEX outgoing_pending ON outgoing (created_ns, id)
	WHERE accepted IS NULL AND recorded IS NULL;
CREATE TABLE cursors (
	name  text COLLATE "C" NOT NULL PRIMARY KEY,
	value bigint NOT NULL -- a uint64, stored bit for bit as an int64
);
`,
		// 3: small envelopes held in the outbox itself (store/sqlite's
		// migration 4).
		`
ALTER TABLE outgoing ADD COLUMN envelope bytea;
`,
	}
}

// migrate creates the schema and its schema_version table when missing and
// applies the migrations ms that the schema lacks, each in its own
// transaction. Every transaction first takes an advisory lock on the
// schema's name, so that concurrent Opens apply each migration once.
func (s *Store) migrate(ctx context.Context, ms []string) error {
	name := s.opts.schema
	q := pgx.Identifier{name}.Sanitize()
	lock := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockClass), "migrate "+name); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		return nil
	}

	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lock(tx); err != nil {
			return err
		}
		var exists, versioned bool
		var objects int64
		err := tx.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
       to_regclass($2) IS NOT NULL,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)`,
			name, q+".schema_version").Scan(&exists, &versioned, &objects)
		if err != nil {
			return fmt.Errorf("inspecting the schema: %w", err)
		}
		switch {
		case versioned:
			return nil
		case objects > 0:
			return fmt.Errorf("%w: schema %s holds %d objects but no schema_version table", ErrForeign, name, objects)
		case !exists:
			// Created only when missing: CREATE SCHEMA IF NOT EXISTS
			// needs the CREATE privilege on the database even when the
			// schema exists.
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+q); err != nil {
				return fmt.Errorf("creating the schema: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `CREATE TABLE `+q+`.schema_version (
	version    integer     PRIMARY KEY CHECK (version > 0),
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
		if err != nil {
			return fmt.Errorf("creating the schema_version table: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	for {
		done := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lock(tx); err != nil {
				return err
			}
			var version int
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+q+`.schema_version`).Scan(&version); err != nil {
				return fmt.Errorf("reading the schema version: %w", err)
			}
			switch {
			case version > len(ms):
				return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrSchemaTooNew, version, len(ms))
			case version == len(ms):
				done = true
				return nil
			}
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+q); err != nil {
				return fmt.Errorf("setting the search path: %w", err)
			}
			if _, err := tx.Exec(ctx, ms[version]); err != nil {
				return fmt.Errorf("migrating the schema to version %d: %w", version+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+q+`.schema_version (version) VALUES ($1)`, version+1); err != nil {
				return fmt.Errorf("recording schema version %d: %w", version+1, err)
			}
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

// statements are the SQL texts of the inbox, naming the tables of one
// schema.
type statements struct {
	recordByID, recordByRef, insertRecord, insertChunk, lock,
	ciphertextRef, chunk, chunksFrom, list, countAll, count string
}

const recordColumns = `seq, id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt`

func newStatements(schema string) statements {
	q := pgx.Identifier{schema}.Sanitize()
	r := strings.NewReplacer("{records}", q+".records", "{chunks}", q+".chunks", "{cols}", recordColumns)
	return statements{
		recordByID:    r.Replace(`SELECT {cols}, attempt FROM {records} WHERE id = $1`),
		recordByRef:   r.Replace(`SELECT {cols} FROM {records} WHERE id = $1 AND recipient = $2`),
		insertRecord:  r.Replace(`INSERT INTO {records} (id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt, attempt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`),
		insertChunk:   r.Replace(`INSERT INTO {chunks} (record_id, idx, data) VALUES ($1, $2, $3)`),
		lock:          `SELECT pg_advisory_xact_lock($1)`,
		ciphertextRef: r.Replace(`SELECT ciphertext_size FROM {records} WHERE id = $1 AND recipient = $2`),
		chunk:         r.Replace(`SELECT data FROM {chunks} WHERE record_id = $1 AND idx = $2`),
		chunksFrom:    r.Replace(`SELECT count(*) FROM {chunks} WHERE record_id = $1 AND idx >= $2`),
		list:          r.Replace(`SELECT {cols} FROM {records} WHERE recipient = $1 AND seq > $2 ORDER BY seq LIMIT $3`),
		countAll:      r.Replace(`SELECT count(*) FROM {records}`),
		count:         r.Replace(`SELECT count(*) FROM {records} WHERE recipient = $1`),
	}
}
