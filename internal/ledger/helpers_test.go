package ledger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Fixed test keys (Ed25519 signatures are deterministic, so the fuzz seeds
// under testdata stay valid).
const (
	testOrigin  = "test.taxlink.invalid/ledger"
	testSKey    = "PRIVATE+KEY+test.taxlink.invalid/ledger+088a7ab6+Aawd2F8SaPmFllaEXrXUNJCsmkNAKZaxCSbA+Hjhr6gW"
	testVKey    = "test.taxlink.invalid/ledger+088a7ab6+AftPYpmDYJkdi4YEZX3ugUyaT3pnlG34zDPWmIGWUw1g"
	otherOrigin = "other.taxlink.invalid/ledger"
	otherSKey   = "PRIVATE+KEY+other.taxlink.invalid/ledger+0f5aa63c+Abwv2b+eMHAMe56xlrQsHexxLx/+audNVoczHAlmZXFj"
	otherVKey   = "other.taxlink.invalid/ledger+0f5aa63c+AUwg6NETQDoQRmDPmIv2MychqoH90PM7GvbyM9i2p/e/"
)

// fixedClock is a clock that always returns the same instant.
func fixedClock() time.Time { return time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC) }

func mustSigner(t testing.TB, skey string) note.Signer {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// testVerifiers returns the verifier set of the test key.
func testVerifiers(t testing.TB) note.Verifiers {
	return note.VerifierList(mustVerifier(t, testVKey))
}

// testOptions returns writable Options with the test key.
func testOptions(t testing.TB) Options {
	return Options{Origin: testOrigin, Signer: mustSigner(t, testSKey), Verifier: mustVerifier(t, testVKey), Now: fixedClock}
}

// otherOptions returns writable Options of another log with another key.
func otherOptions(t testing.TB) Options {
	return Options{Origin: otherOrigin, Signer: mustSigner(t, otherSKey), Verifier: mustVerifier(t, otherVKey), Now: fixedClock}
}

// openTest opens a writable log in dir and closes it at the end of the test.
func openTest(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(dir, testOptions(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// entryFor returns the deterministic content of test entry i.
func entryFor(i int64) []byte {
	return fmt.Appendf(nil, "entry %06d: notification accepted, envelope 01J%020d", i, i*7919)
}

// appendN appends entries [from, from+n) one by one and checks their
// indexes.
func appendN(t testing.TB, l *Log, from, n int64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		got, err := l.Append(context.Background(), entryFor(i))
		if err != nil {
			t.Fatalf("Append(entry %d): %v", i, err)
		}
		if got != i {
			t.Fatalf("Append(entry %d) returned index %d", i, got)
		}
	}
}

// buildLog creates a log in dir with n entries and a checkpoint after
// every `every` entries (and one at the end), then closes it.
func buildLog(t testing.TB, dir string, n, every int64) {
	t.Helper()
	l, err := Open(dir, testOptions(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := int64(0); i < n; i += every {
		appendN(t, l, i, min(every, n-i))
		if _, err := l.Checkpoint(context.Background()); err != nil {
			t.Fatalf("Checkpoint at %d: %v", i+every, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// copyDir copies the log files of src into a new directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{fileEntries, fileHashes, fileCheckpoints, fileHead} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatalf("copy: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o600); err != nil {
			t.Fatalf("copy: %v", err)
		}
	}
	return dst
}

// recordOffsets returns the offset of each complete record in a file of dir.
func recordOffsets(t testing.TB, dir, name string) (offs []int64, hdrSize int64) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, bad, err := readHeader(f, name)
	if err != nil || bad != "" {
		t.Fatalf("header of %s: %v %s", name, err, bad)
	}
	fi, _ := f.Stat()
	rr := newRecordReader(f, h.size(), fi.Size(), MaxEntrySize)
	for {
		rec, err := rr.next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.status != recOK && rec.status != recBadCRC {
			return offs, h.size()
		}
		offs = append(offs, rec.offset)
	}
}

// fileSize returns the size of a file of dir.
func fileSize(t testing.TB, dir, name string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
