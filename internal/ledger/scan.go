package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// cpRef is a valid checkpoint found in the checkpoints file.
type cpRef struct {
	seq    int64 // record number in the checkpoints file
	offset int64 // where its record starts
	cp     Checkpoint
}

// idxMismatch is an entries record whose index field differs from its
// position.
type idxMismatch struct {
	pos, got, off int64
}

// scanResult is what scanDir learns about a log directory.
type scanResult struct {
	hdr       fileHeader
	entries   int64       // valid entries (torn tail excluded)
	entEnd    int64       // offset just after the last valid entry
	offsets   []int64     // record offsets, if asked for
	fr        frontier    // tree over the valid entries
	fileSlots int64       // complete hash slots in the hashes file
	missing   []tlog.Hash // recomputed hashes for slots [min(fileSlots, expected), expected), if asked for
	cps       []cpRef     // valid checkpoints, in order
	cpRecords int64       // complete records in the checkpoints file
	cpEnd     int64       // offset just after the last complete checkpoint record
	head      headBody

	problems    []Problem // defects: the directory is corrupt
	recoverable []Problem // crash leftovers Open repairs
}

// expectedSlots returns the number of hash slots the valid entries need.
func (s *scanResult) expectedSlots() int64 { return tlog.StoredHashCount(s.entries) }

// latest returns the last valid checkpoint, or the zero Checkpoint.
func (s *scanResult) latest() Checkpoint {
	if len(s.cps) == 0 {
		return Checkpoint{}
	}
	return s.cps[len(s.cps)-1].cp
}

// scanOptions selects what scanDir keeps besides problems.
type scanOptions struct {
	verifiers   note.Verifiers
	keepOffsets bool // fill scanResult.offsets
	keepMissing bool // fill scanResult.missing
}

// scanDir reads a whole log directory without modifying it and reports
// its state and every problem found. The error is for I/O failures only.
func scanDir(dir string, opt scanOptions) (*scanResult, error) {
	res := &scanResult{}
	names := []string{fileEntries, fileHashes, fileCheckpoints, fileHead}
	files := make(map[string]*os.File, len(names))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			res.problems = append(res.problems, Problem{KindMissing, name, -1, -1, "file missing"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		files[name] = f
	}
	if len(res.problems) > 0 {
		return res, nil
	}
	// Sizes are taken in the order a writer makes things durable in
	// reverse (head, checkpoints, entries, hashes), so that a directory
	// being appended to is seen consistently: every checkpoint the head
	// counts is in the checkpoints seen, every entry a checkpoint covers
	// is in the entries seen, and the hashes seen cover at least those.
	sizes := make(map[string]int64, len(names))
	for _, name := range []string{fileHead, fileCheckpoints, fileEntries, fileHashes} {
		fi, err := files[name].Stat()
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		sizes[name] = fi.Size()
	}
	headers := make(map[string]fileHeader, len(names))
	for _, name := range names {
		h, bad, err := readHeader(files[name], name)
		if err != nil {
			return nil, fmt.Errorf("ledger: %s: %w", name, err)
		}
		if bad != "" {
			res.problems = append(res.problems, Problem{KindMalformed, name, -1, 0, bad})
			continue
		}
		headers[name] = h
	}
	if len(res.problems) > 0 {
		return res, nil
	}
	if p := foreignFiles(names, headers); len(p) > 0 {
		res.problems = p
		return res, nil
	}
	res.hdr = headers[fileEntries]
	hdrSize := res.hdr.size()

	// The head: how many checkpoints were acknowledged.
	headData := make([]byte, sizes[fileHead]-hdrSize)
	if _, err := files[fileHead].ReadAt(headData, hdrSize); err != nil && err != io.EOF {
		return nil, fmt.Errorf("ledger: head: %w", err)
	}
	head, bad := parseHeadBody(headData)
	if bad != "" {
		res.problems = append(res.problems, Problem{KindMalformed, fileHead, -1, hdrSize, bad})
		return res, nil
	}
	res.head = head

	cpProblems, lastNote := res.scanCheckpoints(files[fileCheckpoints], hdrSize, sizes[fileCheckpoints], opt.verifiers)
	headProblems := res.checkHead(lastNote, hdrSize)
	entProblems, hashProblems, rootProblems, err := res.scanEntries(files[fileEntries], files[fileHashes], hdrSize, sizes, opt)
	if err != nil {
		return nil, err
	}
	for _, ps := range [][]Problem{entProblems, hashProblems, cpProblems, rootProblems, headProblems} {
		res.problems = append(res.problems, ps...)
	}
	return res, nil
}

// foreignFiles returns a KindForeign problem for each file whose header
// names another log than the majority of the four files.
func foreignFiles(names []string, headers map[string]fileHeader) []Problem {
	type key struct {
		id     [logIDLen]byte
		origin string
	}
	count := map[key]int{}
	for _, n := range names {
		h := headers[n]
		count[key{h.logID, h.origin}]++
	}
	if len(count) == 1 {
		return nil
	}
	var best key
	bestN, tie := 0, false
	for k, n := range count {
		switch {
		case n > bestN:
			best, bestN, tie = k, n, false
		case n == bestN:
			tie = true
		}
	}
	var out []Problem
	for _, n := range names {
		h := headers[n]
		k := key{h.logID, h.origin}
		if tie {
			out = append(out, Problem{KindForeign, n, -1, 0, fmt.Sprintf(
				"files disagree on the log they belong to: this one is log %x with origin %q", h.logID, h.origin)})
			continue
		}
		if k != best {
			out = append(out, Problem{KindForeign, n, -1, 0, fmt.Sprintf(
				"file from another log: log %x with origin %q, but the other files are log %x with origin %q",
				h.logID, h.origin, best.id, best.origin)})
		}
	}
	return out
}

// scanCheckpoints reads every checkpoint record. It returns the problems
// found and the data of the last complete record.
func (res *scanResult) scanCheckpoints(f *os.File, start, size int64, verifiers note.Verifiers) ([]Problem, []byte) {
	var probs []Problem
	var lastNote []byte
	rr := newRecordReader(f, start, size, MaxCheckpointSize)
	res.cpEnd = start
	var seq int64
	for {
		rec, err := rr.next()
		if err != nil {
			probs = append(probs, Problem{KindMalformed, fileCheckpoints, seq, rr.off, "read: " + err.Error()})
			return probs, lastNote
		}
		switch rec.status {
		case recEOF:
			res.cpRecords = seq
			return probs, lastNote
		case recTorn:
			res.cpRecords = seq
			p := Problem{KindTorn, fileCheckpoints, seq, rec.offset, rec.detail}
			if res.head.count > seq {
				// The head counts this checkpoint: it was acknowledged.
				p.Kind = KindTruncated
				p.Detail = rec.detail + " (the head says it was complete)"
				probs = append(probs, p)
			} else {
				res.recoverable = append(res.recoverable, p)
			}
			return probs, lastNote
		case recTooLong:
			res.cpRecords = seq
			probs = append(probs, Problem{KindMalformed, fileCheckpoints, seq, rec.offset, rec.detail})
			return probs, lastNote
		case recBadCRC:
			if rec.last && res.head.count <= seq {
				res.cpRecords = seq
				res.recoverable = append(res.recoverable, Problem{KindTorn, fileCheckpoints, seq, rec.offset, "CRC mismatch in the last record (torn write)"})
				return probs, lastNote
			}
			probs = append(probs, Problem{KindCRC, fileCheckpoints, seq, rec.offset, "CRC mismatch"})
		case recOK:
			if p, ok := res.checkCheckpoint(rec, seq, verifiers); !ok {
				probs = append(probs, p)
			}
		}
		lastNote = bytes.Clone(rec.data)
		seq++
		res.cpEnd = rr.off
	}
}

// checkCheckpoint parses one checkpoint record and appends it to res.cps
// if it is valid and follows the previous one.
func (res *scanResult) checkCheckpoint(rec record, seq int64, verifiers note.Verifiers) (Problem, bool) {
	bad := func(k Kind, format string, args ...any) (Problem, bool) {
		return Problem{k, fileCheckpoints, seq, rec.offset, fmt.Sprintf(format, args...)}, false
	}
	if rec.index != seq {
		return bad(KindIndex, "holds checkpoint number %d: checkpoints reordered, deleted or inserted", rec.index)
	}
	cp, err := ParseCheckpoint(rec.data, verifiers)
	if err != nil {
		var invalid *note.InvalidSignatureError
		if errors.As(err, &invalid) || errors.Is(err, errUntrusted) {
			return bad(KindSignature, "signature does not verify: %v", err)
		}
		return bad(KindMalformed, "%v", err)
	}
	if cp.Origin != res.hdr.origin {
		return bad(KindForeign, "origin %q, but the log's origin is %q", cp.Origin, res.hdr.origin)
	}
	if n := len(res.cps); n > 0 && cp.Size <= res.cps[n-1].cp.Size {
		prev := res.cps[n-1]
		if cp.Size == prev.cp.Size && cp.Hash != prev.cp.Hash {
			return bad(KindRoot, "size %d with root %s, but checkpoint %d has the same size with root %s (fork)", cp.Size, cp.Hash, prev.seq, prev.cp.Hash)
		}
		return bad(KindSequence, "size %d does not exceed checkpoint %d's size %d", cp.Size, prev.seq, prev.cp.Size)
	}
	res.cps = append(res.cps, cpRef{seq: seq, offset: rec.offset, cp: cp})
	return Problem{}, true
}

// checkHead compares the head with the checkpoints file.
func (res *scanResult) checkHead(lastNote []byte, hdrSize int64) []Problem {
	hc, n := res.head.count, res.cpRecords
	switch {
	case hc == n:
		if n > 0 {
			if sum := sha256.Sum256(lastNote); sum != res.head.last {
				return []Problem{{KindHead, fileHead, -1, hdrSize, fmt.Sprintf(
					"names a last checkpoint with SHA-256 %s, but checkpoint %d has %s: last checkpoint replaced",
					short(res.head.last[:]), n-1, short(sum[:]))}}
			}
		}
	case hc == n-1:
		// A crash between appending a checkpoint and updating the head.
		res.recoverable = append(res.recoverable, Problem{KindStaleHead, fileHead, -1, hdrSize, fmt.Sprintf(
			"records %d checkpoints, the file holds %d: the head update after the last checkpoint was interrupted", hc, n)})
	case hc > n:
		return []Problem{{KindDropped, fileHead, -1, hdrSize, fmt.Sprintf(
			"records %d checkpoints, but the checkpoints file holds only %d: last checkpoint dropped", hc, n)}}
	default:
		return []Problem{{KindHead, fileHead, -1, hdrSize, fmt.Sprintf(
			"records %d checkpoints, but the checkpoints file holds %d: checkpoints appended outside the ledger", hc, n)}}
	}
	return nil
}

func short(b []byte) string { return hex.EncodeToString(b[:8]) }

// scanEntries reads every entry, rebuilds the tree, compares it with the
// stored hashes and the checkpoints' roots.
func (res *scanResult) scanEntries(ef, hf *os.File, hdrSize int64, sizes map[string]int64, opt scanOptions) (entProbs, hashProbs, rootProbs []Problem, err error) {
	hashBytes := sizes[fileHashes] - hdrSize
	res.fileSlots = hashBytes / tlog.HashSize
	if rem := hashBytes % tlog.HashSize; rem != 0 {
		res.recoverable = append(res.recoverable, Problem{KindTorn, fileHashes, res.fileSlots,
			hdrSize + res.fileSlots*tlog.HashSize, fmt.Sprintf("incomplete hash slot (%d of %d bytes)", rem, tlog.HashSize)})
	}
	hr := &bufReader{src: hf, pos: hdrSize, end: hdrSize + res.fileSlots*tlog.HashSize, buf: make([]byte, 1<<20)}

	// Checkpoint sizes to check roots at.
	var maxCP int64
	check := map[int64][]cpRef{}
	for _, c := range res.cps {
		check[c.cp.Size] = append(check[c.cp.Size], c)
		maxCP = max(maxCP, c.cp.Size)
	}
	checkRoot := func(size int64) {
		for _, c := range check[size] {
			if root := res.fr.root(); root != c.cp.Hash {
				rootProbs = append(rootProbs, Problem{KindRoot, fileCheckpoints, c.seq, c.offset, fmt.Sprintf(
					"root %s of size %d does not match the tree of the entries (%s)", c.cp.Hash, size, root)})
			}
		}
	}
	checkRoot(0)
	// Slots a checkpoint covers were synced before it was signed; later
	// ones are synced only before the next checkpoint (Log.syncer), so a
	// crash can leave them stale or zeroed: from the first that does not
	// match, they are recomputed like missing ones.
	signedSlots := tlog.StoredHashCount(maxCP)
	stale := false

	rr := newRecordReader(ef, hdrSize, sizes[fileEntries], MaxEntrySize)
	var (
		pos        int64
		slot       int64
		torn       *Problem
		mismatches []idxMismatch
		nMismatch  int64
		nHashBad   int64
		badLeaves  []idxMismatch // positions (and offsets) whose stored leaf hash differs
		hashes     []tlog.Hash
	)
	res.entEnd = hdrSize
scan:
	for {
		rec, err := rr.next()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("ledger: entries record %d at offset %d: %w", pos, rr.off, err)
		}
		switch rec.status {
		case recEOF:
			break scan
		case recTorn:
			torn = &Problem{KindTorn, fileEntries, pos, rec.offset, rec.detail}
			break scan
		case recTooLong:
			entProbs = append(entProbs, Problem{KindMalformed, fileEntries, pos, rec.offset, rec.detail})
			break scan
		case recBadCRC:
			if rec.last && pos >= maxCP {
				torn = &Problem{KindTorn, fileEntries, pos, rec.offset, "CRC mismatch in the last record (torn write)"}
				break scan
			}
			entProbs = append(entProbs, Problem{KindCRC, fileEntries, pos, rec.offset, "CRC mismatch"})
		case recOK:
			if rec.index != pos {
				if len(mismatches) < 4096 {
					mismatches = append(mismatches, idxMismatch{pos, rec.index, rec.offset})
				}
				nMismatch++
			}
		}
		if opt.keepOffsets {
			res.offsets = append(res.offsets, rec.offset)
		}
		hashes = res.fr.add(tlog.RecordHash(rec.data), hashes[:0])
		for i, h := range hashes {
			if slot < res.fileSlots {
				b, err := hr.Peek(tlog.HashSize)
				if err != nil {
					return nil, nil, nil, fmt.Errorf("ledger: hashes slot %d: %w", slot, err)
				}
				switch {
				case bytes.Equal(b, h[:]):
				case slot >= signedSlots:
					// Not yet synced at a crash: the file ends here.
					stale = true
					res.fileSlots = slot
				default:
					if nHashBad == 0 {
						hashProbs = append(hashProbs, Problem{KindHash, fileHashes, slot, hdrSize + slot*tlog.HashSize, fmt.Sprintf(
							"stored hash (level %d for entries record %d) does not match the hash recomputed from the entries", i, pos)})
					}
					nHashBad++
					if i == 0 && len(badLeaves) < 64 {
						badLeaves = append(badLeaves, idxMismatch{pos: pos, off: rec.offset})
					}
				}
				if slot < res.fileSlots {
					hr.Discard(tlog.HashSize)
					slot++
					continue
				}
			}
			if opt.keepMissing {
				res.missing = append(res.missing, h)
			}
			slot++
		}
		pos++
		res.entEnd = rr.off
		checkRoot(pos)
	}
	res.entries = pos

	if nMismatch > 0 {
		entProbs = append(entProbs, classifyIndexMismatches(mismatches, nMismatch))
	}
	if len(badLeaves) > 0 && nMismatch == 0 {
		if p, ok := findMovedLeaf(hf, ef, hdrSize, res.fileSlots, badLeaves); ok {
			entProbs = append(entProbs, p)
		}
	}
	if nHashBad > 1 {
		hashProbs = append(hashProbs, Problem{KindHash, fileHashes, -1, -1, fmt.Sprintf("%d more stored hashes do not match the entries", nHashBad-1)})
	}

	// Checkpoints that cover more entries than the file holds.
	if maxCP > res.entries {
		if torn != nil {
			p := *torn
			p.Kind = KindTruncated
			p.Detail += ", inside entries a checkpoint covers"
			if p.Detail == "CRC mismatch in the last record (torn write)" {
				p.Kind, p.Detail = KindCRC, "CRC mismatch"
			}
			entProbs = append(entProbs, p)
			torn = nil
		}
		for _, c := range res.cps {
			if c.cp.Size > res.entries {
				entProbs = append(entProbs, Problem{KindTruncated, fileEntries, -1, -1, fmt.Sprintf(
					"checkpoint %d of size %d but only %d entries (the file ends at offset %d)", c.seq, c.cp.Size, res.entries, sizes[fileEntries])})
				break
			}
		}
	}
	if torn != nil {
		res.recoverable = append(res.recoverable, *torn)
	}

	// Hash slots beyond or short of the entries.
	expected := res.expectedSlots()
	switch {
	case res.fileSlots > expected:
		res.recoverable = append(res.recoverable, Problem{KindTorn, fileHashes, expected, hdrSize + expected*tlog.HashSize,
			fmt.Sprintf("%d hash slots beyond the %d entries (an append whose entries were not written)", res.fileSlots-expected, res.entries)})
	case res.fileSlots < expected:
		need := tlog.StoredHashCount(min(maxCP, res.entries))
		if res.fileSlots < need {
			hashProbs = append(hashProbs, Problem{KindTruncated, fileHashes, res.fileSlots, hdrSize + res.fileSlots*tlog.HashSize, fmt.Sprintf(
				"file ends at slot %d, but the checkpoint of size %d needs %d slots", res.fileSlots, min(maxCP, res.entries), need)})
		} else {
			detail := fmt.Sprintf("%d hash slots missing after a crash; recomputed from the entries", expected-res.fileSlots)
			if stale {
				detail = fmt.Sprintf("%d hash slots after the last checkpoint stale or missing after a crash (they are synced at checkpoints); recomputed from the entries", expected-res.fileSlots)
			}
			res.recoverable = append(res.recoverable, Problem{KindTorn, fileHashes, res.fileSlots, hdrSize + res.fileSlots*tlog.HashSize, detail})
		}
	}
	return entProbs, hashProbs, rootProbs, nil
}

// classifyIndexMismatches turns the records whose index field differs
// from their position into one problem naming the pattern: reordered
// (the misplaced indexes are a permutation of their positions), deleted
// (every record carries a later index) or duplicated/inserted.
func classifyIndexMismatches(ms []idxMismatch, total int64) Problem {
	first := ms[0]
	p := Problem{KindIndex, fileEntries, first.pos, first.off, ""}
	if int64(len(ms)) == total {
		at := make(map[int64]int64, len(ms))
		for _, m := range ms {
			at[m.got] = m.pos
		}
		perm := true
		for _, m := range ms {
			if _, ok := at[m.pos]; !ok {
				perm = false
				break
			}
		}
		if perm {
			p.Kind = KindReordered
			p.Detail = fmt.Sprintf("holds record %d: records reordered (record %d is at position %d)", first.got, first.pos, at[first.pos])
			return p
		}
	}
	later, earlier := true, true
	for _, m := range ms {
		later = later && m.got > m.pos
		earlier = earlier && m.got < m.pos
	}
	switch {
	case later:
		p.Kind = KindDeleted
		p.Detail = fmt.Sprintf("holds record %d: %d record(s) deleted before it", first.got, first.got-first.pos)
	case earlier:
		p.Detail = fmt.Sprintf("holds record %d again: record duplicated or inserted", first.got)
	default:
		p.Detail = fmt.Sprintf("holds record %d, want %d (%d records out of place)", first.got, first.pos, total)
	}
	return p
}

// findMovedLeaf looks for entries whose content matches the stored leaf
// hash of another position: records reordered with renumbered framing.
func findMovedLeaf(hf, ef *os.File, hdrSize, fileSlots int64, badLeaves []idxMismatch) (Problem, bool) {
	stored := map[tlog.Hash]int64{}
	buf := make([]byte, tlog.HashSize)
	for n := int64(0); ; n++ {
		s := tlog.StoredHashIndex(0, n)
		if s >= fileSlots {
			break
		}
		if _, err := hf.ReadAt(buf, hdrSize+s*tlog.HashSize); err != nil {
			return Problem{}, false
		}
		stored[tlog.Hash(buf)] = n
	}
	// Recompute the leaf hashes of the bad positions.
	hdr := make([]byte, recordHeaderSize)
	for _, b := range badLeaves {
		if _, err := ef.ReadAt(hdr, b.off); err != nil {
			return Problem{}, false
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[8:12]))
		if _, err := ef.ReadAt(data, b.off+recordHeaderSize); err != nil {
			return Problem{}, false
		}
		if n, ok := stored[tlog.RecordHash(data)]; ok && n != b.pos {
			return Problem{KindReordered, fileEntries, b.pos, b.off, fmt.Sprintf(
				"content is that of record %d: records reordered and renumbered", n)}, true
		}
	}
	return Problem{}, false
}
