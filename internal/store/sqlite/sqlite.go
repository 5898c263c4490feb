// Package sqlite keeps a node's inbox ([store.Inbox]) and outbox in one
// SQLite database file, on the pure-Go driver modernc.org/sqlite.
//
// Durability is never relaxed: every connection runs in WAL mode with
// synchronous=FULL, secure_delete and foreign keys on, a busy timeout, and
// write transactions that begin IMMEDIATE, so several processes (a CLI and
// the node daemon) may open the same file. [Open] refuses a database that
// does not end up configured that way, checking every connection the pool
// opens, not only the first.
//
// Ciphertext is stored in chunks (rows of the chunks table) in the same
// transaction as its record row. Before that transaction begins, the
// ciphertext is staged: kept in memory when it is smaller than one chunk,
// spooled to an unlinked temporary file otherwise. The database write lock,
// which other processes wait on, is therefore never held while waiting on
// the caller's reader, and no payload is ever held whole in memory.
//
// The schema is versioned with PRAGMA user_version and migrated forward, in
// one transaction, by Open; a database written by a newer schema is refused
// with [ErrSchemaTooNew], and a SQLite file that is not a taxlink store with
// [ErrForeign].
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"taxlink/internal/sqlitedb"
	"taxlink/internal/store"
)

// Errors returned by Open.
var (
	// ErrNotDurable means a connection did not end up in WAL mode with
	// synchronous=FULL, secure_delete and foreign keys on (for example on
	// a file system without shared-memory support for WAL).
	ErrNotDurable = sqlitedb.ErrNotDurable
	// ErrSchemaTooNew means the database was written by a newer version of
	// this package; it is left untouched.
	ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this program")
	// ErrForeign means the file is a SQLite database that is not a taxlink
	// store; it is left untouched.
	ErrForeign = errors.New("sqlite: database is not a taxlink store")
)

// Defaults and bounds of the options.
const (
	DefaultChunkSize   = 256 << 10          // bytes per ciphertext chunk
	MinChunkSize       = 1 << 10            // smallest WithChunkSize
	MaxChunkSize       = 4 << 20            // largest WithChunkSize
	DefaultBusyTimeout = 10 * time.Second   // wait for another process's lock
	DefaultMaxConns    = 8                  // connection pool size
	DefaultFileMode    = fs.FileMode(0o600) // permissions of a new database file
)

// Option configures Open.
type Option func(*options)

type options struct {
	chunkSize   int
	busyTimeout time.Duration
	spoolDir    string
	maxConns    int
	fileMode    fs.FileMode
	now         func() time.Time
}

// WithChunkSize sets the size of the ciphertext chunks new records are
// stored in, MinChunkSize..MaxChunkSize bytes (default DefaultChunkSize).
// It also bounds the memory one Record holds for ciphertext. Records stored
// with another chunk size stay readable.
func WithChunkSize(n int) Option { return func(o *options) { o.chunkSize = n } }

// WithBusyTimeout sets how long a statement waits for a lock held by
// another connection or process before failing (default
// DefaultBusyTimeout, at least one millisecond).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithSpoolDir sets the directory where ciphertext larger than one chunk is
// staged before its transaction (default: the database's directory, so that
// staging stays on the same file system and never lands on a memory-backed
// /tmp). Spool files hold ciphertext only and are unlinked as soon as they
// are created, so nothing is left behind by a crash.
func WithSpoolDir(dir string) Option { return func(o *options) { o.spoolDir = dir } }

// WithMaxConns bounds the connection pool (default DefaultMaxConns, at
// least 1). Writes are serialized anyway; more connections serve more
// concurrent reads.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// WithFileMode sets the permissions given to the database file (and its
// -wal and -shm files) when Open creates it (default DefaultFileMode). An
// existing file's permissions are left alone.
func WithFileMode(m fs.FileMode) Option { return func(o *options) { o.fileMode = m } }

// WithClock sets the clock used for times the caller leaves zero (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is an inbox ([store.Inbox]) and outbox in one SQLite file. It is
// safe for concurrent use by multiple goroutines, and the file by multiple
// processes.
type Store struct {
	db     *sql.DB
	opts   options
	writer *sqlitedb.Writer     // one writer of this Store, committing concurrent writes together
	stmts  map[string]*sql.Stmt // prepared by Open, keyed by their text; read-only after
	closed atomic.Bool
}

var (
	_ store.Inbox = (*Store)(nil)
)

// Open opens, creating it if needed, the store in the database file at path
// and migrates its schema to the current version. It fails with
// ErrNotDurable, ErrSchemaTooNew or ErrForeign (see there), and with an
// error wrapping store.ErrInvalid for an empty path or a bad option.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{
		chunkSize:   DefaultChunkSize,
		busyTimeout: DefaultBusyTimeout,
		maxConns:    DefaultMaxConns,
		fileMode:    DefaultFileMode,
		now:         time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, fmt.Errorf("%w: sqlite: empty database path", store.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolving %s: %w", path, err)
	}
	if o.spoolDir == "" {
		o.spoolDir = filepath.Dir(abs)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}

	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, fs.ErrNotExist)

	db := sqlitedb.Open(abs, dbOptions(o))

	s := &Store{db: db, opts: o, writer: sqlitedb.NewWriter(db)}
	if err := s.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	if err := s.prepare(context.Background()); err != nil {
		s.closeStmts()
		db.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	if created {
		// Chmod by name: opening (and closing) a descriptor of the file
		// would drop the POSIX locks SQLite holds on it in this process.
		if err := sqlitedb.Chmod(abs, o.fileMode); err != nil {
			s.closeStmts()
			db.Close()
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	return s, nil
}

func (o *options) validate() error {
	switch {
	case o.chunkSize < MinChunkSize || o.chunkSize > MaxChunkSize:
		return fmt.Errorf("%w: sqlite: chunk size %d is outside %d..%d", store.ErrInvalid, o.chunkSize, MinChunkSize, MaxChunkSize)
	case o.busyTimeout < time.Millisecond:
		return fmt.Errorf("%w: sqlite: busy timeout %v is below 1ms", store.ErrInvalid, o.busyTimeout)
	case o.maxConns < 1:
		return fmt.Errorf("%w: sqlite: max connections %d is below 1", store.ErrInvalid, o.maxConns)
	case o.fileMode&^fs.ModePerm != 0:
		return fmt.Errorf("%w: sqlite: file mode %v has bits other than permissions", store.ErrInvalid, o.fileMode)
	case o.now == nil:
		return fmt.Errorf("%w: sqlite: nil clock", store.ErrInvalid)
	}
	return nil
}

// dbOptions are the connection settings of a store: the durable ones of
// package sqlitedb, and a WAL truncated back to 64 MiB after a checkpoint
// (a 20 MB recording grows it well beyond the default checkpoint size).
func dbOptions(o options) sqlitedb.Options {
	return sqlitedb.Options{BusyTimeout: o.busyTimeout, MaxConns: o.maxConns, Pragmas: []string{"journal_size_limit(67108864)"}}
}

// Close closes the store. Operations in progress may fail; later ones, and
// reads from ciphertext readers still open, fail with store.ErrClosed, and
// so does a second Close.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("sqlite: close: %w", store.ErrClosed)
	}
	s.closeStmts()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// prepare prepares the statements used on every operation. database/sql
// prepares each again, lazily, on every connection it runs on, and keeps it.
func (s *Store) prepare(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range []string{
		sqlRecordByID, sqlRecordByRef, sqlInsertRecord, sqlInsertChunk,
		sqlCiphertextRef, sqlChunk, sqlChunksFrom, sqlList,
		sqlEnqueue, sqlGetOutgoing, sqlMarkAccepted, sqlMarkRecorded, sqlRecordedIndex, sqlCursor, sqlSetCursor,
	} {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing %q: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

func (s *Store) closeStmts() {
	for _, st := range s.stmts {
		st.Close()
	}
}

// live fails with store.ErrClosed once the store is closed.
func (s *Store) live() error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: %w", store.ErrClosed)
	}
	return nil
}

// fail wraps err from operation op, reporting store.ErrClosed instead when
// the store was closed under the operation.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("sqlite: %s: %w (%v)", op, store.ErrClosed, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// write runs fn in an IMMEDIATE transaction of this Store's writer, with
// the writes pending at the same time (group commit), and returns once
// it is committed (fn returned nil) or fn's changes are undone. fn's
// errors are returned unwrapped.
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
		return fmt.Errorf("sqlite: %s: %w", op, te)
	default:
		return s.fail(op+": "+te.Step, te.Err)
	}
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Times are stored as int64 nanoseconds since the Unix epoch, in UTC.

func toNS(t time.Time) int64 { return t.UnixNano() }

func fromNS(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func fromNullNS(ns sql.NullInt64) time.Time {
	if !ns.Valid {
		return time.Time{}
	}
	return fromNS(ns.Int64)
}
