package blob_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"taxlink/internal/blob"
	"taxlink/internal/blob/blobtest"
)

func TestDirConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		d, err := blob.NewDir(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

// TestDirLeavesNothing checks that a failed Put leaves no file behind and
// that Stale lists exactly the blobs written before its time.
func TestDirLeavesNothing(t *testing.T) {
	ctx := context.Background()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Put(cctx, "lg_011002.X", bytes.NewReader(blobtest.Pattern(1<<20, 1))); err == nil {
		t.Fatal("put with an ended context succeeded")
	}
	if ents, _ := os.ReadDir(d.Path()); len(ents) != 0 {
		t.Fatalf("a failed put left %d files", len(ents))
	}
	old, err := d.Put(ctx, "lg_011002.OLD", bytes.NewReader([]byte("old")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "lg_011002.NEW", bytes.NewReader([]byte("new"))); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(d.Path(), old), past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Path(), "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(filepath.Join(d.Path(), "notes.txt"), past, past)
	stale, err := d.Stale(time.Now().Add(-time.Minute))
	if err != nil || !slices.Equal(stale, []string{old}) {
		t.Fatalf("stale: %v %v; want only %s", stale, err, old)
	}
}

func TestKey(t *testing.T) {
	for _, c := range []struct {
		name, key string
		ok        bool
	}{
		{"lg_011002.ID.0123456789abcdef", "lg_011002.ID", true},
		{"a.ffffffffffffffff", "a", true},
		{"a.0123456789ABCDEF", "", false},
		{"a.0123456789abcde", "", false},
		{".0123456789abcdef", "", false},
		{"a/b.0123456789abcdef", "", false},
		{"0123456789abcdef", "", false},
		{"", "", false},
	} {
		k, err := blob.Key(c.name)
		if c.ok != (err == nil) || k != c.key {
			t.Errorf("Key(%q) = %q, %v; want %q ok=%v", c.name, k, err, c.key, c.ok)
		}
		if err != nil && !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("Key(%q): %v is not ErrBadRef", c.name, err)
		}
	}
}

// FuzzKey checks that Key never accepts a name that could leave the
// directory or that Unique could not have made.
func FuzzKey(f *testing.F) {
	f.Add("lg_011002.01JH8Z5V6Q3K4M7N8P9R0S1T2V.0123456789abcdef")
	f.Fuzz(func(t *testing.T, name string) {
		k, err := blob.Key(name)
		if err != nil {
			return
		}
		if strings.ContainsAny(name, "/\\\x00") || strings.Contains(name, "..") || blob.ValidKey(k) != nil {
			t.Fatalf("Key accepted %q (key %q)", name, k)
		}
		if len(name) != len(k)+17 || !strings.HasPrefix(name, k+".") {
			t.Fatalf("Key(%q) = %q is not its prefix", name, k)
		}
	})
}
