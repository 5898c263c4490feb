package acceptance_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/acceptance"
	"taxlink/internal/acceptance/acceptancetest"
	"taxlink/internal/sqlitedb"
)

func openDB(t testing.TB, path string) *acceptance.DB {
	t.Helper()
	d, err := acceptance.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return d
}

func TestDBConformance(t *testing.T) {
	acceptancetest.Run(t, func(t *testing.T) (acceptance.Store, func() acceptance.Store) {
		path := filepath.Join(t.TempDir(), "accepted.db")
		d := openDB(t, path)
		t.Cleanup(func() { _ = d.Close() })
		return d, func() acceptance.Store {
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			d = openDB(t, path)
			return d
		}
	})
}

func TestDBImport(t *testing.T) {
	ctx := t.Context()
	d := openDB(t, filepath.Join(t.TempDir(), "accepted.db"))
	defer d.Close()
	kept := ulid.Make().String()
	if _, err := d.Put(ctx, kept, []byte("first")); err != nil {
		t.Fatal(err)
	}
	var recs []acceptance.Record
	for i := range 100 {
		recs = append(recs, acceptance.Record{ID: ulid.Make().String(), Receipt: fmt.Appendf(nil, "r%d", i)})
	}
	recs = append(recs, acceptance.Record{ID: kept, Receipt: []byte("second")})
	if err := d.Import(ctx, recs); err != nil {
		t.Fatalf("Import: %v", err)
	}
	for _, r := range recs[:100] {
		if got, err := d.Get(ctx, r.ID); err != nil || string(got) != string(r.Receipt) {
			t.Fatalf("after Import, Get(%s) = %q, %v; want %q", r.ID, got, err, r.Receipt)
		}
	}
	if got, _ := d.Get(ctx, kept); string(got) != "first" {
		t.Errorf("Import replaced a stored receipt: %q, want %q", got, "first")
	}

	bad := []acceptance.Record{{ID: ulid.Make().String(), Receipt: []byte("ok")}, {ID: "not-an-id", Receipt: []byte("x")}}
	if err := d.Import(ctx, bad); !errors.Is(err, acceptance.ErrInvalid) {
		t.Fatalf("Import with an invalid record: %v, want ErrInvalid", err)
	}
	if _, err := d.Get(ctx, bad[0].ID); !errors.Is(err, acceptance.ErrNotFound) {
		t.Errorf("a refused Import stored part of its batch: %v", err)
	}
}

// TestDBRefusesOtherFiles checks that the store opens no SQLite file of
// another kind (a node's store, a search index) and none written by a newer
// version.
func TestDBRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	db := sqlitedb.Open(other, sqlitedb.Options{})
	if _, err := db.Exec("CREATE TABLE t (x); PRAGMA application_id = 42; PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := acceptance.Open(other); err == nil || !strings.Contains(err.Error(), "not a hub acceptance store") {
		t.Errorf("Open of another kind of SQLite file: %v, want a refusal naming it", err)
	}

	newer := filepath.Join(dir, "newer.db")
	d := openDB(t, newer)
	d.Close()
	db = sqlitedb.Open(newer, sqlitedb.Options{})
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := acceptance.Open(newer); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer store: %v, want a refusal", err)
	}
}

func TestDBClosed(t *testing.T) {
	d := openDB(t, filepath.Join(t.TempDir(), "accepted.db"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	id := ulid.Make().String()
	if _, err := d.Put(t.Context(), id, []byte("x")); err == nil {
		t.Error("Put after Close succeeded")
	}
	if _, err := d.Get(t.Context(), id); err == nil || errors.Is(err, acceptance.ErrNotFound) {
		t.Errorf("Get after Close: %v, want an error other than ErrNotFound", err)
	}
	if err := d.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

// BenchmarkPut stores receipts from 64 goroutines, as concurrent
// acceptances do, against the same inserts committed one by one through
// the raw SQLite connection: the ratio is what group commit buys.
func BenchmarkPut(b *testing.B) {
	rc := make([]byte, 700)
	b.Run("store", func(b *testing.B) {
		d := openDB(b, filepath.Join(b.TempDir(), "accepted.db"))
		defer d.Close()
		b.SetParallelism(32) // 64 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := d.Put(context.Background(), ulid.Make().String(), rc); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("raw-serial", func(b *testing.B) {
		db := sqlitedb.Open(filepath.Join(b.TempDir(), "raw.db"), sqlitedb.Options{MaxConns: 1})
		defer db.Close()
		if _, err := db.Exec("CREATE TABLE accepted (id TEXT NOT NULL PRIMARY KEY, receipt BLOB NOT NULL) WITHOUT ROWID"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := db.Exec("INSERT INTO accepted VALUES (?, ?)", ulid.Make().String(), rc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
