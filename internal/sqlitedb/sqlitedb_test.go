package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
)

// TestOpenDurable opens a database and checks the settings every
// connection runs with, and that a connection without them is refused.
func TestOpenDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	db := Open(path, Options{})
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "secure_delete": "1"} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	if err := Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}

	// A plain connection (rollback journal, synchronous=NORMAL) fails the check.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "plain.db")+"?_pragma=synchronous(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error { return CheckConn(ctx, dc.(sqlite.ExecQuerierContext)) })
	if !errors.Is(err, ErrNotDurable) {
		t.Errorf("CheckConn on a plain connection: %v, want ErrNotDurable", err)
	}
}
