// Package postgres keeps a node's inbox and outbox ([store.NodeStore]) in a PostgreSQL
// database, through pgx/v5 and its connection pool (pgxpool), for nodes
// that outgrow SQLite (for example a certified outsourcer's node serving
// hundreds of tenants). It behaves exactly like store/sqlite and passes the
// same conformance suite (store/storetest).
//
// # Schema
//
// Everything lives in one PostgreSQL schema (namespace), "taxlink" unless
// [WithSchema] names another, so that several stores (and tests) can share
// a database. [Open] creates the schema when it is missing and migrates it
// forward: migrations are an ordered list, each applied in its own
// transaction together with its row in the schema_version table, under a
// transaction-level advisory lock so that processes opening the same schema
// at once apply each exactly once. A schema written by a newer program is
// refused with [ErrSchemaTooNew], a schema holding other objects but no
// schema_version table with [ErrForeign].
//
// # Durability
//
// Record returns only after its COMMIT has returned, and every connection
// the pool opens is checked first: the server must run with fsync and
// full_page_writes on and the session with synchronous_commit on,
// remote_write or remote_apply (off and local are refused: a commit must
// be flushed to disk, and to a synchronous standby where one is
// configured). A connection that fails the check is never used; [Open]
// reports it with [ErrNotDurable].
//
// # Records and ciphertext
//
// A record is one row of the records table; its ciphertext is split into
// chunks (default 256 KiB, [WithChunkSize]), rows of the chunks table in
// the same transaction, stored uncompressed (ciphertext does not compress).
// The ciphertext is staged before the transaction begins, in memory below
// one chunk and in an unlinked spool file otherwise ([WithSpoolDir]), then
// sent with COPY: a transaction never waits on the caller's reader, no
// payload is held whole in memory, and a transaction that failed can be run
// again from the staged copy.
//
// # Commit order
//
// Seq comes from a sequence (bigserial), and readers page with AfterSeq, so
// Seq order must be commit order: a reader that has seen Seq n must never
// later find a new record with a lower Seq. A sequence alone does not give
// that: a transaction may draw seq 5, another seq 6 and commit first, and a
// reader paging between the two commits would skip 5 forever. Record
// therefore takes a transaction-level advisory lock (pg_advisory_xact_lock,
// keyed by the records table of this schema) right before it inserts the
// record row and draws its Seq, and holds it through COMMIT: PostgreSQL
// releases transaction locks only after the commit is durable and visible,
// so the next writer draws a higher Seq and becomes visible later. Chunks
// are sent before the lock is taken, so writers upload ciphertext in
// parallel; the lock, the record row and the COMMIT reach the server in one
// pipeline, so the lock is held for the insert and the WAL flush only,
// never for a round trip to the client. Readers take no lock. Sequence
// values of transactions that did not commit are skipped, never reused.
//
// The price is the one the SQLite store pays: commits to one schema are
// serialized, so concurrent Records cannot share a WAL flush (group
// commit) and a schema takes at most about one Record per flush, however
// many writers there are.
//
// # Lost connections and restarts
//
// The pool replaces broken connections. Every operation is re-run after a
// transient failure — a lost, reset or refused connection, a server that
// is shutting down, crashed or is starting up, a serialization failure or a
// deadlock — with exponential backoff for up to [WithRetryFor] (default
// 30s) or until its context ends. This is safe for Record because it is
// idempotent by ID and runs from the staged ciphertext: a re-run after an
// unknown commit outcome finds the record stored by the earlier attempt.
// Each attempt writes a random token with the row, so a re-run that finds
// the row of an earlier attempt of the same call still reports existed =
// false, while a record stored by another call reports existed = true.
//
// # Deletion
//
// PostgreSQL has no equivalent of SQLite's secure_delete. A deleted row
// stays in its heap and TOAST pages until VACUUM marks the space reusable,
// and even then its bytes remain until overwritten; VACUUM FULL (or
// pg_repack) rewrites a table into new files and unlinks the old ones,
// leaving their blocks to the file system; WAL segments, WAL archives,
// base backups and replicas keep copies until they are recycled or
// expire. Erasure therefore rests on crypto-erasure (this store only ever
// holds ciphertext; destroying the tenant's keys makes it unreadable),
// followed by deleting the rows, VACUUM FULL of records and chunks, and
// the expiry of WAL and backups; encrypted storage below the database
// covers the blocks left on disk.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"taxlink/internal/store"
)

// Errors returned by Open.
var (
	// ErrNotDurable means a connection would not make commits durable:
	// the server runs with fsync or full_page_writes off, or the session
	// with synchronous_commit off or local.
	ErrNotDurable = errors.New("postgres: database is not configured durably")
	// ErrSchemaTooNew means the schema was written by a newer version of
	// this package; it is left untouched.
	ErrSchemaTooNew = errors.New("postgres: database schema is newer than this program")
	// ErrForeign means the schema holds objects but is not a taxlink
	// store; it is left untouched.
	ErrForeign = errors.New("postgres: schema is not a taxlink store")
)

// Defaults and bounds of the options.
const (
	DefaultSchema    = "taxlink"        // schema (namespace) of the tables
	DefaultChunkSize = 256 << 10        // bytes per ciphertext chunk
	MinChunkSize     = 1 << 10          // smallest WithChunkSize
	MaxChunkSize     = 4 << 20          // largest WithChunkSize
	DefaultRetryFor  = 30 * time.Second // how long an operation retries transient failures
	// DefaultApplicationName is the application_name of the store's
	// sessions unless the DSN sets one.
	DefaultApplicationName = "taxlink"
)

// Retry backoff: the first retry waits firstBackoff, each later one twice
// as long, up to maxBackoff.
const (
	firstBackoff = 5 * time.Millisecond
	maxBackoff   = time.Second
)

// lockClass is the first half of the advisory lock keys this package takes
// ("TXLK").
const lockClass = 0x54584C4B

// Option configures Open.
type Option func(*options)

type options struct {
	schema    string
	chunkSize int
	spoolDir  string
	maxConns  int
	retryFor  time.Duration
	now       func() time.Time
	// afterCommit, when set (by tests), is called by Record after a
	// successful COMMIT; an error it returns is taken for COMMIT's, as
	// when the connection breaks before the server's answer arrives.
	afterCommit func(id string) error
}

// WithSchema sets the PostgreSQL schema (namespace) holding the store's
// tables (default DefaultSchema): 1..63 bytes of lower-case ASCII letters,
// digits and underscores, not starting with a digit or "pg_".
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithChunkSize sets the size of the ciphertext chunks new records are
// stored in, MinChunkSize..MaxChunkSize bytes (default DefaultChunkSize).
// It also bounds the memory one Record holds for ciphertext. Records stored
// with another chunk size stay readable.
func WithChunkSize(n int) Option { return func(o *options) { o.chunkSize = n } }

// WithSpoolDir sets the directory where ciphertext of one chunk or more is
// staged before its transaction (default os.TempDir()). Prefer a directory
// on disk to a memory-backed /tmp for large payloads. Spool files hold
// ciphertext only and are unlinked as soon as they are created.
func WithSpoolDir(dir string) Option { return func(o *options) { o.spoolDir = dir } }

// WithMaxConns bounds the connection pool; 0 keeps the default (the DSN's
// pool_max_conns, else pgxpool's), a negative n is invalid.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// WithRetryFor sets how long an operation keeps retrying after transient
// failures such as a lost connection or a restarting server (default
// DefaultRetryFor); 0 disables retries. The operation's context bounds it
// too.
func WithRetryFor(d time.Duration) Option { return func(o *options) { o.retryFor = d } }

// WithClock sets the clock used for times the caller leaves zero (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// schemaName is what WithSchema accepts.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (o *options) validate() error {
	switch {
	case !schemaName.MatchString(o.schema) || strings.HasPrefix(o.schema, "pg_"):
		return fmt.Errorf("%w: postgres: schema name %q: want 1..63 of a-z, 0-9 and _, not starting with a digit or pg_", store.ErrInvalid, o.schema)
	case o.chunkSize < MinChunkSize || o.chunkSize > MaxChunkSize:
		return fmt.Errorf("%w: postgres: chunk size %d is outside %d..%d", store.ErrInvalid, o.chunkSize, MinChunkSize, MaxChunkSize)
	case o.maxConns < 0:
		return fmt.Errorf("%w: postgres: max connections %d is negative", store.ErrInvalid, o.maxConns)
	case o.retryFor < 0:
		return fmt.Errorf("%w: postgres: retry duration %v is negative", store.ErrInvalid, o.retryFor)
	case o.now == nil:
		return fmt.Errorf("%w: postgres: nil clock", store.ErrInvalid)
	case o.spoolDir == "":
		return fmt.Errorf("%w: postgres: empty spool directory", store.ErrInvalid)
	}
	return nil
}

// Store is a node's inbox and outbox ([store.NodeStore]) in a PostgreSQL schema. It is safe for
// concurrent use by multiple goroutines, and the schema by multiple
// processes and Stores.
type Store struct {
	pool    *pgxpool.Pool
	opts    options
	sql     statements
	chunks  pgx.Identifier // the chunks table, for COPY
	lockKey int64          // advisory lock serializing record inserts and commits
	closed  atomic.Bool
	retries atomic.Int64      // transient failures retried so far
	outbox  map[string]string // statements of the outbox, by key (see osql)
}

var _ store.Inbox = (*Store)(nil)

// Open connects to the database named by dsn (a libpq connection string or
// URL, with pgxpool's pool_* settings), creates the schema if needed and
// migrates it to the current version. ctx bounds the opening only. It fails
// with ErrNotDurable, ErrSchemaTooNew or ErrForeign (see there), with an
// error wrapping store.ErrInvalid for a DSN that does not parse or a bad
// option, and with the connection error when the server cannot be reached
// (Open does not retry).
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{
		schema:    DefaultSchema,
		chunkSize: DefaultChunkSize,
		spoolDir:  os.TempDir(),
		retryFor:  DefaultRetryFor,
		now:       time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: parsing the DSN: %w", store.ErrInvalid, err)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = int32(min(o.maxConns, 1<<20))
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = DefaultApplicationName
	}
	cfg.AfterConnect = checkDurable
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating the connection pool: %w", err)
	}
	s := &Store{
		pool:   pool,
		opts:   o,
		sql:    newStatements(o.schema),
		outbox: outboxSQL(pgx.Identifier{o.schema}.Sanitize()),
		chunks: pgx.Identifier{o.schema, "chunks"},
	}
	where := fmt.Sprintf("postgres: opening schema %s on %s:%d", o.schema, cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	if err := s.migrate(ctx, migrations()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var oid uint32
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1)::oid`, pgx.Identifier{o.schema, "records"}.Sanitize()).Scan(&oid); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: looking up the records table: %w", where, err)
	}
	s.lockKey = lockClass<<32 | int64(oid)
	return s, nil
}

// checkDurable verifies that the new connection c makes commits durable; it
// fails with an error wrapping ErrNotDurable if not, and the pool then
// discards c.
func checkDurable(ctx context.Context, c *pgx.Conn) error {
	var fsync, fullPageWrites, syncCommit string
	err := c.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('full_page_writes'), current_setting('synchronous_commit')`).
		Scan(&fsync, &fullPageWrites, &syncCommit)
	if err != nil {
		return fmt.Errorf("postgres: reading the durability settings: %w", err)
	}
	return durable(fsync, fullPageWrites, syncCommit)
}

// durable decides the settings checkDurable reads.
func durable(fsync, fullPageWrites, syncCommit string) error {
	if fsync != "on" {
		return fmt.Errorf("%w: fsync is %q, want on", ErrNotDurable, fsync)
	}
	if fullPageWrites != "on" {
		return fmt.Errorf("%w: full_page_writes is %q, want on", ErrNotDurable, fullPageWrites)
	}
	switch syncCommit {
	case "on", "remote_write", "remote_apply":
		return nil
	}
	return fmt.Errorf("%w: synchronous_commit is %q, want on, remote_write or remote_apply", ErrNotDurable, syncCommit)
}

// Close closes the store, waiting for operations in progress to give their
// connections back. Later operations, and reads from ciphertext readers
// still open, fail with store.ErrClosed, and so does a second Close.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("postgres: close: %w", store.ErrClosed)
	}
	s.pool.Close()
	return nil
}

// live fails with store.ErrClosed once the store is closed.
func (s *Store) live() error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %w", store.ErrClosed)
	}
	return nil
}

// fail wraps err from operation op, reporting store.ErrClosed instead when
// the store was closed under the operation.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("postgres: %s: %w (%v)", op, store.ErrClosed, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// errRaced is returned by an attempt that lost a race it can only resolve
// by running again (a record seen as existing vanished before it was read).
var errRaced = errors.New("postgres: raced with a concurrent change")

// retry runs fn until it succeeds, fails with an error that is not
// transient (see transient), the store is closed, ctx ends, or the retry
// duration would be exceeded; it returns fn's last error, unwrapped. fn
// must be safe to run again after any failure.
func (s *Store) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(s.opts.retryFor)
	backoff := firstBackoff
	for {
		err := fn(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil || s.closed.Load() || time.Now().Add(backoff).After(deadline) {
			return err
		}
		s.retries.Add(1)
		if connectionLost(err) {
			// Other pooled connections are likely dead too (the server
			// restarted, or terminated them): drop them all at once
			// rather than find them one retry at a time.
			s.pool.Reset()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// transient reports whether err is worth retrying: the connection was
// lost, refused or reset, the server is shutting down, crashed or starting
// up, has too many connections, or the transaction hit a serialization
// failure or a deadlock. (retry never retries once the caller's context
// has ended, whatever the error.)
func transient(err error) bool {
	if errors.Is(err, errRaced) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"53300": // too_many_connections
			return true
		}
		return serverGone(pe.Code)
	}
	return connectionLost(err)
}

// serverGone reports whether code is a SQLSTATE saying that the session
// ended or could not start for a reason that passes: connection_exception
// (class 08), admin_shutdown, crash_shutdown and cannot_connect_now.
func serverGone(code string) bool {
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}

// connectionLost reports whether err says that the connection to the
// server failed, broke or could not be made (but not because the server
// refused the login).
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return serverGone(pe.Code)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) ||
		pgconn.SafeToRetry(err) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}

// Times are stored as int64 nanoseconds since the Unix epoch, in UTC.

func toNS(t time.Time) int64 { return t.UnixNano() }

func fromNS(ns int64) time.Time { return time.Unix(0, ns).UTC() }
