package cli

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// holdPeak allocates about 64 MB that stays live until the returned
// function is called; its name marks the allocation in a heap profile.
func holdPeak() (release func()) {
	blocks := make([][]byte, 64)
	for i := range blocks {
		blocks[i] = make([]byte, 1<<20)
	}
	return func() { runtime.KeepAlive(blocks); blocks = nil }
}

// TestProfiles checks that the hub's and the node's --cpuprofile and
// --memprofile write gzip-compressed pprof profiles, that the heap profile
// is the one taken at the largest live heap (the stop, with the 64 MB
// freed, leaves it as it was), and that a path that cannot be written fails
// the start and leaves no CPU profile running.
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
	release := holdPeak()
	runtime.GC()
	deadline := time.Now().Add(10 * time.Second)
	var atPeak []byte
	for len(atPeak) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no heap profile written within 10 s of a new largest live heap")
		}
		time.Sleep(10 * time.Millisecond)
		atPeak, _ = os.ReadFile(p.mem)
	}
	release()
	runtime.GC()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.mem); !bytes.Equal(b, atPeak) {
		t.Error("the stop replaced the heap profile of the largest live heap with one of a smaller heap")
	}
	for _, f := range []string{p.cpu, p.mem} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s: %d bytes (%v), want a gzip-compressed profile", f, len(b), err)
		}
	}
	z, err := gzip.NewReader(bytes.NewReader(atPeak))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := io.ReadAll(z); err != nil || !bytes.Contains(raw, []byte("holdPeak")) {
		t.Errorf("the heap profile of the largest live heap does not name holdPeak (%v)", err)
	}
	if tmp, _ := filepath.Glob(p.mem + ".*"); len(tmp) != 0 {
		t.Errorf("temporary heap profiles left behind: %v", tmp)
	}
}
