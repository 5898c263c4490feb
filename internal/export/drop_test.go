package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/store"
)

func (e *testEnv) newDrop(dir string, maxPending int) *Drop {
	e.t.Helper()
	d, err := NewDrop(DropConfig{
		Name: "sapporo-drop", Tenant: tenantA, Dir: dir, MaxPending: maxPending,
		Store: e.st, Open: e.open, Cursors: e.cursors, Audit: e.al,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// dropFiles returns the names in dir, sorted.
func dropFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// wantFiles lists the file names of recs, in directory order.
func wantFiles(recs ...store.Record) []string {
	var names []string
	for _, r := range recs {
		base := dropBase(r.Seq, r.ID)
		names = append(names, base+".json", base+".xml")
	}
	slices.Sort(names)
	return names
}

// take removes rec's files, as the tax system does when it collects them.
func take(t *testing.T, dir string, rec store.Record) {
	t.Helper()
	for _, ext := range []string{".json", ".xml"} {
		if err := os.Remove(filepath.Join(dir, dropBase(rec.Seq, rec.ID)+ext)); err != nil {
			t.Fatal(err)
		}
	}
}

func once(t *testing.T, d *Drop, want int) {
	t.Helper()
	n, err := d.Once(context.Background())
	if err != nil || n != want {
		t.Fatalf("Once = %d, %v; want %d", n, err, want)
	}
}

func TestDropWritesInOrder(t *testing.T) {
	e := newTestEnv(t)
	var recs []store.Record
	for range 5 {
		recs = append(recs, e.addN(tenantA, 1)...)
		e.addN(tenantB, 1) // interleaved records of another tenant are never dropped
	}
	dir := t.TempDir()
	d := e.newDrop(dir, 3)

	once(t, d, 3)
	if got := dropFiles(t, dir); !slices.Equal(got, wantFiles(recs[:3]...)) {
		t.Fatalf("files %v, want %v", got, wantFiles(recs[:3]...))
	}
	for _, rec := range recs[:3] {
		base := filepath.Join(dir, dropBase(rec.Seq, rec.ID))
		payload, err := os.ReadFile(base + ".xml")
		if err != nil || !bytes.Equal(payload, e.plain[rec.ID]) {
			t.Fatalf("payload of %d: %q, %v", rec.Seq, payload, err)
		}
		var meta DropMeta
		b, err := os.ReadFile(base + ".json")
		if err != nil || json.Unmarshal(b, &meta) != nil {
			t.Fatalf("sidecar of %d: %s, %v", rec.Seq, b, err)
		}
		sum := sha256.Sum256(payload)
		if meta.Seq != rec.Seq || meta.ID != rec.ID || meta.Tenant != tenantA || meta.Type != rec.Type ||
			meta.Sender != rec.Sender || meta.ContentType != "application/xml" || meta.Size != int64(len(payload)) ||
			meta.SHA256 != hex.EncodeToString(sum[:]) || meta.File != filepath.Base(base)+".xml" ||
			!meta.Created.Equal(rec.Created) || !meta.RecordedAt.Equal(rec.RecordedAt) {
			t.Fatalf("sidecar of %d = %+v", rec.Seq, meta)
		}
		for _, ext := range []string{".json", ".xml"} {
			if fi, err := os.Stat(base + ext); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s%s: %v, %v", base, ext, fi, err)
			}
		}
		if !e.hasEvent("export:sapporo-drop", "export.drop", tenantA+" "+rec.ID, audit.ResultOK) {
			t.Fatalf("drop of %d not audited", rec.Seq)
		}
	}
	// MaxPending: nothing more while three are outstanding.
	once(t, d, 0)
	if got := dropFiles(t, dir); len(got) != 6 {
		t.Fatalf("%d files with MaxPending 3 outstanding", len(got))
	}

	// Taking away the first and third acknowledges only the first; the
	// room made lets two more in.
	take(t, dir, recs[0])
	take(t, dir, recs[2])
	once(t, d, 2)
	if c, _ := e.cursors.Get("drop.sapporo-drop"); c != recs[0].Seq {
		t.Fatalf("cursor %d after taking 0 and 2, want %d", c, recs[0].Seq)
	}
	if got := dropFiles(t, dir); !slices.Equal(got, wantFiles(recs[1], recs[3], recs[4])) {
		t.Fatalf("files %v", got)
	}
	if !e.hasEvent("export:sapporo-drop", "export.ack", tenantA, audit.ResultOK) {
		t.Fatal("acknowledgement not audited")
	}

	// A record half taken (payload gone, sidecar left) is not acknowledged.
	if err := os.Remove(filepath.Join(dir, dropBase(recs[1].Seq, recs[1].ID)+".xml")); err != nil {
		t.Fatal(err)
	}
	once(t, d, 0)
	if c, _ := e.cursors.Get("drop.sapporo-drop"); c != recs[0].Seq {
		t.Fatalf("cursor %d with a sidecar left, want %d", c, recs[0].Seq)
	}
	// Taking the rest acknowledges everything: the cursor reaches the last
	// record, over the gap of the third.
	os.Remove(filepath.Join(dir, dropBase(recs[1].Seq, recs[1].ID)+".json"))
	take(t, dir, recs[3])
	take(t, dir, recs[4])
	once(t, d, 0)
	if c, _ := e.cursors.Get("drop.sapporo-drop"); c != recs[4].Seq {
		t.Fatalf("cursor %d after taking everything, want %d", c, recs[4].Seq)
	}
	// Every record was opened exactly once, as the drop's actor.
	for _, rec := range recs {
		if n := e.openCount(rec.ID); n != 1 {
			t.Fatalf("record %d opened %d times", rec.Seq, n)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.actors {
		if a != "export:sapporo-drop" {
			t.Fatalf("opened as %q", a)
		}
	}
}

// TestDropRestartResumes: a new Drop over reopened cursors neither rewrites
// what is outstanding nor what was acknowledged, and goes on with the rest.
func TestDropRestartResumes(t *testing.T) {
	e := newTestEnv(t)
	recs := e.addN(tenantA, 6)
	dir := t.TempDir()
	once(t, e.newDrop(dir, 2), 2)
	take(t, dir, recs[0])

	cursors, err := OpenCursors(e.cursorsDir)
	if err != nil {
		t.Fatal(err)
	}
	e.cursors = cursors
	d := e.newDrop(dir, 2)
	once(t, d, 1)
	if got := dropFiles(t, dir); !slices.Equal(got, wantFiles(recs[1], recs[2])) {
		t.Fatalf("files after restart %v", got)
	}
	take(t, dir, recs[1])
	take(t, dir, recs[2])
	once(t, d, 2)
	for _, rec := range recs[:4] {
		if n := e.openCount(rec.ID); n != 1 {
			t.Fatalf("record %d opened %d times", rec.Seq, n)
		}
	}
	if c, _ := e.cursors.Get("drop.sapporo-drop"); c != recs[2].Seq {
		t.Fatalf("cursor %d, want %d", c, recs[2].Seq)
	}
}

// TestDropAtomic: a plaintext stream that fails leaves no file at all (not
// even a temporary one) and is written whole by the next pass; at the
// moment a payload appears its sidecar is already there.
func TestDropAtomic(t *testing.T) {
	e := newTestEnv(t)
	recs := e.addN(tenantA, 3)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := "." + dropBase(recs[0].Seq, recs[0].ID) + ".xml.tmp-12345"
	if err := os.WriteFile(filepath.Join(dir, stale), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.hook = func(id string) io.Reader {
		if id == recs[1].ID {
			return &brokenReader{data: slices.Clone(e.plain[id])}
		}
		return nil
	}
	d := e.newDrop(dir, 10)
	n, err := d.Once(context.Background())
	if !errors.Is(err, errBroken) || n != 1 {
		t.Fatalf("Once = %d, %v; want 1 and the stream's error", n, err)
	}
	if got, want := dropFiles(t, dir), append(wantFiles(recs[0]), "README.txt"); !slices.Equal(got, want) {
		t.Fatalf("files after a failed stream %v, want %v", got, want)
	}
	if !e.hasEvent("export:sapporo-drop", "export.drop", tenantA+" "+recs[1].ID, audit.ResultError) {
		t.Fatal("failed hand-over not audited")
	}

	e.hook = nil
	d.beforeRename = func() {
		for _, rec := range recs[1:] {
			base := filepath.Join(dir, dropBase(rec.Seq, rec.ID))
			_, errMeta := os.Stat(base + ".json")
			_, errPayload := os.Stat(base + ".xml")
			if errPayload == nil && errMeta != nil {
				t.Errorf("payload of %d visible without its sidecar", rec.Seq)
			}
		}
		var hidden int
		for _, name := range dropFiles(t, dir) {
			if strings.HasPrefix(name, ".") {
				hidden++
			}
		}
		if hidden != 1 {
			t.Errorf("%d temporary files before a rename, want the payload's only", hidden)
		}
	}
	once(t, d, 2)
	if got, want := dropFiles(t, dir), append(wantFiles(recs...), "README.txt"); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, dropBase(recs[1].Seq, recs[1].ID)+".xml"))
	if !bytes.Equal(b, e.plain[recs[1].ID]) {
		t.Fatalf("rewritten payload %q", b)
	}
}

// TestDropSkipsErased: a record erased between listing and opening is not
// written and does not block the ones after it.
func TestDropSkipsErased(t *testing.T) {
	e := newTestEnv(t)
	recs := e.addN(tenantA, 3)
	e.mu.Lock()
	delete(e.plain, recs[1].ID) // the fake opener answers store.ErrNotFound
	e.mu.Unlock()
	dir := t.TempDir()
	d := e.newDrop(dir, 10)
	once(t, d, 2)
	if got := dropFiles(t, dir); !slices.Equal(got, wantFiles(recs[0], recs[2])) {
		t.Fatalf("files %v", got)
	}
	take(t, dir, recs[0])
	take(t, dir, recs[2])
	once(t, d, 0)
	if c, _ := e.cursors.Get("drop.sapporo-drop"); c != recs[2].Seq {
		t.Fatalf("cursor %d, want %d", c, recs[2].Seq)
	}
}

func TestDropContentTypes(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct{ contentType, ext string }{
		{"application/xml", "xml"},
		{"text/xml", "xml"},
		{"application/vnd.nta+xml", "xml"},
		{"application/pdf", "pdf"},
		{"application/octet-stream", "bin"},
		{"text/csv", "bin"},
	} {
		if got := extension(tc.contentType); got != tc.ext {
			t.Errorf("extension(%q) = %q, want %q", tc.contentType, got, tc.ext)
		}
	}
	rec := e.add(tenantA, "application/pdf", []byte("%PDF-1.7"))
	dir := t.TempDir()
	once(t, e.newDrop(dir, 0), 1)
	base := dropBase(rec.Seq, rec.ID)
	if got := dropFiles(t, dir); !slices.Equal(got, []string{base + ".json", base + ".pdf"}) {
		t.Fatalf("files %v", got)
	}
}

func TestDropRun(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	d := e.newDrop(dir, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 10*time.Millisecond); close(done) }()
	rec := e.add(tenantA, "application/xml", []byte("<late/>"))
	want := wantFiles(rec)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(dropFiles(t, dir), want) {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not drop the record: %v", dropFiles(t, dir))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestNewDropRefusesBadConfig(t *testing.T) {
	e := newTestEnv(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		name   string
		mutate func(*DropConfig)
	}{
		{"bad name", func(c *DropConfig) { c.Name = "Drop" }},
		{"bad tenant", func(c *DropConfig) { c.Tenant = "" }},
		{"no dir", func(c *DropConfig) { c.Dir = "" }},
		{"missing dir", func(c *DropConfig) { c.Dir = filepath.Join(file, "x") }},
		{"dir is a file", func(c *DropConfig) { c.Dir = file }},
		{"negative MaxPending", func(c *DropConfig) { c.MaxPending = -1 }},
		{"no store", func(c *DropConfig) { c.Store = nil }},
		{"no opener", func(c *DropConfig) { c.Open = nil }},
		{"no cursors", func(c *DropConfig) { c.Cursors = nil }},
		{"no audit", func(c *DropConfig) { c.Audit = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DropConfig{Name: "d", Tenant: tenantA, Dir: t.TempDir(), Store: e.st, Open: e.open, Cursors: e.cursors, Audit: e.al}
			tc.mutate(&cfg)
			if _, err := NewDrop(cfg); !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewDrop = %v, want ErrInvalid", err)
			}
		})
	}
}
