package recordings

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"
	"time"

	"taxlink/internal/sqlitedb"
	"taxlink/internal/wake"
)

const (
	fileMode      = fs.FileMode(0o600)
	schemaVersion = 1
	applicationID = 0x74787263 // "txrc": tells this file from taxlink's other SQLite files
	// AUTOINCREMENT: a sequence a node may hold as its cursor is never
	// given again, even after the highest row is gone.
	schema = `
CREATE TABLE recorded (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	sender       TEXT NOT NULL,        -- the sender node's participant ID
	id           TEXT NOT NULL UNIQUE, -- envelope ID (ULID)
	receipt      BLOB NOT NULL,        -- the recording receipt, JSON
	ledger_index INTEGER NOT NULL      -- its entry in the hub's ledger
);
CREATE INDEX recorded_by_sender ON recorded (sender, seq);
`
	sqlInsert = "INSERT INTO recorded (sender, id, receipt, ledger_index) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	sqlImport = "INSERT INTO recorded (seq, sender, id, receipt, ledger_index) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
	sqlAfter  = "SELECT seq, receipt, ledger_index FROM recorded WHERE sender = ? AND seq > ? ORDER BY seq LIMIT ?"
	sqlLast   = "SELECT COALESCE(MAX(seq), 0) FROM recorded"
)

// DB is a Store in a SQLite file: every Put is committed (write-ahead log,
// synchronous=FULL) before it returns, and the Puts that arrive together
// share one commit. A read waiting for receipts is woken by the commits of
// this DB that store one for the same node (one process writes the file:
// the hub). It is safe for concurrent use.
type DB struct {
	db     *sql.DB
	w      *sqlitedb.Writer
	ins    *sql.Stmt // prepared once: parsing per call costs more than the work
	after  *sql.Stmt
	last   *sql.Stmt
	closed atomic.Bool

	// waiting is woken, per sender node, by the commits that store a
	// receipt for it.
	waiting wake.Keyed
}

// Open opens, creating it if needed (mode 0600), the store in the SQLite
// file at path. It refuses a file that is another SQLite database and a
// connection that is not configured durably.
func Open(path string) (*DB, error) {
	db, w, abs, err := sqlitedb.OpenFile(path, sqlitedb.Options{}, sqlitedb.File{
		AppID: applicationID, Version: schemaVersion, Schema: schema, Kind: "hub recording receipt store", Mode: fileMode,
	})
	if err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	d := &DB{db: db, w: w}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{{&d.ins, sqlInsert}, {&d.after, sqlAfter}, {&d.last, sqlLast}} {
		if *p.dst, err = db.Prepare(p.q); err != nil {
			db.Close()
			return nil, fmt.Errorf("recordings: opening %s: %w", abs, err)
		}
	}
	return d, nil
}

// Put implements Store.
func (d *DB) Put(ctx context.Context, senderNode, id string, rc []byte, ledgerIndex int64) error {
	if err := CheckPut(senderNode, id, rc, ledgerIndex); err != nil {
		return err
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, d.ins).ExecContext(ctx, senderNode, id, rc, ledgerIndex)
		return err
	})
	if err != nil {
		return fmt.Errorf("recordings: store the receipt of %s: %w", id, err)
	}
	d.waiting.Wake(senderNode)
	return nil
}

// After implements Store.
func (d *DB) After(ctx context.Context, senderNode string, after uint64, limit int, wait time.Duration) ([]Stored, error) {
	if err := CheckAfter(senderNode, limit); err != nil {
		return nil, err
	}
	return Wait(ctx, wait, func() <-chan struct{} { return d.waiting.Chan(senderNode) },
		func() ([]Stored, error) { return d.read(ctx, senderNode, after, limit) })
}

func (d *DB) read(ctx context.Context, senderNode string, after uint64, limit int) ([]Stored, error) {
	if d.closed.Load() {
		return nil, errors.New("recordings: store closed")
	}
	rows, err := d.after.QueryContext(ctx, senderNode, int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("recordings: read the receipts of %s: %w", senderNode, err)
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		var s Stored
		if err := rows.Scan(&s.Seq, &s.Receipt, &s.LedgerIndex); err != nil {
			return nil, fmt.Errorf("recordings: read the receipts of %s: %w", senderNode, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recordings: read the receipts of %s: %w", senderNode, err)
	}
	return out, nil
}

// Last implements Store.
func (d *DB) Last(ctx context.Context) (uint64, error) {
	if d.closed.Load() {
		return 0, errors.New("recordings: store closed")
	}
	var last int64
	if err := d.last.QueryRowContext(ctx).Scan(&last); err != nil {
		return 0, fmt.Errorf("recordings: last sequence: %w", err)
	}
	return uint64(last), nil
}

// Record is a stored receipt with what Import needs to store it again.
type Record struct {
	Stored
	SenderNode, ID string
}

// Import stores recs with their own sequences, in one commit, skipping a
// record whose sequence or envelope is stored already. It refuses the
// whole batch, storing none of it, if a record is invalid. Later Puts get
// sequences above every imported one.
func (d *DB) Import(ctx context.Context, recs []Record) error {
	for _, r := range recs {
		if err := CheckPut(r.SenderNode, r.ID, r.Receipt, r.LedgerIndex); err != nil {
			return err
		}
		if r.Seq == 0 || r.Seq > 1<<63-1 {
			return fmt.Errorf("%w: sequence %d", ErrInvalid, r.Seq)
		}
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, sqlImport)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range recs {
			if _, err := ins.ExecContext(ctx, int64(r.Seq), r.SenderNode, r.ID, r.Receipt, r.LedgerIndex); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recordings: import %d receipts: %w", len(recs), err)
	}
	for _, r := range recs {
		d.waiting.Wake(r.SenderNode)
	}
	return nil
}

// Close closes the store; a second Close fails.
func (d *DB) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return errors.New("recordings: store already closed")
	}
	for _, st := range []*sql.Stmt{d.ins, d.after, d.last} {
		st.Close()
	}
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("recordings: close: %w", err)
	}
	return nil
}

// write runs fn through the group-committing writer.
func (d *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if d.closed.Load() {
		return errors.New("recordings: store closed")
	}
	return d.w.Tx(ctx, fn)
}
