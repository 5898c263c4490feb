package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// tamperFixture is a closed log of 300 entries with checkpoints at 100,
// 200 and 300, and the layout of its files.
type tamperFixture struct {
	dir      string
	other    string  // another log (other origin and key) of the same shape
	entries  []int64 // record offsets in entries
	cps      []int64 // record offsets in checkpoints
	hdrSize  int64
	entryLen int64 // every test entry has the same length
}

func newTamperFixture(t *testing.T) *tamperFixture {
	dir := t.TempDir()
	buildLog(t, dir, 300, 100)
	other := t.TempDir()
	l, err := Open(other, otherOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 300; i += 100 {
		appendN(t, l, i, 100)
		if _, err := l.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	fx := &tamperFixture{dir: dir, other: other}
	fx.entries, fx.hdrSize = recordOffsets(t, dir, fileEntries)
	fx.cps, _ = recordOffsets(t, dir, fileCheckpoints)
	fx.entryLen = fx.entries[1] - fx.entries[0]
	if len(fx.entries) != 300 || len(fx.cps) != 3 {
		t.Fatalf("fixture: %d entries, %d checkpoints; want 300, 3", len(fx.entries), len(fx.cps))
	}
	return fx
}

// edit rewrites a file of dir through f.
func edit(t *testing.T, dir, name string, f func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTamperingDetected(t *testing.T) {
	fx := newTamperFixture(t)
	rec := func(i int64) (int64, int64) { return fx.entries[i], fx.entries[i] + fx.entryLen }
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		kind   Kind
		msg    string // the first problem, formatted; %d verbs are filled in below
	}{
		{
			name: "edit a byte in entries",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileEntries, func(b []byte) []byte { b[fx.entries[41]+recordHeaderSize+5] ^= 0x20; return b })
			},
			kind: KindCRC,
			msg:  "entries record 41 at offset " + itoa(fx.entries[41]) + ": CRC mismatch",
		},
		{
			name: "delete a record",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileEntries, func(b []byte) []byte {
					s, e := rec(50)
					return append(b[:s:s], b[e:]...)
				})
			},
			kind: KindDeleted,
			msg:  "entries record 50 at offset " + itoa(fx.entries[50]) + ": holds record 51: 1 record(s) deleted before it",
		},
		{
			name: "swap two records",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileEntries, func(b []byte) []byte {
					s1, e1 := rec(50)
					s2, e2 := rec(60)
					a := append([]byte(nil), b[s1:e1]...)
					copy(b[s1:e1], b[s2:e2])
					copy(b[s2:e2], a)
					return b
				})
			},
			kind: KindReordered,
			msg:  "entries record 50 at offset " + itoa(fx.entries[50]) + ": holds record 60: records reordered (record 50 is at position 60)",
		},
		{
			name: "swap two records and renumber them",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileEntries, func(b []byte) []byte {
					s1, e1 := rec(50)
					s2, e2 := rec(60)
					r50 := appendRecord(nil, 50, b[s2+recordHeaderSize:e2])
					r60 := appendRecord(nil, 60, b[s1+recordHeaderSize:e1])
					copy(b[s1:e1], r50)
					copy(b[s2:e2], r60)
					return b
				})
			},
			kind: KindReordered,
			msg:  "entries record 50 at offset " + itoa(fx.entries[50]) + ": content is that of record 60: records reordered and renumbered",
		},
		{
			name: "truncate entries at a record boundary",
			tamper: func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, fileEntries), fx.entries[250]); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindTruncated,
			msg:  "entries: checkpoint 2 of size 300 but only 250 entries (the file ends at offset " + itoa(fx.entries[250]) + ")",
		},
		{
			name: "truncate entries inside a record",
			tamper: func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, fileEntries), fx.entries[250]+20); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindTruncated,
			msg:  "entries record 250 at offset " + itoa(fx.entries[250]) + ": incomplete record (20 of " + itoa(fx.entryLen) + " bytes), inside entries a checkpoint covers",
		},
		{
			name: "edit a stored hash",
			tamper: func(t *testing.T, dir string) {
				slot := tlog.StoredHashIndex(0, 77)
				edit(t, dir, fileHashes, func(b []byte) []byte { b[fx.hdrSize+slot*32] ^= 1; return b })
			},
			kind: KindHash,
			msg:  "hashes slot " + itoa(tlog.StoredHashIndex(0, 77)) + " at offset " + itoa(fx.hdrSize+tlog.StoredHashIndex(0, 77)*32) + ": stored hash (level 0 for entries record 77) does not match the hash recomputed from the entries",
		},
		{
			name: "edit a byte in a checkpoint",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileCheckpoints, func(b []byte) []byte { b[fx.cps[1]+recordHeaderSize+3] ^= 1; return b })
			},
			kind: KindCRC,
			msg:  "checkpoints checkpoint 1 at offset " + itoa(fx.cps[1]) + ": CRC mismatch",
		},
		{
			name: "edit a checkpoint's size and fix its CRC",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, fileCheckpoints, func(b []byte) []byte {
					s, e := fx.cps[1], fx.cps[2]
					body := []byte(strings.Replace(string(b[s+recordHeaderSize:e]), "\n200\n", "\n201\n", 1))
					copy(b[s:e], appendRecord(nil, 1, body))
					return b
				})
			},
			kind: KindSignature,
			msg:  "checkpoints checkpoint 1 at offset " + itoa(fx.cps[1]) + ": signature does not verify",
		},
		{
			name: "checkpoint signed with the right key over a wrong root",
			tamper: func(t *testing.T, dir string) {
				var root tlog.Hash
				root[0] = 42
				cp, err := signCheckpoint(testOrigin, 200, root, mustSigner(t, testSKey))
				if err != nil {
					t.Fatal(err)
				}
				edit(t, dir, fileCheckpoints, func(b []byte) []byte {
					copy(b[fx.cps[1]:fx.cps[2]], appendRecord(nil, 1, cp.Note))
					return b
				})
			},
			kind: KindRoot,
			msg:  "checkpoints checkpoint 1 at offset " + itoa(fx.cps[1]) + ": root KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= of size 200 does not match the tree of the entries",
		},
		{
			name: "drop the last checkpoint",
			tamper: func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, fileCheckpoints), fx.cps[2]); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindDropped,
			msg:  "head at offset " + itoa(fx.hdrSize) + ": records 3 checkpoints, but the checkpoints file holds only 2: last checkpoint dropped",
		},
		{
			name: "replace entries with another log's file",
			tamper: func(t *testing.T, dir string) {
				data, err := os.ReadFile(filepath.Join(fx.other, fileEntries))
				if err != nil {
					t.Fatal(err)
				}
				edit(t, dir, fileEntries, func([]byte) []byte { return data })
			},
			kind: KindForeign,
			msg:  "entries at offset 0: file from another log",
		},
		{
			name: "replace checkpoints with another log's file",
			tamper: func(t *testing.T, dir string) {
				data, err := os.ReadFile(filepath.Join(fx.other, fileCheckpoints))
				if err != nil {
					t.Fatal(err)
				}
				edit(t, dir, fileCheckpoints, func([]byte) []byte { return data })
			},
			kind: KindForeign,
			msg:  "checkpoints at offset 0: file from another log",
		},
		{
			name: "head missing",
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, fileHead)); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindMissing,
			msg:  "head: file missing",
		},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, fx.dir)
			tt.tamper(t, dir)

			rep, err := VerifyDir(dir, testVerifiers(t))
			if err == nil {
				t.Fatalf("VerifyDir found nothing wrong (report %+v)", rep)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifyDir error %v does not wrap ErrCorrupt", err)
			}
			if len(rep.Problems) == 0 {
				t.Fatalf("VerifyDir returned %v with no problems in the report", err)
			}
			first := rep.Problems[0]
			for _, p := range rep.Problems {
				t.Logf("problem: %s", p)
			}
			if first.Kind != tt.kind || !strings.HasPrefix(first.String(), tt.msg) {
				t.Fatalf("first problem = %s %q\nwant          %s %q\nall: %v", first.Kind, first, tt.kind, tt.msg, rep.Problems)
			}
			if prev, dup := seen[first.String()]; dup {
				t.Fatalf("same message as case %q: %s", prev, first)
			}
			seen[first.String()] = tt.name

			l, err := Open(dir, testOptions(t))
			if err == nil {
				l.Close()
				t.Fatalf("Open accepted the tampered directory")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open error %v does not wrap ErrCorrupt", err)
			}
			if tt.kind == KindForeign && !errors.Is(err, ErrForeign) {
				t.Fatalf("Open error %v does not wrap ErrForeign", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Open error %q does not contain %q", err, tt.msg)
			}
			// Open refused without repairing anything: VerifyDir still sees the same.
			if rep2, _ := VerifyDir(dir, testVerifiers(t)); len(rep2.Problems) == 0 || rep2.Problems[0] != first {
				t.Fatalf("after the refused Open, VerifyDir's first problem changed from %s to %v", first, rep2.Problems)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
