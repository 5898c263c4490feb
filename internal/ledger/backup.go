package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// backupChunk bounds the entries copied per AppendBatch during Backup.
const (
	backupChunkEntries = 4096
	backupChunkBytes   = 4 << 20
)

// Backup copies l into dstDir consistently: the entries up to l's latest
// checkpoint, their hashes, and every checkpoint up to and including that
// one, in the ledger's own format (dstDir can be opened with Open, checked
// with VerifyDir and CheckBackup, and restored by copying it back).
// Backup is incremental: an existing copy is opened (which verifies it and
// trims a torn tail left by an interrupted Backup), checked to be a prefix
// of l, and only what it lacks is appended and fsync'd. It never copies
// entries not yet covered by a checkpoint. Appends to l may continue
// meanwhile. Errors: ErrForeign (dstDir holds another log), ErrRollback
// (the copy is ahead of l), ErrFork (the copy's entries differ from l's),
// ErrCorrupt (the copy is damaged).
func Backup(ctx context.Context, l *Log, dstDir string) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	cps := append([]cpRef(nil), l.cps...)
	liveSize := l.size
	l.mu.RUnlock()
	var target int64
	if len(cps) > 0 {
		target = cps[len(cps)-1].cp.Size
	}

	b, err := open(dstDir, Options{Origin: l.hdr.origin, Verifier: l.verifier, Now: l.now},
		openMode{writable: true, create: true, logID: &l.hdr.logID})
	if err != nil {
		return fmt.Errorf("ledger: backup %s: %w", dstDir, err)
	}
	defer b.Close()

	bs := b.Size()
	if bs > liveSize {
		return fmt.Errorf("%w: backup %s holds %d entries but the live log only %d", ErrRollback, dstDir, bs, liveSize)
	}
	if bl := b.Latest(); bl.Size > target {
		return fmt.Errorf("%w: backup %s has a checkpoint of size %d but the live log's latest is of size %d", ErrRollback, dstDir, bl.Size, target)
	}
	bh, err := b.TreeHash(bs)
	if err != nil {
		return fmt.Errorf("ledger: backup %s: %w", dstDir, err)
	}
	lh, err := l.TreeHash(bs)
	if err != nil {
		return fmt.Errorf("ledger: backup: %w", err)
	}
	if bh != lh {
		return fmt.Errorf("%w: backup %s diverges from the live log within its first %d entries (root %s, live %s)", ErrFork, dstDir, bs, bh, lh)
	}

	for next := bs; next < target; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := l.readRange(next, min(target, next+backupChunkEntries), backupChunkBytes)
		if err != nil {
			return fmt.Errorf("ledger: backup: %w", err)
		}
		first, err := b.AppendBatch(ctx, chunk)
		if err != nil {
			return fmt.Errorf("ledger: backup %s: %w", dstDir, err)
		}
		if first != next {
			return fmt.Errorf("%w: backup %s: appended at %d, want %d", ErrFork, dstDir, first, next)
		}
		next += int64(len(chunk))
	}
	have, bLatest := b.checkpointCount(), b.Latest()
	for _, c := range cps {
		if have > 0 && c.cp.Size <= bLatest.Size {
			continue
		}
		if err := b.importCheckpoint(c.cp); err != nil {
			return fmt.Errorf("ledger: backup %s: %w", dstDir, err)
		}
	}
	return b.Close()
}

// checkpointCount returns the number of checkpoints of l.
func (l *Log) checkpointCount() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.cps)
}

// readRange returns copies of the published entries [from, to), stopping
// early after maxBytes (at least one entry is returned).
func (l *Log) readRange(from, to int64, maxBytes int) ([][]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if from < 0 || from >= to || to > l.size {
		return nil, fmt.Errorf("%w: entries %d..%d of a log of size %d", ErrRange, from, to, l.size)
	}
	start := l.offsets[from]
	for k := from + 1; k < to; k++ {
		if l.offsets[k]-start > int64(maxBytes) {
			to = k
			break
		}
	}
	end := l.entEnd
	if to < l.size {
		end = l.offsets[to]
	}
	buf := make([]byte, end-start)
	if _, err := l.ent.ReadAt(buf, start); err != nil {
		return nil, fmt.Errorf("ledger: entries records %d..%d at offset %d: %w", from, to-1, start, err)
	}
	out := make([][]byte, 0, to-from)
	for i, p := from, int64(0); i < to; i++ {
		q := l.entEnd - start
		if i+1 < l.size {
			q = l.offsets[i+1] - start
		}
		rec := buf[p:q]
		if len(rec) < recordHeaderSize ||
			int64(binary.BigEndian.Uint64(rec[0:8])) != i ||
			int(binary.BigEndian.Uint32(rec[8:12])) != len(rec)-recordHeaderSize ||
			recordCRC(rec, rec[recordHeaderSize:]) != binary.BigEndian.Uint32(rec[12:16]) {
			return nil, &problemsError{problems: []Problem{{KindCRC, fileEntries, i, start + p, "CRC mismatch (changed on disk since Open)"}}}
		}
		out = append(out, rec[recordHeaderSize:])
		p = q
	}
	return out, nil
}

// importCheckpoint appends a checkpoint copied from the live log, after
// checking that it extends the latest one and that its root is the tree
// hash of l's entries.
func (l *Log) importCheckpoint(cp Checkpoint) error {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	parsed, err := ParseCheckpoint(cp.Note, note.VerifierList(l.verifier))
	if err != nil {
		return err
	}
	if parsed.Origin != l.hdr.origin {
		return fmt.Errorf("%w: checkpoint origin %q, log origin %q", ErrForeign, parsed.Origin, l.hdr.origin)
	}
	l.mu.RLock()
	seq := int64(len(l.cps))
	size := l.size
	var root tlog.Hash
	if parsed.Size <= size {
		root, err = tlog.TreeHash(parsed.Size, tlog.HashReaderFunc(l.readHashes))
	}
	l.mu.RUnlock()
	if err != nil {
		return err
	}
	if seq > 0 && parsed.Size <= l.cps[seq-1].cp.Size {
		return fmt.Errorf("%w: checkpoint of size %d does not extend the latest (size %d)", ErrRollback, parsed.Size, l.cps[seq-1].cp.Size)
	}
	if parsed.Size > size {
		return fmt.Errorf("%w: checkpoint of size %d but only %d entries", ErrRange, parsed.Size, size)
	}
	if root != parsed.Hash {
		return fmt.Errorf("%w: checkpoint of size %d has root %s but the entries give %s", ErrFork, parsed.Size, parsed.Hash, root)
	}
	rec := appendRecord(nil, seq, parsed.Note)
	if _, err := l.cpf.WriteAt(rec, l.cpEnd); err != nil {
		return err
	}
	if !l.noSync {
		if err := datasync(l.cpf); err != nil {
			return err
		}
	}
	if err := l.writeHead(headBody{count: seq + 1, last: sha256.Sum256(parsed.Note)}); err != nil {
		return err
	}
	l.mu.Lock()
	l.cps = append(l.cps, cpRef{seq: seq, offset: l.cpEnd, cp: parsed})
	l.mu.Unlock()
	l.cpEnd += int64(len(rec))
	return nil
}

// CheckBackup verifies the copy in backupDir on its own (VerifyDir with
// verifiers) and against the live log in liveDir, read only: the copy must
// be of the same log (origin and identity), its entries must be the live
// log's first entries byte for byte, and the live log must not hold a
// different checkpoint of the same size as one of the copy's. It may run
// while the live log appends. It returns nil or an error whose message
// names what is wrong, wrapping:
//   - ErrForeign and ErrCorrupt: the copy is of another log;
//   - ErrCorrupt: the copy is damaged on its own (truncated, an edited or
//     reordered record, a bad checkpoint; see Problems);
//   - ErrFork and ErrCorrupt: a copy record differs from the live record
//     at the same index (edited, or reordered when it is another live
//     record), or the checkpoints disagree;
//   - ErrRollback: the live log is shorter than its copy.
func CheckBackup(liveDir, backupDir string, verifiers note.Verifiers) error {
	lh, err := readEntriesHeader(liveDir)
	if err != nil {
		return fmt.Errorf("ledger: live log: %w", err)
	}
	bh, err := readEntriesHeader(backupDir)
	if err != nil {
		return fmt.Errorf("ledger: backup: %w", err)
	}
	if lh.origin != bh.origin || lh.logID != bh.logID {
		return &problemsError{prefix: "backup: ", problems: []Problem{{KindForeign, fileEntries, -1, 0, fmt.Sprintf(
			"copy of another log: origin %q (log %x), but the live log is origin %q (log %x)", bh.origin, bh.logID, lh.origin, lh.logID)}}}
	}
	rep, err := VerifyDir(backupDir, verifiers)
	if err != nil {
		if ps := Problems(err); ps != nil {
			return &problemsError{prefix: "backup: ", problems: ps}
		}
		return fmt.Errorf("ledger: backup: %w", err)
	}
	if err := compareEntries(liveDir, backupDir, lh.size(), rep.Entries); err != nil {
		return err
	}
	return compareCheckpoints(liveDir, backupDir, lh.size(), verifiers)
}

// readEntriesHeader reads the header of dir's entries file.
func readEntriesHeader(dir string) (fileHeader, error) {
	f, err := os.Open(filepath.Join(dir, fileEntries))
	if err != nil {
		return fileHeader{}, err
	}
	defer f.Close()
	h, bad, err := readHeader(f, fileEntries)
	if err != nil {
		return fileHeader{}, err
	}
	if bad != "" {
		return fileHeader{}, &problemsError{problems: []Problem{{KindMalformed, fileEntries, -1, 0, bad}}}
	}
	return h, nil
}

// forEachRecord calls fn for each complete record of dir's file in order,
// until fn returns false or the records end.
func forEachRecord(dir, name string, hdrSize int64, maxLen int, fn func(pos int64, rec record) bool) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rr := newRecordReader(f, hdrSize, fi.Size(), maxLen)
	for pos := int64(0); ; pos++ {
		rec, err := rr.next()
		if err != nil {
			return err
		}
		if rec.status != recOK && rec.status != recBadCRC {
			return nil
		}
		if !fn(pos, rec) {
			return nil
		}
	}
}

// compareEntries checks that the backup's n entries are the live log's
// first n records, byte for byte.
func compareEntries(liveDir, backupDir string, hdrSize, n int64) error {
	if n == 0 {
		return nil
	}
	// Leaf hashes of the backup's records, in order (n is bounded by
	// what VerifyDir accepted; 32 bytes per entry).
	type bk struct {
		leaf tlog.Hash
		off  int64
	}
	var backup []bk
	err := forEachRecord(backupDir, fileEntries, hdrSize, MaxEntrySize, func(pos int64, rec record) bool {
		if pos >= n {
			return false
		}
		backup = append(backup, bk{leaf: tlog.RecordHash(rec.data), off: rec.offset})
		return true
	})
	if err != nil {
		return fmt.Errorf("ledger: backup: %w", err)
	}
	var liveN, nBad int64
	firstBad := int64(-1)
	err = forEachRecord(liveDir, fileEntries, hdrSize, MaxEntrySize, func(pos int64, rec record) bool {
		liveN = pos + 1
		if tlog.RecordHash(rec.data) != backup[pos].leaf {
			if firstBad < 0 {
				firstBad = pos
			}
			nBad++
		}
		return liveN < n
	})
	if err != nil {
		return fmt.Errorf("ledger: live log: %w", err)
	}
	if firstBad < 0 && liveN < n {
		return fmt.Errorf("%w: the live log holds only %d entries but its backup holds %d: live log truncated or rolled back", ErrRollback, liveN, n)
	}
	if firstBad < 0 {
		return nil
	}
	// Index the whole live log to say where a differing record belongs.
	liveIndex := map[tlog.Hash]int64{}
	err = forEachRecord(liveDir, fileEntries, hdrSize, MaxEntrySize, func(pos int64, rec record) bool {
		liveIndex[tlog.RecordHash(rec.data)] = pos
		return true
	})
	if err != nil {
		return fmt.Errorf("ledger: live log: %w", err)
	}
	b := backup[firstBad]
	detail := fmt.Sprintf("differs from the live log's record %d: edited", firstBad)
	kind := KindMismatch
	if q, ok := liveIndex[b.leaf]; ok && q != firstBad {
		detail = fmt.Sprintf("is the live log's record %d, not %d: reordered", q, firstBad)
		kind = KindReordered
	}
	if nBad > 1 {
		detail += fmt.Sprintf(" (%d records differ)", nBad)
	}
	return &problemsError{prefix: "backup: ", problems: []Problem{{kind, fileEntries, firstBad, b.off, detail}}, extra: []error{ErrFork}}
}

// compareCheckpoints checks that the live log holds no checkpoint of the
// same size as one of the backup's with a different root.
func compareCheckpoints(liveDir, backupDir string, hdrSize int64, verifiers note.Verifiers) error {
	roots := map[int64]tlog.Hash{}
	err := forEachRecord(backupDir, fileCheckpoints, hdrSize, MaxCheckpointSize, func(pos int64, rec record) bool {
		if cp, err := ParseCheckpoint(rec.data, verifiers); err == nil {
			roots[cp.Size] = cp.Hash
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("ledger: backup: %w", err)
	}
	var bad error
	err = forEachRecord(liveDir, fileCheckpoints, hdrSize, MaxCheckpointSize, func(pos int64, rec record) bool {
		cp, err := ParseCheckpoint(rec.data, verifiers)
		if err != nil {
			return true // the live log's own problems are VerifyDir's business
		}
		if h, ok := roots[cp.Size]; ok && h != cp.Hash {
			bad = &problemsError{prefix: "backup: ", problems: []Problem{{KindRoot, fileCheckpoints, pos, rec.offset, fmt.Sprintf(
				"the live log's checkpoint of size %d has root %s, the backup's has %s", cp.Size, cp.Hash, h)}}, extra: []error{ErrFork}}
			return false
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("ledger: live log: %w", err)
	}
	return bad
}
