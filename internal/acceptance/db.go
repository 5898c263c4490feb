package acceptance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"

	"taxlink/internal/sqlitedb"
)

const (
	fileMode      = fs.FileMode(0o600)
	schemaVersion = 1
	applicationID = 0x74786163 // "txac": tells this file from taxlink's other SQLite files
	schema        = `
CREATE TABLE accepted (
	id      TEXT NOT NULL PRIMARY KEY, -- envelope ID (ULID)
	receipt BLOB NOT NULL              -- the signed acceptance receipt, JSON
) WITHOUT ROWID;
`
	sqlGet    = "SELECT receipt FROM accepted WHERE id = ?"
	sqlInsert = "INSERT INTO accepted (id, receipt) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
)

// DB is a Store in a SQLite file: every Put is committed (write-ahead log,
// synchronous=FULL) before it returns, and the Puts that arrive together
// share one commit. Memory does not grow with the receipts it holds. It is
// safe for concurrent use.
type DB struct {
	db     *sql.DB
	w      *sqlitedb.Writer
	get    *sql.Stmt // prepared once: parsing per call costs more than the lookup
	ins    *sql.Stmt
	closed atomic.Bool
}

// Open opens, creating it if needed (mode 0600), the store in the SQLite
// file at path. It refuses a file that is another SQLite database and a
// connection that is not configured durably.
func Open(path string) (*DB, error) {
	db, w, abs, err := sqlitedb.OpenFile(path, sqlitedb.Options{}, sqlitedb.File{
		AppID: applicationID, Version: schemaVersion, Schema: schema, Kind: "hub acceptance store", Mode: fileMode,
	})
	if err != nil {
		return nil, fmt.Errorf("acceptance: %w", err)
	}
	d := &DB{db: db, w: w}
	if d.get, err = db.Prepare(sqlGet); err == nil {
		d.ins, err = db.Prepare(sqlInsert)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("acceptance: opening %s: %w", abs, err)
	}
	return d, nil
}

// Get implements Store.
func (d *DB) Get(ctx context.Context, id string) ([]byte, error) {
	if d.closed.Load() {
		return nil, errors.New("acceptance: store closed")
	}
	var rc []byte
	err := d.get.QueryRowContext(ctx, id).Scan(&rc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("acceptance: envelope %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("acceptance: look up envelope %s: %w", id, err)
	}
	return rc, nil
}

// Put implements Store.
func (d *DB) Put(ctx context.Context, id string, rc []byte) ([]byte, error) {
	if err := Check(id, rc); err != nil {
		return nil, err
	}
	var stored []byte
	err := d.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, d.ins).ExecContext(ctx, id, rc)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			stored = rc
			return err
		}
		return tx.StmtContext(ctx, d.get).QueryRowContext(ctx, id).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("acceptance: store the receipt of %s: %w", id, err)
	}
	return stored, nil
}

// Record is one envelope's acceptance receipt.
type Record struct {
	ID      string
	Receipt []byte
}

// Import stores recs in one commit, keeping the receipt already stored for
// an ID, as Put does. It refuses the whole batch, storing none of it, if a
// record is invalid.
func (d *DB) Import(ctx context.Context, recs []Record) error {
	for _, r := range recs {
		if err := Check(r.ID, r.Receipt); err != nil {
			return err
		}
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, d.ins)
		for _, r := range recs {
			if _, err := ins.ExecContext(ctx, r.ID, r.Receipt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("acceptance: import %d receipts: %w", len(recs), err)
	}
	return nil
}

// Close closes the store; a second Close fails.
func (d *DB) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return errors.New("acceptance: store already closed")
	}
	d.get.Close()
	d.ins.Close()
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("acceptance: close: %w", err)
	}
	return nil
}

func (d *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if d.closed.Load() {
		return errors.New("acceptance: store closed")
	}
	return d.w.Tx(ctx, fn)
}
