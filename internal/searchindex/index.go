package searchindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"taxlink/internal/sqlitedb"
	"time"

	"taxlink/internal/store"
)

// Bounds of the index's operations.
const (
	// SyncPageSize is how many records Sync reads, indexes and commits at
	// a time.
	SyncPageSize = 500
	// DefaultLimit is Search's page size when Query.Limit is 0.
	DefaultLimit = 50
	// MaxLimit is the largest Query.Limit.
	MaxLimit = 500
	// MaxQueryTenants bounds len(Query.Tenants), and MaxQueryTypes
	// len(Query.Types).
	MaxQueryTenants = 1000
	MaxQueryTypes   = 1000
	// MaxRemoveIDs bounds the IDs one Remove takes.
	MaxRemoveIDs = 10000
)

// Database settings.
const (
	busyTimeout   = 10 * time.Second
	maxConns      = 4
	fileMode      = fs.FileMode(0o600)
	schemaVersion = 1
	applicationID = 0x74786978 // "txix": tells an index file from a store's
	deleteBatch   = 500        // IDs per DELETE statement of Remove
)

// Entry is one record of the index.
type Entry struct {
	Tenant  string // the tenant (recipient) the record belongs to
	ID      string // envelope ID
	Type    string // message type
	TaxYear int    // tax year, 0 if unknown
	// Created is the envelope's creation time and RecordedAt when the node
	// recorded it, both UTC.
	Created, RecordedAt time.Time
	Size                int64 // ciphertext size in bytes
	// Indexed is false if the payload could not be opened or parsed: the
	// entry then has no tax year and no taxpayer.
	Indexed bool
}

// Opener returns the plaintext of the record id of tenant and its content
// type (a media type such as "application/xml"). The caller closes the
// reader.
type Opener func(ctx context.Context, tenant, id string) (io.ReadCloser, string, error)

// Status is the state of one tenant's index.
type Status struct {
	Entries   int   // entries of the tenant
	Unindexed int   // of which Indexed is false
	Cursor    int64 // store Seq of the last record indexed, 0 if none
}

// Index is a search index in a SQLite file. It is safe for concurrent use by
// multiple goroutines, and the file by multiple processes.
type Index struct {
	db     *sql.DB
	writer *sqlitedb.Writer // one writer of this Index
	closed atomic.Bool
}

const schema = `
CREATE TABLE entries (
	tenant      TEXT    NOT NULL,
	id          TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	type        TEXT    NOT NULL,
	tax_year    INTEGER NOT NULL,
	created     INTEGER NOT NULL, -- Unix nanoseconds
	recorded_at INTEGER NOT NULL, -- Unix nanoseconds
	size        INTEGER NOT NULL,
	taxpayer    BLOB,             -- HMAC-SHA256 blind index; NULL unknown
	indexed     INTEGER NOT NULL,
	PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX entries_tenant_recorded ON entries (tenant, recorded_at);
CREATE INDEX entries_tenant_taxpayer ON entries (tenant, taxpayer);
CREATE TABLE cursors (
	tenant TEXT    NOT NULL PRIMARY KEY,
	seq    INTEGER NOT NULL
) WITHOUT ROWID;
`

// Open opens, creating it if needed (with mode 0600), the index in the
// SQLite file at path. It refuses a file that is another SQLite database
// (such as the node's store), one written by a newer version of this
// package, and a connection that is not configured durably.
func Open(path string) (*Index, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty index path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("searchindex: resolving %s: %w", path, err)
	}
	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, fs.ErrNotExist)

	db := sqlitedb.Open(abs, sqlitedb.Options{BusyTimeout: busyTimeout, MaxConns: maxConns})
	ix := &Index{db: db, writer: sqlitedb.NewWriter(db)}
	if err := ix.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("searchindex: opening %s: %w", abs, err)
	}
	if created {
		if err := sqlitedb.Chmod(abs, fileMode); err != nil {
			db.Close()
			return nil, fmt.Errorf("searchindex: %w", err)
		}
	}
	return ix, nil
}

// migrate creates the schema in a new database and checks an existing one.
func (ix *Index) migrate(ctx context.Context) error {
	return ix.write(ctx, func(tx *sql.Tx) error {
		return sqlitedb.Init(ctx, tx, applicationID, schemaVersion, schema, "search index")
	})
}

// Close closes the index. A second Close fails.
func (ix *Index) Close() error {
	if !ix.closed.CompareAndSwap(false, true) {
		return errors.New("searchindex: index already closed")
	}
	if err := ix.db.Close(); err != nil {
		return fmt.Errorf("searchindex: close: %w", err)
	}
	return nil
}

// write runs fn in an IMMEDIATE transaction of the index's writer (with
// the writes pending at the same time) and returns once it is committed
// (fn returned nil) or fn's changes are undone.
func (ix *Index) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if ix.closed.Load() {
		return errors.New("searchindex: index closed")
	}
	return ix.writer.Tx(ctx, fn)
}

// checkpoint copies the write-ahead log into the database and truncates it,
// so that the pages a deletion freed (zeroed by secure_delete in the
// database) do not linger in the log. It is best effort: a reader in another
// connection or process may keep the log in use.
func (ix *Index) checkpoint(ctx context.Context) {
	var busy, logPages, done int
	_ = ix.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
}

// checkTenant validates a tenant ID.
func checkTenant(tenant string) error {
	if err := store.ValidateID("tenant", tenant); err != nil {
		return fmt.Errorf("%w: tenant is not a valid participant ID", ErrInvalid)
	}
	return nil
}

// row is an entry about to be written.
type row struct {
	Entry
	seq      int64
	taxpayer []byte // nil if unknown
}

// Sync indexes the records of tenant recorded after the last one it indexed:
// it keeps a per-tenant cursor on the store's Seq, updated in the same
// transaction as the entries. It reads the records in pages of up to
// SyncPageSize, opens each payload with open, extracts its Fields and stores
// the taxpayer's blind index under k, committing page by page. A payload that
// fails to open or parse is indexed with Indexed=false (see [Index.Status]),
// not retried. It returns how many entries it added, including those.
//
// Sync stops when ctx is done, returning ctx's error and keeping the pages it
// committed; the page in progress is dropped and read again by the next
// Sync (an open failing because ctx ended does not mark a payload as
// unindexed). Concurrent Syncs of one tenant are safe: a record is indexed
// once.
func (ix *Index) Sync(ctx context.Context, src store.Inbox, tenant string, k Key, open Opener) (int, error) {
	switch {
	case src == nil || open == nil:
		return 0, fmt.Errorf("%w: Sync needs a store and an opener", ErrInvalid)
	case len(k) != KeySize:
		return 0, fmt.Errorf("%w: index key is %d bytes, want %d", ErrInvalid, len(k), KeySize)
	}
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	added := 0
	for {
		if err := ctx.Err(); err != nil {
			return added, err
		}
		cur, err := ix.cursor(ctx, ix.db, tenant)
		if err != nil {
			return added, fmt.Errorf("searchindex: sync %s: %w", tenant, err)
		}
		recs, err := src.List(ctx, store.Query{Recipient: tenant, AfterSeq: cur, Limit: SyncPageSize})
		if err != nil {
			return added, fmt.Errorf("searchindex: sync %s: listing records: %w", tenant, err)
		}
		if len(recs) == 0 {
			return added, nil
		}
		rows := make([]row, 0, len(recs))
		for _, rec := range recs {
			if rec.Recipient != tenant || rec.Seq <= cur {
				return added, fmt.Errorf("searchindex: sync %s: the store listed a record out of scope", tenant)
			}
			r := index(ctx, tenant, k, open, rec)
			if err := ctx.Err(); err != nil {
				return added, err
			}
			rows = append(rows, r)
		}
		n, err := ix.commit(ctx, tenant, rows)
		added += n
		if err != nil {
			return added, fmt.Errorf("searchindex: sync %s: %w", tenant, err)
		}
		if len(recs) < SyncPageSize {
			return added, nil
		}
	}
}

// index opens and reads the payload of rec and returns its entry.
func index(ctx context.Context, tenant string, k Key, open Opener, rec store.Record) row {
	r := row{Entry: Entry{
		Tenant: tenant, ID: rec.ID, Type: rec.Type,
		Created: rec.Created.UTC(), RecordedAt: rec.RecordedAt.UTC(), Size: rec.CiphertextSize,
	}, seq: rec.Seq}
	rc, contentType, err := open(ctx, tenant, rec.ID)
	if err != nil || rc == nil {
		return r
	}
	f, err := Extract(contentType, rc)
	_ = rc.Close() // what was read was read; a close error changes nothing
	if err != nil {
		return r
	}
	if f.Taxpayer != "" {
		h, err := Blind(k, f.Taxpayer)
		if err != nil {
			return r
		}
		r.taxpayer = h
	}
	r.TaxYear, r.Indexed = f.TaxYear, true
	return r
}

// queryRower is what *sql.DB and *sql.Tx have in common for cursor.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// cursor returns tenant's cursor, 0 if none.
func (ix *Index) cursor(ctx context.Context, q queryRower, tenant string) (int64, error) {
	var seq int64
	err := q.QueryRowContext(ctx, "SELECT seq FROM cursors WHERE tenant = ?", tenant).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

const sqlUpsertEntry = `INSERT INTO entries
	(tenant, id, seq, type, tax_year, created, recorded_at, size, taxpayer, indexed)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, id) DO UPDATE SET
	seq = excluded.seq, type = excluded.type, tax_year = excluded.tax_year,
	created = excluded.created, recorded_at = excluded.recorded_at, size = excluded.size,
	taxpayer = excluded.taxpayer, indexed = excluded.indexed`

const sqlUpsertCursor = `INSERT INTO cursors (tenant, seq) VALUES (?, ?)
	ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > cursors.seq`

// commit writes the rows of tenant beyond its cursor and advances the
// cursor, in one transaction; it returns how many rows it wrote.
func (ix *Index) commit(ctx context.Context, tenant string, rows []row) (int, error) {
	n := 0
	err := ix.write(ctx, func(tx *sql.Tx) error {
		n = 0
		cur, err := ix.cursor(ctx, tx, tenant)
		if err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, sqlUpsertEntry)
		if err != nil {
			return err
		}
		defer st.Close()
		last := cur
		for _, r := range rows {
			if r.seq <= cur {
				continue // indexed meanwhile by a concurrent Sync
			}
			var taxpayer any // NULL when unknown
			if r.taxpayer != nil {
				taxpayer = r.taxpayer
			}
			if _, err := st.ExecContext(ctx, tenant, r.ID, r.seq, r.Type, r.TaxYear,
				unixNano(r.Created), unixNano(r.RecordedAt), r.Size, taxpayer, r.Indexed); err != nil {
				return err
			}
			n++
			last = max(last, r.seq)
		}
		if last > cur {
			_, err = tx.ExecContext(ctx, sqlUpsertCursor, tenant, last)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Query selects entries for Search.
type Query struct {
	// Tenants are the tenants the caller may see; results are limited to
	// them. It is required: an empty list matches nothing. At most
	// MaxQueryTenants, each a valid participant ID.
	Tenants []string
	// Types are the message types the caller may see: nil or exactly
	// []string{"*"} means all; a non-nil empty list matches nothing. At
	// most MaxQueryTypes.
	Types []string
	// Type, when set, selects one message type (within Types).
	Type string
	// TaxYear, when set, selects one tax year.
	TaxYear int
	// From and To, when set, bound RecordedAt: From <= RecordedAt < To.
	From, To time.Time
	// Taxpayer, when set, selects one taxpayer by identifier (12 or 13
	// digits; full-width digits, spaces and hyphens allowed). It is
	// blinded with each tenant's key before the query and is never
	// stored or logged.
	Taxpayer string
	// Limit is the page size, 1..MaxLimit; 0 means DefaultLimit. Offset
	// skips that many matching entries.
	Limit, Offset int
}

// Search returns the entries matching q, newest RecordedAt first (ties by
// tenant and ID, descending), and how many entries match in all. keys gives
// each tenant's index key; it is needed only when q.Taxpayer is set, and a
// tenant without a valid key then matches nothing. An invalid q is
// ErrInvalid; the error never contains q.Taxpayer.
func (ix *Index) Search(ctx context.Context, q Query, keys map[string]Key) ([]Entry, int, error) {
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	switch {
	case limit < 1 || limit > MaxLimit:
		return nil, 0, fmt.Errorf("%w: Limit %d is outside 1..%d", ErrInvalid, q.Limit, MaxLimit)
	case q.Offset < 0:
		return nil, 0, fmt.Errorf("%w: Offset %d is negative", ErrInvalid, q.Offset)
	case q.TaxYear < 0:
		return nil, 0, fmt.Errorf("%w: TaxYear %d is negative", ErrInvalid, q.TaxYear)
	case len(q.Tenants) > MaxQueryTenants:
		return nil, 0, fmt.Errorf("%w: %d tenants, at most %d", ErrInvalid, len(q.Tenants), MaxQueryTenants)
	case len(q.Types) > MaxQueryTypes:
		return nil, 0, fmt.Errorf("%w: %d types, at most %d", ErrInvalid, len(q.Types), MaxQueryTypes)
	}
	tenants := make([]string, 0, len(q.Tenants))
	seen := make(map[string]bool, len(q.Tenants))
	for _, t := range q.Tenants {
		if err := checkTenant(t); err != nil {
			return nil, 0, err
		}
		if !seen[t] {
			seen[t] = true
			tenants = append(tenants, t)
		}
	}
	var taxpayer string
	if q.Taxpayer != "" {
		var ok bool
		if taxpayer, ok = normalize(q.Taxpayer); !ok {
			return nil, 0, fmt.Errorf("%w: taxpayer identifier is not 12 or 13 digits", ErrInvalid)
		}
	}

	var where []string
	var args []any
	// Tenant isolation: every query is confined to the caller's tenants.
	if taxpayer == "" {
		if len(tenants) == 0 {
			return nil, 0, nil
		}
		where = append(where, "tenant IN ("+placeholders(len(tenants))+")")
		for _, t := range tenants {
			args = append(args, t)
		}
	} else {
		var or []string
		for _, t := range tenants {
			k := keys[t]
			if len(k) != KeySize {
				continue // no key, no match by taxpayer
			}
			or = append(or, "(tenant = ? AND taxpayer = ?)")
			args = append(args, t, blind(k, taxpayer))
		}
		if len(or) == 0 {
			return nil, 0, nil
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if !(q.Types == nil || len(q.Types) == 1 && q.Types[0] == "*") {
		if len(q.Types) == 0 {
			return nil, 0, nil
		}
		where = append(where, "type IN ("+placeholders(len(q.Types))+")")
		for _, t := range q.Types {
			args = append(args, t)
		}
	}
	if q.Type != "" {
		where = append(where, "type = ?")
		args = append(args, q.Type)
	}
	if q.TaxYear != 0 {
		where = append(where, "tax_year = ?")
		args = append(args, q.TaxYear)
	}
	if !q.From.IsZero() {
		where = append(where, "recorded_at >= ?")
		args = append(args, unixNano(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "recorded_at < ?")
		args = append(args, unixNano(q.To))
	}
	cond := strings.Join(where, " AND ")

	// One read transaction, so that the count and the page agree.
	tx, err := ix.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // a deferred BEGIN
	if err != nil {
		return nil, 0, fmt.Errorf("searchindex: search: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	var total int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM entries WHERE "+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("searchindex: search: %w", err)
	}
	if total <= q.Offset {
		return nil, total, nil
	}
	// With a taxpayer the (tenant, taxpayer) index finds the few rows; the
	// unary plus stops SQLite from walking the tenant's whole
	// (tenant, recorded_at) index for the order instead (measured by `taxlink
	// bench tenants`: p99 246 ms → under 1 ms on a 17,000-record tenant).
	order := "recorded_at"
	if q.Taxpayer != "" {
		order = "+recorded_at"
	}
	rows, err := tx.QueryContext(ctx, "SELECT tenant, id, type, tax_year, created, recorded_at, size, indexed FROM entries WHERE "+
		cond+" ORDER BY "+order+" DESC, tenant DESC, id DESC LIMIT ? OFFSET ?", append(args, limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("searchindex: search: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var created, recorded int64
		if err := rows.Scan(&e.Tenant, &e.ID, &e.Type, &e.TaxYear, &created, &recorded, &e.Size, &e.Indexed); err != nil {
			return nil, 0, fmt.Errorf("searchindex: search: %w", err)
		}
		e.Created, e.RecordedAt = time.Unix(0, created).UTC(), time.Unix(0, recorded).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("searchindex: search: %w", err)
	}
	return out, total, nil
}

// placeholders returns "?, ?, ..." with n placeholders.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Bounds of the times that Unix nanoseconds can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// unixNano returns t as Unix nanoseconds, clamped to the int64 range.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Forget removes tenant's entries and cursor (used when all its records are
// erased; a later Sync indexes the tenant from the start). It returns how
// many entries it removed.
func (ix *Index) Forget(ctx context.Context, tenant string) (int, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	var n int64
	err := ix.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM entries WHERE tenant = ?", tenant)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM cursors WHERE tenant = ?", tenant)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("searchindex: forget %s: %w", tenant, err)
	}
	ix.checkpoint(ctx)
	return int(n), nil
}

// Remove removes, in one transaction, the entries of tenant with the given
// record IDs (after the store's retention erasure); IDs without an entry are
// ignored. The cursor is kept: the store never lists an erased record again.
func (ix *Index) Remove(ctx context.Context, tenant string, ids []string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if len(ids) > MaxRemoveIDs {
		return fmt.Errorf("%w: %d IDs, at most %d", ErrInvalid, len(ids), MaxRemoveIDs)
	}
	for _, id := range ids {
		if err := store.ValidateID("id", id); err != nil {
			return fmt.Errorf("%w: a record ID is not valid", ErrInvalid)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	err := ix.write(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(ids); start += deleteBatch {
			batch := ids[start:min(start+deleteBatch, len(ids))]
			args := make([]any, 0, 1+len(batch))
			args = append(args, tenant)
			for _, id := range batch {
				args = append(args, id)
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM entries WHERE tenant = ? AND id IN ("+placeholders(len(batch))+")", args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("searchindex: remove from %s: %w", tenant, err)
	}
	ix.checkpoint(ctx)
	return nil
}

// Status returns the state of tenant's index.
func (ix *Index) Status(ctx context.Context, tenant string) (Status, error) {
	if err := checkTenant(tenant); err != nil {
		return Status{}, err
	}
	var s Status
	tx, err := ix.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Status{}, fmt.Errorf("searchindex: status %s: %w", tenant, err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	if err := tx.QueryRowContext(ctx, "SELECT count(*), count(*) FILTER (WHERE NOT indexed) FROM entries WHERE tenant = ?", tenant).Scan(&s.Entries, &s.Unindexed); err != nil {
		return Status{}, fmt.Errorf("searchindex: status %s: %w", tenant, err)
	}
	if s.Cursor, err = ix.cursor(ctx, tx, tenant); err != nil {
		return Status{}, fmt.Errorf("searchindex: status %s: %w", tenant, err)
	}
	return s, nil
}
