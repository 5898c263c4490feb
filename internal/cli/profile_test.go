package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestProfiles checks that the hub's and the node's --cpuprofile and
// --memprofile write gzip-compressed pprof profiles, and that a path that
// cannot be written fails the start and leaves no CPU profile running.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	bad := profiles{cpu: filepath.Join(dir, "missing", "cpu.pprof"), mem: filepath.Join(dir, "m.pprof")}
	if _, err := bad.start(); err == nil {
		t.Fatal("a CPU profile in a missing directory started")
	}
	p := profiles{cpu: filepath.Join(dir, "cpu.pprof"), mem: filepath.Join(dir, "heap.pprof"), every: 10 * time.Millisecond}
	stop, err := p.start()
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	sink := 0
	for i := range 2_000_000 {
		sink += len(bytes.Repeat([]byte{byte(i)}, i%64))
	}
	_ = sink
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.cpu, p.mem} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes (%v), want a gzip-compressed profile", f, len(b), err)
		}
	}
	// No temporary file left behind: only the profiles (m.pprof from the
	// failed start).
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"cpu.pprof", "heap.pprof", "m.pprof"}; !slices.Equal(names, want) {
		t.Errorf("files in the profile directory: %v, want %v", names, want)
	}
}

// TestHeapWatch checks that the heap profile is rewritten only for a live
// heap a tenth above the largest seen, so that it stays the one of the
// peak: not for a small growth, not for a heap that shrank (the stop).
func TestHeapWatch(t *testing.T) {
	w := heapWatch{path: filepath.Join(t.TempDir(), "heap.pprof")}
	const mb = 1 << 20
	for _, c := range []struct {
		live  uint64
		write bool
	}{
		{100 * mb, true},  // the first
		{105 * mb, false}, // within a tenth
		{111 * mb, true},  // a new peak
		{40 * mb, false},  // freed: the peak's profile stays
		{122 * mb, false}, // 111 + 11.1 not passed
		{123 * mb, true},
	} {
		before, _ := os.Stat(w.path)
		if got := w.observe(c.live); got != c.write {
			t.Errorf("live %d MB after a peak of %d MB: wrote %v, want %v", c.live/mb, w.peak/mb, got, c.write)
		}
		after, err := os.Stat(w.path)
		if err != nil {
			t.Fatal(err)
		}
		if rewritten := before == nil || !os.SameFile(before, after); rewritten != c.write {
			t.Errorf("live %d MB: file rewritten %v, want %v", c.live/mb, rewritten, c.write)
		}
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
}
