package export

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestCursors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cursors")
	c, err := OpenCursors(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get("sapporo-zeimu"); err != nil || v != 0 {
		t.Fatalf("Get of a new cursor = %d, %v", v, err)
	}
	steps := []struct {
		name    string
		seq     int64
		wantErr error
		want    int64
	}{
		{"forward", 5, nil, 5},
		{"same", 5, nil, 5},
		{"further", 9, nil, 9},
		{"backwards", 8, ErrCursor, 9},
		{"to zero", 0, ErrCursor, 9},
		{"negative", -1, ErrInvalid, 9},
	}
	for _, s := range steps {
		err := c.Set("sapporo-zeimu", s.seq)
		if !errors.Is(err, s.wantErr) || (s.wantErr == nil && err != nil) {
			t.Fatalf("%s: Set(%d) = %v, want %v", s.name, s.seq, err, s.wantErr)
		}
		if v, err := c.Get("sapporo-zeimu"); err != nil || v != s.want {
			t.Fatalf("%s: Get = %d, %v, want %d", s.name, v, err, s.want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "sapporo-zeimu.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cursor file: %v, %v", fi, err)
	}
	// Durable across reopening; cursors are independent.
	c2, err := OpenCursors(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c2.Get("sapporo-zeimu"); err != nil || v != 9 {
		t.Fatalf("after reopen: %d, %v", v, err)
	}
	if v, err := c2.Get("drop.sapporo-zeimu.written"); err != nil || v != 0 {
		t.Fatalf("other cursor: %d, %v", v, err)
	}
	for _, name := range []string{"", "Sapporo", "../x", ".hidden", "a/b", "a b", strings.Repeat("a", 129)} {
		if _, err := c.Get(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Get(%q) = %v, want ErrInvalid", name, err)
		}
		if err := c.Set(name, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Set(%q) = %v, want ErrInvalid", name, err)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("cursor directory holds %d entries", len(entries))
	}
}

func TestCursorsCorruptFile(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCursors(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, content string }{
		{"not json", "seq=5"},
		{"another cursor", `{"name":"other","seq":5}`},
		{"negative", `{"name":"x","seq":-5}`},
		{"unknown field", `{"name":"x","seq":5,"extra":1}`},
		{"trailing data", `{"name":"x","seq":5} {}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get("x"); err == nil {
				t.Fatal("Get of a corrupt cursor file succeeded")
			}
			if err := c.Set("x", 10); err == nil {
				t.Fatal("Set over a corrupt cursor file succeeded")
			}
		})
	}
}

func TestOpenCursorsNotADirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCursors(f); err == nil {
		t.Fatal("OpenCursors on a file succeeded")
	}
	if _, err := OpenCursors(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("OpenCursors(\"\") = %v", err)
	}
}

// TestCursorsConcurrentSet: racing Sets leave the highest value; the
// losers get ErrCursor, never a lower value in place.
func TestCursorsConcurrentSet(t *testing.T) {
	c, err := OpenCursors(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := int64(1); i <= 20; i++ {
		wg.Go(func() {
			if err := c.Set("x", i); err != nil && !errors.Is(err, ErrCursor) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if v, err := c.Get("x"); err != nil || v != 20 {
		t.Fatalf("after racing Sets: %d, %v", v, err)
	}
}
