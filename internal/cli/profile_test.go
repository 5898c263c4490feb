package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestProfiles checks that the hub's and the node's --cpuprofile and
// --memprofile write gzip-compressed pprof profiles at the stop, and that
// a path that cannot be written fails the start and leaves no CPU profile
// running.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	bad := profiles{cpu: filepath.Join(dir, "missing", "cpu.pprof"), mem: filepath.Join(dir, "m.pprof")}
	if _, err := bad.start(); err == nil {
		t.Fatal("a CPU profile in a missing directory started")
	}
	p := profiles{cpu: filepath.Join(dir, "cpu.pprof"), mem: filepath.Join(dir, "heap.pprof")}
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
}
