package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupIncremental(t *testing.T) {
	ctx := context.Background()
	live := t.TempDir()
	l := openTest(t, live)
	appendN(t, l, 0, 100)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 100, 50) // not covered by a checkpoint: not copied

	bdir := filepath.Join(t.TempDir(), "backup")
	if err := Backup(ctx, l, bdir); err != nil {
		t.Fatalf("first Backup: %v", err)
	}
	rep, err := VerifyDir(bdir, testVerifiers(t))
	if err != nil || rep.Entries != 100 || rep.Checkpoints != 1 {
		t.Fatalf("backup VerifyDir = %d entries, %d checkpoints, %v; want 100, 1, nil", rep.Entries, rep.Checkpoints, err)
	}
	if err := CheckBackup(live, bdir, testVerifiers(t)); err != nil {
		t.Fatalf("CheckBackup of a fresh backup: %v", err)
	}
	before, err := os.ReadFile(filepath.Join(bdir, fileEntries))
	if err != nil {
		t.Fatal(err)
	}

	appendN(t, l, 150, 150)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// An interrupted earlier backup left a torn tail: Backup trims it.
	appendBytes(t, bdir, fileEntries, appendRecord(nil, 100, entryFor(100))[:11])
	if err := Backup(ctx, l, bdir); err != nil {
		t.Fatalf("incremental Backup: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(bdir, fileEntries))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, before) {
		t.Fatalf("incremental Backup rewrote the entries it already had")
	}
	liveEntries, _ := os.ReadFile(filepath.Join(live, fileEntries))
	if !bytes.Equal(after, liveEntries) {
		t.Fatalf("backup entries (%d bytes) differ from the live log's (%d bytes) after backing up the whole log", len(after), len(liveEntries))
	}
	if err := CheckBackup(live, bdir, testVerifiers(t)); err != nil {
		t.Fatalf("CheckBackup after the incremental backup: %v", err)
	}
	// Nothing new: Backup is a no-op.
	if err := Backup(ctx, l, bdir); err != nil {
		t.Fatalf("Backup with nothing new: %v", err)
	}
	opts := testOptions(t)
	opts.Signer = nil
	b, err := Open(bdir, opts)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer b.Close()
	if b.Size() != 300 || !bytes.Equal(b.Latest().Note, l.Latest().Note) || b.checkpointCount() != 2 {
		t.Fatalf("backup holds %d entries, %d checkpoints, latest %q; want 300, 2, the live log's", b.Size(), b.checkpointCount(), b.Latest().Note)
	}
}

// forgedLive builds, in a new directory, a log with the same identity,
// origin and key as the log in live but the given entries: what a hub
// administrator holding the key could write to rewrite history.
func forgedLive(t *testing.T, live string, entries [][]byte) string {
	t.Helper()
	h, err := readEntriesHeader(live)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := open(dir, testOptions(t), openMode{writable: true, create: true, logID: &h.logID})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.AppendBatch(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckBackupFindsInconsistencies(t *testing.T) {
	ctx := context.Background()
	live := t.TempDir()
	buildLog(t, live, 200, 100)
	l, err := Open(live, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	err = Backup(ctx, l, backup)
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	offs, _ := recordOffsets(t, backup, fileEntries)
	entries := func(n int64) [][]byte {
		var out [][]byte
		for i := range n {
			out = append(out, entryFor(i))
		}
		return out
	}
	otherLog := t.TempDir()
	{
		o, err := Open(otherLog, otherOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, o, 0, 200)
		o.Checkpoint(ctx)
		o.Close()
	}

	tests := []struct {
		name  string
		setup func(t *testing.T) (liveDir, backupDir string)
		sent  []error
		kind  Kind
		msg   string
	}{
		{
			name: "backup truncated",
			setup: func(t *testing.T) (string, string) {
				d := copyDir(t, backup)
				os.Truncate(filepath.Join(d, fileEntries), offs[150])
				return live, d
			},
			sent: []error{ErrCorrupt},
			kind: KindTruncated,
			msg:  "ledger: backup: entries: checkpoint 1 of size 200 but only 150 entries",
		},
		{
			name: "backup record edited",
			setup: func(t *testing.T) (string, string) {
				d := copyDir(t, backup)
				edit(t, d, fileEntries, func(b []byte) []byte { b[offs[41]+recordHeaderSize] ^= 4; return b })
				return live, d
			},
			sent: []error{ErrCorrupt},
			kind: KindCRC,
			msg:  "ledger: backup: entries record 41 at offset " + itoa(offs[41]) + ": CRC mismatch",
		},
		{
			name: "backup records reordered",
			setup: func(t *testing.T) (string, string) {
				d := copyDir(t, backup)
				edit(t, d, fileEntries, func(b []byte) []byte {
					n := offs[1] - offs[0]
					a := append([]byte(nil), b[offs[10]:offs[10]+n]...)
					copy(b[offs[10]:], b[offs[20]:offs[20]+n])
					copy(b[offs[20]:], a)
					return b
				})
				return live, d
			},
			sent: []error{ErrCorrupt},
			kind: KindReordered,
			msg:  "ledger: backup: entries record 10 at offset " + itoa(offs[10]) + ": holds record 20: records reordered",
		},
		{
			name:  "backup of another log",
			setup: func(t *testing.T) (string, string) { return live, otherLog },
			sent:  []error{ErrForeign, ErrCorrupt},
			kind:  KindForeign,
			msg:   `ledger: backup: entries at offset 0: copy of another log: origin "other.taxlink.invalid/ledger"`,
		},
		{
			name: "live log rewritten: a record edited",
			setup: func(t *testing.T) (string, string) {
				e := entries(200)
				e[41] = bytes.ToUpper(e[41])
				return forgedLive(t, live, e), backup
			},
			sent: []error{ErrFork, ErrCorrupt},
			kind: KindMismatch,
			msg:  "ledger: backup: entries record 41 at offset " + itoa(offs[41]) + ": differs from the live log's record 41: edited",
		},
		{
			name: "live log rewritten: records reordered",
			setup: func(t *testing.T) (string, string) {
				e := entries(200)
				e[10], e[20] = e[20], e[10]
				return forgedLive(t, live, e), backup
			},
			sent: []error{ErrFork, ErrCorrupt},
			kind: KindReordered,
			msg:  "ledger: backup: entries record 10 at offset " + itoa(offs[10]) + ": is the live log's record 20, not 10: reordered (2 records differ)",
		},
		{
			name:  "live log rolled back",
			setup: func(t *testing.T) (string, string) { return forgedLive(t, live, entries(150)), backup },
			sent:  []error{ErrRollback},
			msg:   "ledger: rollback: the live log holds only 150 entries but its backup holds 200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			liveDir, backupDir := tt.setup(t)
			err := CheckBackup(liveDir, backupDir, testVerifiers(t))
			if err == nil {
				t.Fatalf("CheckBackup found nothing wrong")
			}
			for _, s := range tt.sent {
				if !errors.Is(err, s) {
					t.Fatalf("CheckBackup error %q does not wrap %v", err, s)
				}
			}
			if !strings.HasPrefix(err.Error(), tt.msg) {
				t.Fatalf("CheckBackup error\n %q\nwant prefix\n %q", err, tt.msg)
			}
			if tt.kind != "" {
				if ps := Problems(err); len(ps) == 0 || ps[0].Kind != tt.kind {
					t.Fatalf("CheckBackup problems %v, want first of kind %s", ps, tt.kind)
				}
			}
		})
	}
}

func TestBackupRefusesDivergentTarget(t *testing.T) {
	ctx := context.Background()
	live := t.TempDir()
	buildLog(t, live, 50, 50)
	e := make([][]byte, 50)
	for i := range e {
		e[i] = entryFor(int64(i))
	}
	e[7] = []byte("rewritten")
	forged := forgedLive(t, live, e)

	l := openTest(t, live)
	if err := Backup(ctx, l, forged); !errors.Is(err, ErrFork) {
		t.Fatalf("Backup onto a copy with other entries = %v, want ErrFork", err)
	}
	other := t.TempDir()
	o, err := Open(other, otherOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := Backup(ctx, l, other); !errors.Is(err, ErrForeign) {
		t.Fatalf("Backup onto another log = %v, want ErrForeign", err)
	}
	big := forgedLive(t, live, append(e, []byte("extra")))
	if err := Backup(ctx, l, big); !errors.Is(err, ErrRollback) {
		t.Fatalf("Backup onto a copy longer than the live log = %v, want ErrRollback", err)
	}
}
