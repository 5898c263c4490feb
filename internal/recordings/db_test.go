package recordings_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/recordings"
	"taxlink/internal/recordings/recordingstest"
)

func openDB(t *testing.T, path string) *recordings.DB {
	t.Helper()
	d, err := recordings.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return d
}

func TestDBConformance(t *testing.T) {
	recordingstest.Run(t, func(t *testing.T) (recordings.Store, func() recordings.Store) {
		path := filepath.Join(t.TempDir(), "receipts.db")
		d := openDB(t, path)
		t.Cleanup(func() { d.Close() })
		return d, func() recordings.Store {
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			d = openDB(t, path)
			return d
		}
	})
}

// TestImportKeepsSequences checks what moving the receipts of a hub's
// JetStream stream into the file needs: the sequences the nodes hold as
// cursors stay those of the receipts, repeats are skipped, a bad record
// refuses the batch, and a later Put continues above them.
func TestImportKeepsSequences(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "receipts.db")
	d := openDB(t, path)
	defer d.Close()
	a, b := ulid.Make().String(), ulid.Make().String()
	recs := []recordings.Record{
		{Stored: recordings.Stored{Seq: 5, Receipt: []byte("ra"), LedgerIndex: 1}, SenderNode: "nta:hq", ID: a},
		{Stored: recordings.Stored{Seq: 9, Receipt: []byte("rb"), LedgerIndex: 2}, SenderNode: "nta:hq", ID: b},
		{Stored: recordings.Stored{Seq: 12, Receipt: []byte("ra again"), LedgerIndex: 1}, SenderNode: "nta:hq", ID: a},
	}
	if err := d.Import(ctx, recs); err != nil {
		t.Fatalf("Import: %v", err)
	}
	bad := []recordings.Record{{Stored: recordings.Stored{Seq: 20, Receipt: []byte("x")}, SenderNode: "nta:hq", ID: "not-an-id"}}
	if err := d.Import(ctx, bad); err == nil {
		t.Fatal("Import of a record with a bad envelope ID succeeded")
	}
	got, err := d.After(ctx, "nta:hq", 0, 10, 0)
	if err != nil || len(got) != 2 || got[0].Seq != 5 || got[1].Seq != 9 || string(got[0].Receipt) != "ra" {
		t.Fatalf("after Import: %+v, %v; want sequences 5 and 9 with the first receipt of a", got, err)
	}
	c := ulid.Make().String()
	if err := d.Put(ctx, "nta:hq", c, []byte("rc"), 3); err != nil {
		t.Fatal(err)
	}
	if last, err := d.Last(ctx); err != nil || last <= 12 {
		t.Fatalf("Last after a Put following the import = %d, %v; want above every imported sequence (12)", last, err)
	}
}

// TestRefusesOtherFiles checks that the store does not take another
// SQLite database for its own.
func TestRefusesOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if d, err := recordings.Open(path); err == nil {
		d.Close()
		t.Fatal("Open of another SQLite database succeeded")
	} else if !strings.Contains(err.Error(), "recordings") {
		t.Fatalf("Open of another database: %v; want an error naming the store", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("the other database was changed: %v", err)
	}
}
