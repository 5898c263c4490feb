package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"taxlink/internal/sqlitedb"
	"testing"
	"time"

	"modernc.org/sqlite"

	"taxlink/internal/store"
	"taxlink/internal/store/storetest"
)

// openTest opens a new store in a fresh directory and closes it at cleanup.
func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "node.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"default chunks", nil},
		{"4KiB chunks", []Option{WithChunkSize(4 << 10)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Inbox {
				s, err := Open(filepath.Join(t.TempDir(), "node.db"), c.opts...)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			})
		})
	}
}

func TestEraseConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"default chunks", nil},
		{"4KiB chunks", []Option{WithChunkSize(4 << 10)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.RunErase(t, func(t *testing.T) store.Inbox {
				s, err := Open(filepath.Join(t.TempDir(), "node.db"), c.opts...)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return s
			})
		})
	}
}

func TestOutboxConformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) store.NodeStore {
		s, err := Open(filepath.Join(t.TempDir(), "node.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestConformanceReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Inbox {
		s, err := Open(filepath.Join(dir, "node.db"))
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		return s
	})
}

// rawConn runs f on one connection of db, as a driver connection.
func rawConn(t *testing.T, db *sql.DB, f func(c sqlite.ExecQuerierContext) error) error {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatalf("getting a connection: %v", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(sqlite.ExecQuerierContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot exec and query", dc)
		}
		return f(c)
	})
}

func TestEveryConnectionIsDurable(t *testing.T) {
	s := openTest(t, WithBusyTimeout(1234*time.Millisecond))
	// Hold several connections at once so that the pool opens new ones.
	var conns []*sql.Conn
	for range DefaultMaxConns {
		c, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatalf("getting connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, want := range []struct{ pragma, value string }{
			{"journal_mode", "wal"}, {"synchronous", "2"}, {"foreign_keys", "1"},
			{"secure_delete", "1"}, {"busy_timeout", "1234"},
		} {
			var got string
			if err := c.QueryRowContext(t.Context(), "PRAGMA "+want.pragma).Scan(&got); err != nil {
				t.Fatalf("connection %d: PRAGMA %s: %v", i, want.pragma, err)
			}
			if got != want.value {
				t.Errorf("connection %d: PRAGMA %s = %q, want %q", i, want.pragma, got, want.value)
			}
		}
		c.Close()
	}
}

func TestCheckConnRejectsUndurable(t *testing.T) {
	for _, c := range []struct{ name, params string }{
		{"rollback journal", "_pragma=journal_mode(delete)&_pragma=synchronous(2)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=busy_timeout(1000)"},
		{"synchronous NORMAL", "_pragma=journal_mode(wal)&_pragma=synchronous(1)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=busy_timeout(1000)"},
		{"foreign keys off", "_pragma=journal_mode(wal)&_pragma=synchronous(2)&_pragma=foreign_keys(0)&_pragma=secure_delete(1)&_pragma=busy_timeout(1000)"},
		{"secure_delete off", "_pragma=journal_mode(wal)&_pragma=synchronous(2)&_pragma=foreign_keys(1)&_pragma=secure_delete(0)&_pragma=busy_timeout(1000)"},
		{"no busy timeout", "_pragma=journal_mode(wal)&_pragma=synchronous(2)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_pragma=busy_timeout(0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db")+"?"+c.params)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = rawConn(t, db, func(conn sqlite.ExecQuerierContext) error { return sqlitedb.CheckConn(t.Context(), conn) })
			if !errors.Is(err, ErrNotDurable) {
				t.Errorf("checkConn on a connection with %s: error = %v, want ErrNotDurable", c.name, err)
			}
		})
	}
}

func pragmaInt(t *testing.T, path, name string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int64
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s of %s: %v", name, path, err)
	}
	return v
}

func execRaw(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s on %s: %v", q, path, err)
		}
	}
}

func TestSchemaVersioning(t *testing.T) {
	latest := int64(len(migrations()))
	t.Run("new file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "node.db")
		for i := range 2 { // reopening changes nothing
			s, err := Open(path)
			if err != nil {
				t.Fatalf("Open %d: %v", i, err)
			}
			s.Close()
			if v := pragmaInt(t, path, "user_version"); v != latest {
				t.Errorf("after Open %d, user_version = %d, want %d", i, v, latest)
			}
			if v := pragmaInt(t, path, "application_id"); v != applicationID {
				t.Errorf("after Open %d, application_id = %#x, want %#x", i, v, applicationID)
			}
		}
	})
	t.Run("from version 1", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "node.db")
		execRaw(t, path, fmt.Sprintf("PRAGMA application_id = %d", applicationID), migrations()[0], "PRAGMA user_version = 1",
			`INSERT INTO records (id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt)
VALUES ('01OLD', 't', 's', 'tenant-a', 1, 2, x'01', x'02', 0, x'03')`)
		s, err := Open(path)
		if err != nil {
			t.Fatalf("Open of a version 1 database: %v", err)
		}
		defer s.Close()
		if _, err := s.Get(t.Context(), "tenant-a", "01OLD"); err != nil {
			t.Errorf("the record of the version 1 database is gone after migrating: %v", err)
		}
		if err := s.SetCursor(t.Context(), "hub", 7); err != nil {
			t.Errorf("the outbox tables of version 2 are not usable after migrating: %v", err)
		}
		if v := pragmaInt(t, path, "user_version"); v != latest {
			t.Errorf("after migrating, user_version = %d, want %d", v, latest)
		}
	})
	for _, c := range []struct {
		name  string
		setup []string
		want  error
	}{
		{"newer schema", []string{fmt.Sprintf("PRAGMA application_id = %d", applicationID), fmt.Sprintf("PRAGMA user_version = %d", latest+1)}, ErrSchemaTooNew},
		{"another application", []string{"PRAGMA application_id = 42"}, ErrForeign},
		{"unversioned tables", []string{"CREATE TABLE accounts (id INTEGER)"}, ErrForeign},
		{"versioned without application ID", []string{"PRAGMA user_version = 1"}, ErrForeign},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "other.db")
			execRaw(t, path, c.setup...)
			before := pragmaInt(t, path, "user_version")
			s, err := Open(path)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open of a database with %s: error = %v, want %v", c.name, err, c.want)
			}
			if after := pragmaInt(t, path, "user_version"); after != before {
				t.Errorf("the refused Open changed user_version from %d to %d", before, after)
			}
		})
	}
}

func TestOpenInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		path string
		opts []Option
	}{
		{"empty path", "", nil},
		{"chunk size too small", "a.db", []Option{WithChunkSize(MinChunkSize - 1)}},
		{"chunk size too large", "a.db", []Option{WithChunkSize(MaxChunkSize + 1)}},
		{"no busy timeout", "a.db", []Option{WithBusyTimeout(0)}},
		{"no connections", "a.db", []Option{WithMaxConns(0)}},
		{"file mode with type bits", "a.db", []Option{WithFileMode(fs.ModeDir | 0o600)}},
		{"nil clock", "a.db", []Option{WithClock(nil)}},
	} {
		path := c.path
		if path != "" {
			path = filepath.Join(dir, path)
		}
		s, err := Open(path, c.opts...)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open with %s: error = %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused Open created the database file (stat error %v)", err)
	}
}

func TestPathWithURISyntax(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node?.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database was not created at %q: %v", path, err)
	}
}

func TestNewFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(path, WithFileMode(0o640))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err != nil {
			t.Fatalf("stat %s: %v", path+suffix, err)
		}
		if got := fi.Mode().Perm(); got != 0o640 {
			t.Errorf("%s was created with mode %v, want %v", filepath.Base(path+suffix), got, fs.FileMode(0o640))
		}
	}
}

// TestLargeRecordBoundedMemory records and reads back a 24 MiB ciphertext
// that never exists whole in memory, and checks that Record allocated far
// less than the ciphertext's size.
func TestLargeRecordBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("records 24 MiB")
	}
	const size = 24 << 20
	s := openTest(t)
	rec := testRecord("01BIG", "tenant-a", size)
	in := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), in)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := s.Record(t.Context(), rec, src); err != nil {
		t.Fatalf("Record of %d bytes: %v", size, err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("Record of a %d byte ciphertext allocated %d bytes of Go heap, want under a quarter of it: is it held whole?", size, alloc)
	}

	rc, err := s.OpenCiphertext(t.Context(), rec.Recipient, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := sha256.New()
	if n, err := io.Copy(out, rc); err != nil || n != size {
		t.Fatalf("reading back: %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(in.Sum(nil), out.Sum(nil)) {
		t.Error("the ciphertext read back differs from the one recorded (SHA-256)")
	}
}

// refusingReader fails the test if it is read.
type refusingReader struct{ t *testing.T }

func (r refusingReader) Read([]byte) (int, error) {
	r.t.Error("the ciphertext reader of a recorded ID was read")
	return 0, io.ErrUnexpectedEOF
}

func testRecord(id, tenant string, size int64) store.Record {
	created := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	return store.Record{
		ID: id, Type: "t", Sender: "hub", Recipient: tenant, Created: created, RecordedAt: created.Add(time.Second),
		Header: []byte("header-" + id), Signature: []byte("sig"), CiphertextSize: size, Receipt: []byte(`{"ok":true}`),
	}
}

func TestRecordOfRecordedIDDoesNotRead(t *testing.T) {
	s := openTest(t)
	rec := testRecord("01A", "tenant-a", 3)
	if _, _, err := s.Record(t.Context(), rec, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if _, existed, err := s.Record(t.Context(), rec, refusingReader{t}); err != nil || !existed {
		t.Errorf("re-Record = existed %v, %v; want true, nil", existed, err)
	}
	rec.Header = []byte("other")
	if _, _, err := s.Record(t.Context(), rec, refusingReader{t}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("conflicting Record: error = %v, want ErrConflict", err)
	}
}

func TestRecordDefaultsRecordedAt(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	s := openTest(t, WithClock(func() time.Time { return now }))
	rec := testRecord("01A", "tenant-a", 0)
	rec.RecordedAt = time.Time{}
	got, _, err := s.Record(t.Context(), rec, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if !got.RecordedAt.Equal(now) {
		t.Errorf("RecordedAt left zero was stored as %v, want the clock's %v", got.RecordedAt, now)
	}
}

func TestSpoolLeavesNoFiles(t *testing.T) {
	spool := t.TempDir()
	s := openTest(t, WithSpoolDir(spool), WithChunkSize(MinChunkSize))
	ctx := t.Context()
	big := bytes.Repeat([]byte("c"), 10*MinChunkSize)
	for _, c := range []struct {
		name string
		rec  store.Record
		r    io.Reader
	}{
		{"stored", testRecord("01A", "t", int64(len(big))), bytes.NewReader(big)},
		{"size mismatch", testRecord("01B", "t", int64(len(big))+1), bytes.NewReader(big)},
		{"reader failure", testRecord("01C", "t", int64(len(big))), io.MultiReader(bytes.NewReader(big[:5000]), iotest{})},
	} {
		s.Record(ctx, c.rec, c.r)
		if ents, err := os.ReadDir(spool); err != nil || len(ents) != 0 {
			t.Errorf("after a Record that was %s, the spool directory holds %d entries (error %v), want none", c.name, len(ents), err)
		}
	}
}

// iotest fails every read.
type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestCorruptCiphertext(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  string
	}{
		{"missing chunk", `DELETE FROM chunks WHERE idx = 1`},
		{"extra chunk", `INSERT INTO chunks (record_seq, idx, data) SELECT record_seq, 99, x'00' FROM chunks LIMIT 1`},
		{"long chunk", `UPDATE chunks SET data = CAST(data || x'00' AS BLOB) WHERE idx = 0`},
		{"empty chunk", `UPDATE chunks SET data = x'' WHERE idx = 0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, WithChunkSize(MinChunkSize))
			rec := testRecord("01A", "tenant-a", 3*MinChunkSize)
			if _, _, err := s.Record(t.Context(), rec, bytes.NewReader(make([]byte, rec.CiphertextSize))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.Exec(c.sql); err != nil {
				t.Fatalf("corrupting: %v", err)
			}
			rc, err := s.OpenCiphertext(t.Context(), rec.Recipient, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if n, err := io.Copy(io.Discard, rc); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("reading a ciphertext with a %s: %d bytes, error = %v, want ErrCorrupt", c.name, n, err)
			}
		})
	}
}

// TestTwoHandles opens the same file twice, as the node daemon and a CLI
// would, and records through both at once.
func TestTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	var handles [2]*Store
	for i := range handles {
		s, err := Open(path)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer s.Close()
		handles[i] = s
	}
	const n = 8
	data := bytes.Repeat([]byte("x"), 300_000)
	var wg sync.WaitGroup
	existed := make([]bool, n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			_, existed[i], errs[i] = handles[i%2].Record(t.Context(), testRecord("01SAME", "tenant-a", int64(len(data))), bytes.NewReader(data))
		})
		wg.Go(func() {
			_, _, errs[n+i] = handles[i%2].Record(t.Context(), testRecord(fmt.Sprintf("01DIFF%d", i), "tenant-b", 10), bytes.NewReader(data[:10]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Record %d through two handles: %v", i, err)
		}
	}
	if created := n - countTrue(existed); created != 1 {
		t.Errorf("%d of %d Records of one ID through two handles created it, want exactly 1", created, n)
	}
	for i, s := range handles {
		if got, err := s.Count(t.Context(), ""); err != nil || got != n+1 {
			t.Errorf("handle %d: Count = %d, %v; want %d", i, got, err, n+1)
		}
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// BenchmarkRecord records 8 KiB ciphertexts one after the other
// (ns/op, MB/s). Each Record alternates with the same insert done directly
// with database/sql (record row and one chunk in one BEGIN IMMEDIATE
// transaction) on an identical database in the same directory, so that both
// see the same disk: raw-ns/op is its time and x-raw the ratio of the two.
func BenchmarkRecord(b *testing.B) {
	const size = 8 << 10
	dir := b.TempDir()
	s, err := Open(filepath.Join(dir, "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rawPath := filepath.Join(dir, "raw.db")
	raw, err := Open(rawPath) // creates the identical schema
	if err != nil {
		b.Fatal(err)
	}
	raw.Close()
	rawDB, err := sql.Open("sqlite", sqlitedb.DSN(rawPath, dbOptions(s.opts)))
	if err != nil {
		b.Fatal(err)
	}
	defer rawDB.Close()

	data := bytes.Repeat([]byte{0xA5}, size)
	ctx := context.Background()
	var storeTime, rawTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		rec := testRecord(fmt.Sprintf("01B%d-%d", b.N, i), "tenant-a", size)
		start := time.Now()
		if _, _, err := s.Record(ctx, rec, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := rawInsert(ctx, rawDB, rec, data); err != nil {
			b.Fatal(err)
		}
		storeTime += mid.Sub(start)
		rawTime += time.Since(mid)
	}
	b.StopTimer()
	b.ReportMetric(float64(storeTime.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(size)*float64(b.N)/storeTime.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(rawTime.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(storeTime)/float64(rawTime), "x-raw")
}

func rawInsert(ctx context.Context, db *sql.DB, rec store.Record, data []byte) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO records (id, type, sender, recipient, created_ns, recorded_ns, header, signature, ciphertext_size, receipt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, rec.ID, rec.Type, rec.Sender, rec.Recipient, toNS(rec.Created), toNS(rec.RecordedAt),
		rec.Header, rec.Signature, rec.CiphertextSize, rec.Receipt)
	if err != nil {
		return err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO chunks (record_seq, idx, data) VALUES (?, 0, ?)`, seq, data); err != nil {
		return err
	}
	return tx.Commit()
}
