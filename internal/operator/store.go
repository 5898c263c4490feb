package operator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"taxlink/internal/sqlitedb"
	"time"
)

// Config configures Open.
type Config struct {
	Path         string           // SQLite file, created (mode 0600) if missing
	Now          func() time.Time // required: the clock of every time the store records or compares
	PIN          PINPolicy        // zero value: DefaultPINPolicy()
	LockoutAfter int              // consecutive failures that lock an operator, 1..100; 0 means DefaultLockoutAfter
	Argon        ArgonParams      // zero fields: defaults (time 3, memory 64 MiB, threads 2); tests may use tiny values
}

// DefaultLockoutAfter is the number of consecutive failures that lock an
// operator when Config.LockoutAfter is 0.
const DefaultLockoutAfter = 5

// Fixed settings of the database connections.
const (
	busyTimeout = 10 * time.Second // wait for another process's lock
	maxConns    = 4                // connection pool size
	fileMode    = fs.FileMode(0o600)
	argonSlots  = 2 // PIN hashes computed at once by one Store
)

// Store is the console's durable state in one SQLite file. It is safe for
// concurrent use by multiple goroutines, and the file by multiple
// processes.
type Store struct {
	db           *sql.DB
	now          func() time.Time
	pin          PINPolicy
	lockoutAfter int
	argonParams  ArgonParams
	writer       *sqlitedb.Writer // one writer of this Store
	argonSlot    chan struct{}    // bounds concurrent Argon2 computations
	closed       atomic.Bool
}

// Open opens, creating it if needed, the store in the SQLite file
// cfg.Path and migrates its schema to the current version. It fails with
// an error wrapping ErrInvalid for a bad Config, and with ErrNotDurable,
// ErrSchemaTooNew or ErrForeign (see there).
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, invalidf("config: empty database path")
	}
	if cfg.Now == nil {
		return nil, invalidf("config: nil clock")
	}
	if cfg.PIN == (PINPolicy{}) {
		cfg.PIN = DefaultPINPolicy()
	}
	if err := cfg.PIN.Validate(); err != nil {
		return nil, err
	}
	if cfg.LockoutAfter == 0 {
		cfg.LockoutAfter = DefaultLockoutAfter
	}
	if cfg.LockoutAfter < 1 || cfg.LockoutAfter > 100 {
		return nil, invalidf("config: lockout after %d failures is outside 1..100", cfg.LockoutAfter)
	}
	cfg.Argon = cfg.Argon.withDefaults()
	if err := cfg.Argon.validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("operator: resolving %s: %w", cfg.Path, err)
	}
	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, fs.ErrNotExist)

	db := sqlitedb.Open(abs, sqlitedb.Options{BusyTimeout: busyTimeout, MaxConns: maxConns})
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)

	s := &Store{
		db:           db,
		now:          cfg.Now,
		pin:          cfg.PIN,
		lockoutAfter: cfg.LockoutAfter,
		argonParams:  cfg.Argon,
		writer:       sqlitedb.NewWriter(db),
		argonSlot:    make(chan struct{}, argonSlots),
	}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("operator: opening %s: %w", abs, err)
	}
	if created {
		// Chmod by name: opening (and closing) a descriptor of the file
		// would drop the POSIX locks SQLite holds on it in this process.
		if err := sqlitedb.Chmod(abs, fileMode); err != nil {
			db.Close()
			return nil, fmt.Errorf("operator: %w", err)
		}
	}
	return s, nil
}

// Close closes the store. Operations in progress may fail; later ones fail
// with ErrClosed, and so does a second Close.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("operator: close: %w", ErrClosed)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("operator: close: %w", err)
	}
	return nil
}

// migrations returns the schema migrations in order: migrations()[i]
// takes the schema from version i to version i+1 (the schema_version
// table). Entries are only ever appended; a released entry is never
// edited.
func migrations() []string {
	return []string{
		// 1: operators, credentials, PINs, sessions, approvals, alerts.
		`
CREATE TABLE operators (
	id          TEXT    NOT NULL PRIMARY KEY,
	name        TEXT    NOT NULL,
	role        TEXT    NOT NULL,
	tenants     TEXT    NOT NULL, -- JSON array of strings
	types       TEXT    NOT NULL, -- JSON array of strings
	state       TEXT    NOT NULL,
	locked_from TEXT    NOT NULL DEFAULT '', -- state to return to on unlock
	invited_by  TEXT    NOT NULL,
	approved_by TEXT    NOT NULL DEFAULT '',
	created_ns  INTEGER NOT NULL,
	failures    INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
	locked_ns   INTEGER NOT NULL DEFAULT 0,
	cert_sha256 TEXT    NOT NULL DEFAULT '',
	pin_hash    TEXT    NOT NULL DEFAULT '', -- argon2id PHC string
	pin_set_ns  INTEGER NOT NULL DEFAULT 0,
	code_hash   BLOB,                        -- SHA-256 of the enrolment code
	code_ns     INTEGER NOT NULL DEFAULT 0   -- when the code was issued
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX operators_by_cert ON operators (cert_sha256) WHERE cert_sha256 != '';
CREATE TABLE credentials (
	id           BLOB    NOT NULL PRIMARY KEY,
	operator     TEXT    NOT NULL REFERENCES operators (id),
	data         BLOB    NOT NULL,
	created_ns   INTEGER NOT NULL,
	last_used_ns INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX credentials_by_operator ON credentials (operator, created_ns);
CREATE TABLE pin_history (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	operator TEXT    NOT NULL REFERENCES operators (id),
	hash     TEXT    NOT NULL,
	set_ns   INTEGER NOT NULL
) STRICT;
CREATE INDEX pin_history_by_operator ON pin_history (operator, seq);
CREATE TABLE sessions (
	hash         BLOB    NOT NULL PRIMARY KEY, -- SHA-256 of the token
	operator     TEXT    NOT NULL REFERENCES operators (id),
	csrf         TEXT    NOT NULL,
	remote       TEXT    NOT NULL,
	created_ns   INTEGER NOT NULL,
	last_seen_ns INTEGER NOT NULL,
	auth_ns      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_by_operator ON sessions (operator, created_ns);
CREATE TABLE approvals (
	id           TEXT    NOT NULL PRIMARY KEY,
	kind         TEXT    NOT NULL,
	object       TEXT    NOT NULL,
	params       BLOB    NOT NULL,
	summary      TEXT    NOT NULL,
	requested_by TEXT    NOT NULL,
	requested_ns INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	decided_by   TEXT    NOT NULL DEFAULT '',
	decided_ns   INTEGER NOT NULL DEFAULT 0,
	result       TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
CREATE INDEX approvals_by_time ON approvals (requested_ns, id);
CREATE INDEX approvals_by_state ON approvals (state, requested_ns, id);
CREATE TABLE alerts (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	time_ns  INTEGER NOT NULL,
	kind     TEXT    NOT NULL,
	severity TEXT    NOT NULL,
	subject  TEXT    NOT NULL,
	detail   TEXT    NOT NULL,
	acked_by TEXT    NOT NULL DEFAULT '',
	acked_ns INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX alerts_unacked ON alerts (id) WHERE acked_ns = 0;
`,
	}
}

// migrate brings the schema to the latest version in one IMMEDIATE
// transaction, so that processes opening the same file at once apply each
// migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	ms := migrations()
	return s.write(ctx, "migrate", func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx,
			`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
			return fmt.Errorf("inspecting the database: %w", err)
		}
		if n == 0 {
			var objects int64
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&objects); err != nil {
				return fmt.Errorf("inspecting the database: %w", err)
			}
			if objects != 0 {
				return fmt.Errorf("%w: an unversioned database already holds %d schema objects", ErrForeign, objects)
			}
			if _, err := tx.ExecContext(ctx, `
CREATE TABLE schema_version (
	one     INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
	version INTEGER NOT NULL CHECK (version >= 0)
) STRICT;
INSERT INTO schema_version (one, version) VALUES (1, 0);`); err != nil {
				return fmt.Errorf("creating the schema_version table: %w", err)
			}
		}
		var version int64
		if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE one = 1`).Scan(&version); err != nil {
			return fmt.Errorf("%w: reading the schema version: %v", ErrForeign, err)
		}
		if version > int64(len(ms)) {
			return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrSchemaTooNew, version, len(ms))
		}
		for v := version; v < int64(len(ms)); v++ {
			if _, err := tx.ExecContext(ctx, ms[v]); err != nil {
				return fmt.Errorf("migrating the schema to version %d: %w", v+1, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ? WHERE one = 1`, v+1); err != nil {
				return fmt.Errorf("recording schema version %d: %w", v+1, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version of the open database (the
// number of migrations applied).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE one = 1`).Scan(&v); err != nil {
		return 0, s.fail("schema version", err)
	}
	return v, nil
}

// live fails with ErrClosed once the store is closed.
func (s *Store) live() error {
	if s.closed.Load() {
		return fmt.Errorf("operator: %w", ErrClosed)
	}
	return nil
}

// fail wraps the database error err of operation op, reporting ErrClosed
// instead when the store was closed under the operation.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("operator: %s: %w (%v)", op, ErrClosed, err)
	}
	return fmt.Errorf("operator: %s: %w", op, err)
}

// write runs fn in an IMMEDIATE transaction of this Store's writer (with
// the writes pending at the same time) and returns once it is committed
// (fn returned nil) or fn's changes are undone. Errors of fn are returned
// as they are; database errors are wrapped by fail.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if err := s.live(); err != nil {
		return err
	}
	err := s.writer.Tx(ctx, fn)
	var te *sqlitedb.TxError
	switch {
	case !errors.As(err, &te):
		return err
	case te.Step == "waiting for the write slot":
		return fmt.Errorf("operator: %s: %w", op, te)
	default:
		return s.fail(op+": "+te.Step, te.Err)
	}
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// errorf returns an error wrapping sentinel, reading
// "<sentinel>: <format...>".
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// Times are stored as int64 nanoseconds since the Unix epoch; the zero
// time is stored as 0.

func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// listLimit applies the list limit rules (see DefaultListLimit).
func listLimit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, invalidf("negative limit %d", n)
	case n == 0:
		return DefaultListLimit, nil
	case n > MaxListLimit:
		return MaxListLimit, nil
	}
	return n, nil
}
