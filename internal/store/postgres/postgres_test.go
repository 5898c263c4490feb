package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"taxlink/internal/store"
	"taxlink/internal/store/storetest"
)

// defaultTestDSN is the server the tests use unless TAXLINK_TEST_PG_DSN
// (or TAXLINK_TEST_POSTGRES_DSN) names another.
const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// skipMessage tells how to give the tests a server.
const skipMessage = "start PostgreSQL (Debian package postgresql) on 127.0.0.1:5432 or set TAXLINK_TEST_PG_DSN"

// testDSN returns the DSN of the test server.
func testDSN() string {
	for _, k := range []string{"TAXLINK_TEST_PG_DSN", "TAXLINK_TEST_POSTGRES_DSN"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return defaultTestDSN
}

// unavailable skips t for want of a PostgreSQL server, or fails it when
// TAXLINK_TEST_STRICT=1.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("TAXLINK_TEST_STRICT") == "1" {
		t.Fatalf("%s (TAXLINK_TEST_STRICT=1): %s", skipMessage, why)
	}
	t.Skipf("%s: %s", skipMessage, why)
}

// needPG returns the test DSN once a server answers on it.
func needPG(t testing.TB) string {
	t.Helper()
	dsn := testDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		unavailable(t, err.Error())
	}
	conn.Close(ctx)
	return dsn
}

// withParam returns dsn (a URL or keyword/value string) with the
// connection parameter key set to value.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parsing the test DSN: %v", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx takes + literally
		return u.String()
	}
	return dsn + " " + key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}

// freshSchema returns the name of a schema that does not exist yet and
// drops it, with everything in it, when t ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	name := fmt.Sprintf("taxlink_test_%x", mrand.Uint64())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connecting to drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// testStore is a store in a fresh schema whose sessions carry the
// schema's name as application_name, so that tests can find them.
type testStore struct {
	*Store
	dsn    string // of the server, without the application name
	schema string
}

// openTest opens a store in a fresh schema and closes it when t ends.
func openTest(t testing.TB, opts ...Option) testStore {
	t.Helper()
	dsn := needPG(t)
	schema := freshSchema(t, dsn)
	s, err := Open(context.Background(), withParam(t, dsn, "application_name", schema), append([]Option{WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open(schema %s): %v", schema, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return testStore{Store: s, dsn: dsn, schema: schema}
}

// admin returns a plain connection to the test server, closed when t ends.
func admin(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	dsn := needPG(t)
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"default chunks", nil},
		{"4KiB chunks", []Option{WithChunkSize(4 << 10)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Inbox {
				schema := freshSchema(t, dsn)
				s, err := Open(t.Context(), dsn, append([]Option{WithSchema(schema)}, c.opts...)...)
				if err != nil {
					t.Fatalf("Open(schema %s): %v", schema, err)
				}
				return s
			})
		})
	}
}

func TestEraseConformance(t *testing.T) {
	dsn := needPG(t)
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"default chunks", nil},
		{"4KiB chunks", []Option{WithChunkSize(4 << 10)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.RunErase(t, func(t *testing.T) store.Inbox {
				schema := freshSchema(t, dsn)
				s, err := Open(t.Context(), dsn, append([]Option{WithSchema(schema)}, c.opts...)...)
				if err != nil {
					t.Fatalf("Open(schema %s): %v", schema, err)
				}
				return s
			})
		})
	}
}

func TestOutboxConformance(t *testing.T) {
	dsn := needPG(t)
	storetest.RunOutbox(t, func(t *testing.T) store.NodeStore {
		schema := freshSchema(t, dsn)
		s, err := Open(t.Context(), dsn, WithSchema(schema))
		if err != nil {
			t.Fatalf("Open(schema %s): %v", schema, err)
		}
		return s
	})
}

func TestConformanceReopen(t *testing.T) {
	dsn := needPG(t)
	schemas := map[string]string{} // by directory; RunReopen opens one at a time
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Inbox {
		schema, ok := schemas[dir]
		if !ok {
			schema = freshSchema(t, dsn)
			schemas[dir] = schema
		}
		s, err := Open(t.Context(), dsn, WithSchema(schema))
		if err != nil {
			t.Fatalf("Open(schema %s for %s): %v", schema, dir, err)
		}
		return s
	})
}

func TestDurableSettings(t *testing.T) {
	for _, c := range []struct {
		fsync, fpw, sc string
		ok             bool
	}{
		{"on", "on", "on", true},
		{"on", "on", "remote_write", true},
		{"on", "on", "remote_apply", true},
		{"on", "on", "local", false},
		{"on", "on", "off", false},
		{"off", "on", "on", false},
		{"on", "off", "on", false},
	} {
		err := durable(c.fsync, c.fpw, c.sc)
		if c.ok && err != nil {
			t.Errorf("fsync=%s full_page_writes=%s synchronous_commit=%s refused: %v", c.fsync, c.fpw, c.sc, err)
		}
		if !c.ok && !errors.Is(err, ErrNotDurable) {
			t.Errorf("fsync=%s full_page_writes=%s synchronous_commit=%s: error = %v, want ErrNotDurable", c.fsync, c.fpw, c.sc, err)
		}
	}
}

// TestOpenRefusesUndurableSessions opens stores whose sessions start with
// an undurable synchronous_commit, as a role's or database's settings or
// the DSN can make them.
func TestOpenRefusesUndurableSessions(t *testing.T) {
	dsn := needPG(t)
	for _, value := range []string{"off", "local"} {
		t.Run(value, func(t *testing.T) {
			schema := freshSchema(t, dsn)
			s, err := Open(t.Context(), withParam(t, dsn, "options", "-c synchronous_commit="+value), WithSchema(schema))
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrNotDurable) {
				t.Fatalf("Open with synchronous_commit=%s: error = %v, want ErrNotDurable", value, err)
			}
		})
	}
	t.Run("remote_apply", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		s, err := Open(t.Context(), withParam(t, dsn, "options", "-c synchronous_commit=remote_apply"), WithSchema(schema))
		if err != nil {
			t.Fatalf("Open with synchronous_commit=remote_apply: %v", err)
		}
		s.Close()
	})
}

func TestOpenInvalid(t *testing.T) {
	ctx := t.Context()
	const dsn = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1"
	for _, c := range []struct {
		name string
		dsn  string
		opts []Option
	}{
		{"unparsable DSN", "postgres://%zz", nil},
		{"empty schema", dsn, []Option{WithSchema("")}},
		{"upper-case schema", dsn, []Option{WithSchema("Taxlink")}},
		{"schema with a dash", dsn, []Option{WithSchema("tax-link")}},
		{"schema starting with a digit", dsn, []Option{WithSchema("1taxlink")}},
		{"schema starting with pg_", dsn, []Option{WithSchema("pg_taxlink")}},
		{"schema too long", dsn, []Option{WithSchema(strings.Repeat("t", 64))}},
		{"chunk too small", dsn, []Option{WithChunkSize(MinChunkSize - 1)}},
		{"chunk too large", dsn, []Option{WithChunkSize(MaxChunkSize + 1)}},
		{"negative max conns", dsn, []Option{WithMaxConns(-1)}},
		{"negative retry", dsn, []Option{WithRetryFor(-time.Second)}},
		{"nil clock", dsn, []Option{WithClock(nil)}},
		{"empty spool dir", dsn, []Option{WithSpoolDir("")}},
	} {
		s, err := Open(ctx, c.dsn, c.opts...)
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open with %s: error = %v, want ErrInvalid", c.name, err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	s, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	if err == nil {
		s.Close()
		t.Fatal("Open of a server that does not exist succeeded")
	}
	if errors.Is(err, store.ErrInvalid) {
		t.Errorf("Open of an unreachable server: error = %v, want a connection error, not ErrInvalid", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Open of an unreachable server took %v; it must not retry", d)
	}
}

func TestSchemaVersioning(t *testing.T) {
	ctx := t.Context()
	dsn := needPG(t)
	db := admin(t, dsn)
	ms := migrations()
	open := func(schema string) (*Store, error) {
		s, err := Open(ctx, dsn, WithSchema(schema))
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	versions := func(schema string) []int {
		t.Helper()
		rows, err := db.Query(ctx, `SELECT version FROM `+pgx.Identifier{schema, "schema_version"}.Sanitize()+` ORDER BY version`)
		if err != nil {
			t.Fatalf("reading the versions of %s: %v", schema, err)
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatalf("reading the versions of %s: %v", schema, err)
		}
		return vs
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	t.Run("new schema gets every version once, concurrently", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = open(schema) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("concurrent Open %d of a new schema: %v", i, err)
			}
		}
		want := make([]int, len(ms))
		for i := range want {
			want[i] = i + 1
		}
		if got := versions(schema); !slices.Equal(got, want) {
			t.Errorf("schema_version holds %v after concurrent Opens, want %v", got, want)
		}
	})

	t.Run("newer schema refused", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		s, err := open(schema)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		exec(fmt.Sprintf(`INSERT INTO %s (version) VALUES (%d)`, pgx.Identifier{schema, "schema_version"}.Sanitize(), len(ms)+1))
		if _, err := open(schema); !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open of a schema at version %d: error = %v, want ErrSchemaTooNew", len(ms)+1, err)
		}
	})

	t.Run("foreign schema refused", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		exec(`CREATE SCHEMA ` + schema + `; CREATE TABLE ` + schema + `.payroll (id int)`)
		if _, err := open(schema); !errors.Is(err, ErrForeign) {
			t.Errorf("Open of a schema holding another application's table: error = %v, want ErrForeign", err)
		}
		if _, err := db.Exec(ctx, `SELECT id FROM `+schema+`.payroll`); err != nil {
			t.Errorf("the foreign schema was changed: %v", err)
		}
	})

	t.Run("empty schema created by an operator", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		exec(`CREATE SCHEMA ` + schema)
		if _, err := open(schema); err != nil {
			t.Errorf("Open of an empty existing schema: %v", err)
		}
	})

	t.Run("each migration in its own transaction", func(t *testing.T) {
		schema := freshSchema(t, dsn)
		s, err := open(schema)
		if err != nil {
			t.Fatal(err)
		}
		bad := append(slices.Clip(ms), `CREATE TABLE half (a int); SELECT 1/0`)
		if err := s.migrate(ctx, bad); err == nil {
			t.Fatal("a failing migration reported no error")
		}
		if got := versions(schema); len(got) != len(ms) {
			t.Errorf("after a failing migration %d, schema_version holds %v, want up to %d", len(bad), got, len(ms))
		}
		var half *string
		if err := db.QueryRow(ctx, `SELECT to_regclass($1)::text`, schema+".half").Scan(&half); err != nil || half != nil {
			t.Errorf("the failing migration left its table behind (%v, %v)", half, err)
		}
		good := append(slices.Clip(ms), `CREATE TABLE later (a int)`)
		if err := s.migrate(ctx, good); err != nil {
			t.Fatalf("a later migration: %v", err)
		}
		if got := versions(schema); len(got) != len(good) {
			t.Errorf("after a later migration, schema_version holds %v, want up to %d", got, len(good))
		}
	})
}

// testRecord returns a valid record of id for tenant.
func testRecord(id, tenant string, size int64) store.Record {
	created := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	return store.Record{
		ID: id, Type: "t", Sender: "hub", Recipient: tenant, Created: created, RecordedAt: created.Add(time.Second),
		Header: []byte("header-" + id), Signature: []byte("sig"), CiphertextSize: size, Receipt: []byte(`{"ok":true}`),
	}
}

// data returns size deterministic bytes derived from id.
func data(id string, size int64) []byte {
	var seed [32]byte
	copy(seed[:], id)
	b := make([]byte, size)
	_, _ = mrand.NewChaCha8(seed).Read(b)
	return b
}

// readAll reads the ciphertext of rec back.
func readAll(t testing.TB, s *Store, rec store.Record) []byte {
	t.Helper()
	rc, err := s.OpenCiphertext(context.Background(), rec.Recipient, rec.ID)
	if err != nil {
		t.Fatalf("OpenCiphertext(%s): %v", rec.ID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the ciphertext of %s after %d bytes: %v", rec.ID, len(b), err)
	}
	return b
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
	src := io.TeeReader(io.LimitReader(mrand.NewChaCha8([32]byte{7}), size), in)

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
	if stored, err := s.Get(t.Context(), rec.Recipient, rec.ID); err != nil || !stored.RecordedAt.Equal(now) {
		t.Errorf("Get after recording with the clock's time = %v, %v; want %v", stored.RecordedAt, err, now)
	}
}

// iotest fails every read.
type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, errors.New("broken pipe") }

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

func TestCorruptCiphertext(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  string
	}{
		{"missing chunk", `DELETE FROM {chunks} WHERE idx = 1`},
		{"extra chunk", `INSERT INTO {chunks} (record_id, idx, data) SELECT record_id, 99, '\x00'::bytea FROM {chunks} LIMIT 1`},
		{"long chunk", `UPDATE {chunks} SET data = data || '\x00'::bytea WHERE idx = 0`},
		{"empty chunk", `UPDATE {chunks} SET data = ''::bytea WHERE idx = 0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, WithChunkSize(MinChunkSize))
			rec := testRecord("01A", "tenant-a", 3*MinChunkSize)
			if _, _, err := s.Record(t.Context(), rec, bytes.NewReader(make([]byte, rec.CiphertextSize))); err != nil {
				t.Fatal(err)
			}
			sql := strings.ReplaceAll(c.sql, "{chunks}", pgx.Identifier{s.schema, "chunks"}.Sanitize())
			if _, err := admin(t, s.dsn).Exec(t.Context(), sql); err != nil {
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

// TestTwoHandles opens the same schema twice, as two node processes
// sharing a database would, and records through both at once.
func TestTwoHandles(t *testing.T) {
	first := openTest(t)
	second, err := Open(t.Context(), first.dsn, WithSchema(first.schema))
	if err != nil {
		t.Fatalf("second Open of schema %s: %v", first.schema, err)
	}
	defer second.Close()
	handles := [2]*Store{first.Store, second}
	const n = 8
	payload := bytes.Repeat([]byte("x"), 300_000)
	var wg sync.WaitGroup
	existed := make([]bool, n)
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			_, existed[i], errs[i] = handles[i%2].Record(t.Context(), testRecord("01SAME", "tenant-a", int64(len(payload))), bytes.NewReader(payload))
		})
		wg.Go(func() {
			_, _, errs[n+i] = handles[i%2].Record(t.Context(), testRecord(fmt.Sprintf("01DIFF%d", i), "tenant-b", 10), bytes.NewReader(payload[:10]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Record %d through two handles: %v", i, err)
		}
	}
	created := 0
	for _, e := range existed {
		if !e {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d of %d Records of one ID through two handles created it, want exactly 1", created, n)
	}
	for i, s := range handles {
		if got, err := s.Count(t.Context(), ""); err != nil || got != n+1 {
			t.Errorf("handle %d: Count = %d, %v; want %d", i, got, err, n+1)
		}
	}
}

// waitUntil polls cond every few milliseconds until it holds, failing t
// with what when d passes first.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// TestSeqFollowsCommitOrder plays a writer that has drawn its Seq and not
// committed yet — a transaction of its own holding the commit-order lock
// and an inserted record row — and checks that a Record started meanwhile
// cannot draw a Seq or commit before that writer commits: it must wait on
// the lock (seen in pg_stat_activity), list nothing new meanwhile, and end
// up with the higher Seq. Both ways of sending chunks are checked.
func TestSeqFollowsCommitOrder(t *testing.T) {
	s := openTest(t)
	db := admin(t, s.dsn)
	for _, c := range []struct {
		name string
		size int64
	}{{"chunks by COPY", 300_000}, {"chunk in the pipeline", 10}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			before, err := s.Count(ctx, "tenant-a")
			if err != nil {
				t.Fatal(err)
			}
			held, err := db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Rollback(context.Background())
			if _, err := held.Exec(ctx, s.sql.lock, s.lockKey); err != nil {
				t.Fatalf("taking the commit-order lock: %v", err)
			}
			early := testRecord(fmt.Sprintf("01EARLY%d", c.size), "tenant-a", 0)
			var earlySeq int64
			err = held.QueryRow(ctx, s.sql.insertRecord, early.ID, early.Type, early.Sender, early.Recipient, toNS(early.Created),
				toNS(early.RecordedAt), early.Header, early.Signature, early.CiphertextSize, early.Receipt, token()).Scan(&earlySeq)
			if err != nil {
				t.Fatalf("inserting the early writer's record: %v", err)
			}

			type result struct {
				rec store.Record
				err error
			}
			done := make(chan result, 1)
			id := fmt.Sprintf("01LATE%d", c.size)
			go func() {
				got, _, err := s.Record(ctx, testRecord(id, "tenant-a", c.size), bytes.NewReader(data(id, c.size)))
				done <- result{got, err}
			}()
			waitUntil(t, 10*time.Second, "Record("+id+") to wait on the advisory lock", func() bool {
				var waiting int
				err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'`, s.schema).Scan(&waiting)
				if err != nil {
					t.Fatalf("reading pg_stat_activity: %v", err)
				}
				return waiting > 0
			})
			select {
			case r := <-done:
				t.Fatalf("Record(%s) returned (seq %d, %v) while an earlier writer held seq %d uncommitted", id, r.rec.Seq, r.err, earlySeq)
			default:
			}
			if n, err := s.Count(ctx, "tenant-a"); err != nil || n != before {
				t.Errorf("Count while neither writer has committed = %d, %v; want %d", n, err, before)
			}
			if err := held.Commit(ctx); err != nil {
				t.Fatalf("committing the early writer: %v", err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("Record(%s): %v", id, r.err)
			}
			if r.rec.Seq <= earlySeq {
				t.Errorf("Record(%s), committed after the writer holding seq %d, got seq %d: seq must follow commit order", id, earlySeq, r.rec.Seq)
			}
			rs, err := s.List(ctx, store.Query{Recipient: "tenant-a", Limit: 10})
			if got := idsOf(rs); err != nil || len(got) < 2 || got[len(got)-2] != early.ID || got[len(got)-1] != id {
				t.Errorf("List after both commits = %v, %v; want it to end with %s, %s", got, err, early.ID, id)
			}
		})
	}
}

func idsOf(rs []store.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// TestPagingNeverSkips pages through a tenant's records with AfterSeq
// while several writers record, and checks that the reader saw every
// record exactly once, in increasing Seq order.
func TestPagingNeverSkips(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const writers, each = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("01P%d-%03d", w, i)
				size := int64(i%3) * 150_000 // 0, and chunked by COPY
				if _, _, err := s.Record(ctx, testRecord(id, "tenant-a", size), bytes.NewReader(data(id, size))); err != nil {
					errs <- fmt.Errorf("Record(%s): %w", id, err)
				}
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	var seen []store.Record
	after := int64(0)
	page := func() int {
		rs, err := s.List(ctx, store.Query{Recipient: "tenant-a", AfterSeq: after, Limit: 7})
		if err != nil {
			t.Fatalf("List after %d: %v", after, err)
		}
		for _, r := range rs {
			if r.Seq <= after {
				t.Fatalf("List after %d returned seq %d", after, r.Seq)
			}
			after = r.Seq
		}
		seen = append(seen, rs...)
		return len(rs)
	}
	for done := false; !done; {
		select {
		case <-writing:
			done = true
		default:
			page()
		}
	}
	for page() > 0 {
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := idsOf(seen)
	if len(got) != writers*each {
		t.Errorf("the paging reader saw %d records, want %d: it skipped some", len(got), writers*each)
	}
	if n, err := s.Count(ctx, "tenant-a"); err != nil || n != int64(len(got)) {
		t.Errorf("Count = %d, %v; the reader saw %d", n, err, len(got))
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin_shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot_connect_now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection_failure", &pgconn.PgError{Code: "08006"}, true},
		{"serialization_failure", &pgconn.PgError{Code: "40001"}, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"unique_violation", &pgconn.PgError{Code: "23505"}, false},
		{"invalid_password", &pgconn.PgError{Code: "28P01"}, false},
		{"undefined_table", &pgconn.PgError{Code: "42P01"}, false},
		{"unexpected EOF", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", pgconn.ErrConnClosed, true},
		{"canceled", context.Canceled, false},
		{"conflict", store.ErrConflict, false},
		{"spool", fmt.Errorf("%w: disk full", errSpool), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

// outcome is what one Record call of a chaos test returned.
type outcome struct {
	rec     store.Record // as given
	got     store.Record // as returned
	existed bool
	err     error
}

// writeUntil records new IDs of tenant in n goroutines until stop is
// closed, signalling progress after every successful Record, and returns
// a function waiting for the writers and returning what every Record
// returned.
func writeUntil(s *Store, n int, prefix string, stop <-chan struct{}, progress chan<- struct{}) func() []outcome {
	results := make([][]outcome, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%05d", prefix, w, i)
				size := []int64{1000, 300_000, 0, 40_000}[i%4] // in memory, by COPY, none
				rec := testRecord(id, []string{"tenant-a", "tenant-b"}[w%2], size)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				got, existed, err := s.Record(ctx, rec, bytes.NewReader(data(id, size)))
				cancel()
				results[w] = append(results[w], outcome{rec, got, existed, err})
				if err == nil {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	return func() []outcome {
		wg.Wait()
		return slices.Concat(results...)
	}
}

// awaitProgress forgets earlier progress and waits for n more successful
// Records, failing t after d.
func awaitProgress(t testing.TB, progress <-chan struct{}, n int, d time.Duration, when string) {
	t.Helper()
	for len(progress) > 0 {
		<-progress
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for i := range n {
		select {
		case <-progress:
		case <-timer.C:
			t.Fatalf("%s: only %d of %d Records succeeded within %v: the writers do not get through", when, i, n, d)
		}
	}
}

// checkOutcomes checks that every Record that returned nil is stored as
// returned, with its ciphertext, and was new; it fails t for every Record
// that returned an error.
func checkOutcomes(t *testing.T, s *Store, outcomes []outcome) {
	t.Helper()
	ok := 0
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("Record(%s) failed: %v", o.rec.ID, o.err)
			continue
		}
		ok++
		if o.existed {
			t.Errorf("Record(%s) of a new ID returned existed=true: a retry took its own commit for another's", o.rec.ID)
		}
		got, err := s.Get(context.Background(), o.rec.Recipient, o.rec.ID)
		if err != nil {
			t.Errorf("Record(%s) returned nil (seq %d) but Get fails: %v; a recording was lost", o.rec.ID, o.got.Seq, err)
			continue
		}
		if got.Seq != o.got.Seq || !bytes.Equal(got.Header, o.rec.Header) || got.CiphertextSize != o.rec.CiphertextSize {
			t.Errorf("Record(%s) returned seq %d; stored: seq %d, size %d", o.rec.ID, o.got.Seq, got.Seq, got.CiphertextSize)
		}
		if b := readAll(t, s, o.rec); !bytes.Equal(b, data(o.rec.ID, o.rec.CiphertextSize)) {
			t.Errorf("the ciphertext of %s read back differs from the one recorded (%d bytes, want %d)", o.rec.ID, len(b), o.rec.CiphertextSize)
		}
	}
	if n, err := s.Count(context.Background(), ""); err != nil || n != int64(ok) {
		t.Errorf("Count = %d, %v; want the %d successful Records", n, err, ok)
	}
}

// TestSurvivesTerminatedConnections terminates every backend of the store,
// from a second connection, again and again while Records run in a loop,
// and checks that the loop gets through after every termination and that
// every Record that returned nil is stored.
func TestSurvivesTerminatedConnections(t *testing.T) {
	s := openTest(t, WithMaxConns(6))
	db := admin(t, s.dsn)
	stop := make(chan struct{})
	progress := make(chan struct{}, 1<<12)
	wait := writeUntil(s.Store, 4, "01KILL", stop, progress)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wait()
		}
	}()

	rounds := 20
	if testing.Short() {
		rounds = 8
	}
	killed := 0
	for round := range rounds {
		awaitProgress(t, progress, 3, time.Minute, fmt.Sprintf("before termination %d", round+1))
		// Only this store's sessions: others may be using the server.
		var n int
		err := db.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, s.schema).Scan(&n)
		if err != nil {
			t.Fatalf("terminating the store's backends: %v", err)
		}
		killed += n
	}
	awaitProgress(t, progress, 3, time.Minute, "after the last termination")
	close(stop)
	outcomes := wait()
	if killed == 0 {
		t.Fatal("no backend was terminated: the test tested nothing")
	}
	if s.retries.Load() == 0 {
		t.Errorf("%d backends terminated but no operation was retried: the test did not hit the reconnect path", killed)
	}
	t.Logf("%d Records, %d backends terminated in %d rounds, %d retries", len(outcomes), killed, rounds, s.retries.Load())
	checkOutcomes(t, s.Store, outcomes)
}

// token returns 16 random bytes.
func token() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// TestRetryAfterUnknownCommitOutcome makes the first COMMIT of every
// Record look failed, as a connection broken before the server's answer
// does, although it succeeded: the retry must find the record stored by
// its own first attempt and report it as new, on each of the three paths
// that detect an existing ID (record row conflict, chunk sent in a batch,
// chunks sent by COPY).
func TestRetryAfterUnknownCommitOutcome(t *testing.T) {
	var mu sync.Mutex
	failed := map[string]bool{}
	s := openTest(t, WithChunkSize(MinChunkSize), func(o *options) {
		o.afterCommit = func(id string) error {
			mu.Lock()
			defer mu.Unlock()
			if failed[id] {
				return nil
			}
			failed[id] = true
			return fmt.Errorf("reading the answer to COMMIT: %w", io.ErrUnexpectedEOF)
		}
	})
	for _, c := range []struct {
		name string
		size int64
	}{{"no chunks", 0}, {"one chunk in memory", 10}, {"chunks by COPY", 5 * MinChunkSize}} {
		t.Run(c.name, func(t *testing.T) {
			rec := testRecord("01AMBIGUOUS-"+fmt.Sprint(c.size), "tenant-a", c.size)
			before := s.retries.Load()
			got, existed, err := s.Record(t.Context(), rec, bytes.NewReader(data(rec.ID, c.size)))
			if err != nil {
				t.Fatalf("Record whose first COMMIT looked failed: %v", err)
			}
			if existed {
				t.Errorf("Record whose first COMMIT looked failed returned existed=true: the retry took its own commit for another's")
			}
			if s.retries.Load() != before+1 {
				t.Errorf("the Record was retried %d times, want once", s.retries.Load()-before)
			}
			stored, err := s.Get(t.Context(), rec.Recipient, rec.ID)
			if err != nil || stored.Seq != got.Seq {
				t.Errorf("Get = seq %d, %v; Record returned seq %d", stored.Seq, err, got.Seq)
			}
			if b := readAll(t, s.Store, rec); !bytes.Equal(b, data(rec.ID, c.size)) {
				t.Errorf("ciphertext read back as %d bytes, not the %d recorded", len(b), c.size)
			}
			// Another call of the same envelope is a re-delivery.
			if _, existed, err := s.Record(t.Context(), rec, bytes.NewReader(data(rec.ID, c.size))); err != nil || !existed {
				t.Errorf("a second Record = existed %v, %v; want true, nil", existed, err)
			}
		})
	}
}

// TestSameHeaderOtherTenant records an envelope for one tenant and then
// the same header bytes for another: the second Record must fail with
// ErrConflict, naming nothing of the first tenant's record, and must not
// return that record.
func TestSameHeaderOtherTenant(t *testing.T) {
	s := openTest(t)
	rec := testRecord("01SHARED", "tenant-a", 10)
	first, _, err := s.Record(t.Context(), rec, bytes.NewReader(data(rec.ID, 10)))
	if err != nil {
		t.Fatal(err)
	}
	other := rec
	other.Recipient = "tenant-b"
	got, existed, err := s.Record(t.Context(), other, bytes.NewReader(data(rec.ID, 10)))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Record of tenant-a's header bytes for tenant-b = %q, existed %v, %v; want ErrConflict", got.Recipient, existed, err)
	}
	if msg := err.Error(); strings.Contains(msg, "tenant-a") || strings.Contains(msg, fmt.Sprintf("seq %d", first.Seq)) {
		t.Errorf("the conflict error %q names tenant-a's record", msg)
	}
}
