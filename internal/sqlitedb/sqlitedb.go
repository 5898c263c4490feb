// Package sqlitedb opens SQLite databases (modernc.org/sqlite) the way
// taxlink keeps data: write-ahead log with synchronous=FULL (a commit is on
// disk when it returns), foreign keys, secure_delete (freed pages are
// zeroed), defensive mode, IMMEDIATE transactions (writers queue instead of
// failing with "database is locked"), and every new connection verified
// before use, so that a setting that did not take is an error, not a silent
// loss of durability. The inbox store, the console's operator state and
// the search index all open their files here.
package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
)

// ErrNotDurable is wrapped by the error of a connection whose settings are
// not the durable ones.
var ErrNotDurable = errors.New("sqlite: database is not configured durably")

// Options tunes Open.
type Options struct {
	// BusyTimeout is how long a connection waits for a lock (default 10 s).
	BusyTimeout time.Duration
	// Pragmas are extra per-connection pragmas, e.g.
	// "journal_size_limit(67108864)".
	Pragmas []string
	// MaxConns bounds the pool (default 4).
	MaxConns int
}

// Open returns a pool of connections to the database file at the absolute
// path abs, each configured and verified as the package describes. Nothing
// is opened until the first use; a connection that fails verification
// fails that use with an error wrapping ErrNotDurable.
func Open(abs string, o Options) *sql.DB {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	drv := &sqlite.Driver{}
	drv.RegisterConnectionHook(func(c sqlite.ExecQuerierContext, _ string) error {
		return CheckConn(context.Background(), c)
	})
	db := sql.OpenDB(connector{drv: drv, dsn: DSN(abs, o)})
	db.SetMaxOpenConns(o.MaxConns)
	db.SetMaxIdleConns(o.MaxConns)
	return db
}

// DSN is the driver name of the database at abs: a file: URI (so that no character of the path is taken for DSN
// syntax) carrying every per-connection setting.
func DSN(abs string, o Options) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive path
	}
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10))
	q.Set("_txlock", "immediate")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_defensive", "1")
	q.Add("_pragma", "secure_delete(1)")
	for _, p := range o.Pragmas {
		q.Add("_pragma", p)
	}
	return (&url.URL{Scheme: "file", Path: p}).String() + "?" + q.Encode()
}

// connector opens connections with a Driver of the pool's own, so that the
// verifying hook applies to its connections only (nothing is registered
// process-wide).
type connector struct {
	drv *sqlite.Driver
	dsn string
}

// Connect implements driver.Connector.
func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.drv.Open(c.dsn)
}

// Driver implements driver.Connector.
func (c connector) Driver() driver.Driver { return c.drv }

// CheckConn verifies that the connection c is configured durably; the
// error wraps ErrNotDurable if it is not.
func CheckConn(ctx context.Context, c sqlite.ExecQuerierContext) error {
	for _, want := range []struct{ pragma, value string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"},
		{"foreign_keys", "1"},
		{"secure_delete", "1"},
	} {
		got, err := Pragma(ctx, c, want.pragma)
		if err != nil {
			return fmt.Errorf("sqlite: reading PRAGMA %s: %w", want.pragma, err)
		}
		if !strings.EqualFold(got, want.value) {
			return fmt.Errorf("%w: PRAGMA %s is %q, want %q", ErrNotDurable, want.pragma, got, want.value)
		}
	}
	if got, err := Pragma(ctx, c, "busy_timeout"); err != nil {
		return fmt.Errorf("sqlite: reading PRAGMA busy_timeout: %w", err)
	} else if got == "0" {
		return fmt.Errorf("%w: PRAGMA busy_timeout is 0", ErrNotDurable)
	}
	return nil
}

// Pragma returns the value of PRAGMA name on c, formatted as text.
func Pragma(ctx context.Context, c driver.QueryerContext, name string) (string, error) {
	rows, err := c.QueryContext(ctx, "PRAGMA "+name, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		return "", err
	}
	if len(dest) != 1 {
		return "", fmt.Errorf("PRAGMA %s returned %d columns", name, len(dest))
	}
	switch v := dest[0].(type) {
	case []byte:
		return string(v), nil
	default:
		return fmt.Sprint(v), nil
	}
}

// Chmod sets mode on a database file and its -wal and -shm companions
// that exist. It works by name: opening (and closing) a descriptor of the
// file would drop the POSIX locks SQLite holds on it in this process.
func Chmod(abs string, mode fs.FileMode) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(abs+suffix, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("setting the mode of %s: %w", abs+suffix, err)
		}
	}
	return nil
}

// File describes a kind of taxlink SQLite file for OpenFile.
type File struct {
	AppID, Version int         // for Init
	Schema, Kind   string      // for Init
	Mode           fs.FileMode // of a file OpenFile creates
}

// OpenFile opens the database file at path (made absolute) as Open does,
// with its Writer, creating the file if needed: its schema is created or
// checked by Init in the writer's first transaction, and a file created
// here gets f.Mode. On error nothing stays open. It returns the absolute
// path too, for the caller's errors.
func OpenFile(path string, o Options, f File) (*sql.DB, *Writer, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("resolving %s: %w", path, err)
	}
	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, fs.ErrNotExist)
	db := Open(abs, o)
	w := NewWriter(db)
	ctx := context.Background()
	if err := w.Tx(ctx, func(tx *sql.Tx) error {
		return Init(ctx, tx, f.AppID, f.Version, f.Schema, f.Kind)
	}); err != nil {
		db.Close()
		return nil, nil, abs, fmt.Errorf("opening %s: %w", abs, err)
	}
	if created {
		if err := Chmod(abs, f.Mode); err != nil {
			db.Close()
			return nil, nil, abs, err
		}
	}
	return db, w, abs, nil
}

// TxError reports a step of Tx that failed around the caller's function:
// waiting for the write slot, beginning or committing.
type TxError struct {
	Step string // "waiting for the write slot", "begin" or "commit"
	Err  error
}

func (e *TxError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *TxError) Unwrap() error { return e.Err }

// Writer is the single writer of a pool. It commits the writes that
// arrive together in one IMMEDIATE transaction (group commit): one
// fsync'd commit for all of them instead of one each. Each write runs in
// its own savepoint, so that its error undoes only its own changes, and
// every write returns only once the transaction holding it is committed.
// Writers queue in Tx rather than in SQLite's busy handler. It is safe for
// concurrent use.
type Writer struct {
	db      *sql.DB
	slot    chan struct{} // held by the caller committing a batch
	mu      sync.Mutex
	pending []*write
	// stmts are the savepoint statements, prepared by the first commit
	// (by the holder of slot): parsed for every write, they were half the
	// SQL parsing of a node sending notifications.
	stmts map[string]*sql.Stmt
}

// Savepoint statements of a write.
const (
	sqlSavepoint  = "SAVEPOINT w"
	sqlRelease    = "RELEASE w"
	sqlRollbackTo = "ROLLBACK TO w"
)

type write struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	err  error
	done chan struct{}
}

// NewWriter returns the writer of db.
func NewWriter(db *sql.DB) *Writer { return &Writer{db: db, slot: make(chan struct{}, 1)} }

// Tx runs fn in a transaction of the writer's pool, with the writes
// pending at the same time, and returns once that transaction is
// committed (fn returned nil) or fn's changes are undone (fn's error,
// returned as it is). A failure of the steps around fn is a *TxError; a
// write whose ctx ends before it runs is not run.
func (w *Writer) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	r := &write{ctx: ctx, fn: fn, done: make(chan struct{})}
	w.mu.Lock()
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	select {
	case w.slot <- struct{}{}:
	case <-r.done:
		return r.err
	case <-ctx.Done():
		w.mu.Lock()
		i := slices.Index(w.pending, r)
		if i >= 0 {
			w.pending = slices.Delete(w.pending, i, i+1)
		}
		w.mu.Unlock()
		if i >= 0 {
			return &TxError{Step: "waiting for the write slot", Err: ctx.Err()}
		}
		<-r.done // a batch holds it already
		return r.err
	}
	defer func() { <-w.slot }()
	select {
	case <-r.done: // committed by the batch before
		return r.err
	default:
	}
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	w.commit(batch)
	return r.err
}

// prepare prepares the savepoint statements once; a failure is tried
// again by the next commit. The caller holds slot.
func (w *Writer) prepare() error {
	if w.stmts != nil {
		return nil
	}
	stmts := map[string]*sql.Stmt{}
	for _, q := range []string{sqlSavepoint, sqlRelease, sqlRollbackTo} {
		st, err := w.db.Prepare(q)
		if err != nil {
			for _, st := range stmts {
				st.Close()
			}
			return fmt.Errorf("preparing %q: %w", q, err)
		}
		stmts[q] = st
	}
	w.stmts = stmts
	return nil
}

// commit runs batch in one transaction and settles every write of it.
func (w *Writer) commit(batch []*write) {
	var ok []*write
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	fail := func(rs []*write, step string, err error) {
		for _, r := range rs {
			r.err = &TxError{Step: step, Err: err}
		}
	}
	if err := w.prepare(); err != nil {
		fail(batch, "begin", err)
		return
	}
	tx, err := w.db.BeginTx(context.Background(), nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		fail(batch, "begin", err)
		return
	}
	exec := func(q string) error {
		_, err := tx.Stmt(w.stmts[q]).Exec()
		return err
	}
	// abort gives up the transaction: the writes not run yet fail at step,
	// those already done at the commit.
	abort := func(rest []*write, step string, err error) {
		_ = tx.Rollback()
		fail(rest, step, err)
		fail(ok, "commit", err)
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = &TxError{Step: "waiting for the write slot", Err: err}
			continue
		}
		if err := exec(sqlSavepoint); err != nil {
			abort(batch[i:], "begin", err)
			return
		}
		if err := r.fn(tx); err != nil {
			r.err = err
			if err := errors.Join(exec(sqlRollbackTo), exec(sqlRelease)); err != nil {
				abort(batch[i+1:], "begin", err)
				return
			}
			continue
		}
		if err := exec(sqlRelease); err != nil {
			abort(batch[i:], "commit", err)
			return
		}
		ok = append(ok, r)
	}
	if err := tx.Commit(); err != nil {
		fail(ok, "commit", err)
	}
}

// Init creates schema in a new, empty database and marks it with appID
// (PRAGMA application_id, which tells taxlink's kinds of file apart) and
// version (PRAGMA user_version); an existing database must carry appID and
// a version from 1 to version. It runs in tx, so that two processes
// opening a new file do not both create it. kind names the file in errors
// ("search index").
func Init(ctx context.Context, tx *sql.Tx, appID, version int, schema, kind string) error {
	var have, id, objects int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&id); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&objects); err != nil {
		return err
	}
	switch {
	case have == 0 && id == 0 && objects == 0:
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("creating the %s schema: %w", kind, err)
		}
		// PRAGMA takes no parameters; both values are integers.
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", appID, version))
		return err
	case id != appID:
		return fmt.Errorf("the file is a SQLite database that is not a %s", kind)
	case have > version:
		return fmt.Errorf("the %s schema version %d is newer than this program's %d", kind, have, version)
	case have < 1:
		return fmt.Errorf("the %s schema version %d is unknown", kind, have)
	}
	return nil
}
