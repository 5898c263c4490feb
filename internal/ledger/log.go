package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"taxlink/internal/fsutil"
)

// Options configures Open.
type Options struct {
	// Origin is the checkpoint origin line, e.g.
	// "taxlink.dev/hub:kiko/ledger": 1..255 printable ASCII bytes without
	// spaces. A directory created with one origin never opens with another.
	Origin string
	// Signer signs checkpoints. A nil Signer opens the log read-only:
	// nothing on disk is modified (not even a torn tail), and Append and
	// Checkpoint return ErrReadOnly.
	Signer note.Signer
	// Verifier verifies the stored checkpoints at Open. It is required,
	// and must be the Signer's key when a Signer is given.
	Verifier note.Verifier
	// Now is the clock. The ledger stores no times itself; layers built
	// on it (the audit log) read it through Log.Now. Nil means time.Now.
	Now func() time.Time
	// NoSync skips fdatasync: an acknowledged append or checkpoint can be
	// lost, and the files left inconsistent, by a power failure or an OS
	// crash. It exists ONLY for benchmarks comparing the ledger with raw
	// storage; never set it for a real log.
	NoSync bool
}

// Log is an append-only Merkle log stored in a directory. It is safe for
// concurrent use. See the package documentation for the format and the
// guarantees.
type Log struct {
	dir      string
	hdr      fileHeader
	hdrSize  int64
	signer   note.Signer
	verifier note.Verifier
	now      func() time.Time
	noSync   bool
	writable bool

	ent, hsh, cpf, lockf *os.File

	reqs chan *request
	quit chan struct{} // closed by Close: the writer drains and exits
	done chan struct{} // closed when the writer has exited

	closeOnce sync.Once
	closeErr  error

	// Writer goroutine state.
	wSize    int64
	wEntEnd  int64
	wHashEnd int64
	fr       frontier
	ebuf     []byte
	hbuf     []byte

	// Syncer state.
	syncDone  chan struct{} // closed when the syncer has exited
	sm        sync.Mutex    // guards written, claimed, pending, stopping
	smCond    *sync.Cond
	written   int64           // groups written
	claimed   int64           // groups covered by a started sync
	pending   []*pendingBatch // written, not yet published, in order
	stopping  bool
	syncs     atomic.Int64 // fdatasync rounds, for tests and metrics
	hashSyncs atomic.Int64 // fdatasyncs of the hashes file (checkpoints, Close), for tests

	cpMu  sync.Mutex // serialises Checkpoint and Close; guards cpEnd
	cpEnd int64

	mu          sync.RWMutex // guards the fields below
	size        int64        // published (durable) entries
	entEnd      int64        // end of the published entries
	offsets     []int64      // record offsets of the published entries
	cps         []cpRef      // all checkpoints
	overlayBase int64        // read-only: first hash slot held in overlay
	overlay     []tlog.Hash  // read-only: hashes recomputed at Open, not on disk
	closed      bool
	failed      error
	recovered   []Problem
}

// request is one Append or AppendBatch call handed to the writer.
type request struct {
	entries [][]byte
	leaves  []tlog.Hash
	first   int64
	err     error
	done    chan struct{}
}

// Batching limits of the writer: one write per file for up to this many
// entries or bytes.
const (
	maxGroupEntries = 8192
	maxGroupBytes   = 8 << 20
)

// Open opens the log in dir, creating it (and dir) if it does not exist
// and opts.Signer is set. It reads every record, rebuilds the tree,
// checks it against the stored hashes and every stored checkpoint
// (signature with opts.Verifier, origin, root), and repairs what a crash
// can leave behind: a torn tail in any file is trimmed, missing hash slots
// after the last checkpoint are recomputed, an interrupted head update is
// completed (see Recovered). A read-only Open repairs nothing on disk and
// serves the same view from memory. Anything else is refused with an
// error wrapping ErrCorrupt (and ErrForeign for a file or origin of
// another log) whose message names the file, record and byte offset; use
// Problems to list them all, or VerifyDir for a full report.
//
// A directory is opened for writing by one Log at a time (ErrLocked).
func Open(dir string, opts Options) (*Log, error) {
	return open(dir, opts, openMode{writable: opts.Signer != nil, create: opts.Signer != nil})
}

// openMode selects internal variants of Open.
type openMode struct {
	writable bool            // may append (a Backup target has no Signer but is writable)
	create   bool            // may create the directory
	logID    *[logIDLen]byte // when creating, use this log identity; when opening, require it
}

func open(dir string, opts Options, mode openMode) (_ *Log, err error) {
	if err := checkOrigin(opts.Origin); err != nil {
		return nil, fmt.Errorf("ledger: Options.Origin: %w", err)
	}
	if opts.Verifier == nil {
		return nil, errors.New("ledger: Options.Verifier is required")
	}
	if s := opts.Signer; s != nil && (s.Name() != opts.Verifier.Name() || s.KeyHash() != opts.Verifier.KeyHash()) {
		return nil, fmt.Errorf("ledger: Options.Signer is key %s+%08x but Options.Verifier is %s+%08x",
			s.Name(), s.KeyHash(), opts.Verifier.Name(), opts.Verifier.KeyHash())
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	l := &Log{
		dir:         dir,
		signer:      opts.Signer,
		verifier:    opts.Verifier,
		now:         now,
		noSync:      opts.NoSync,
		writable:    mode.writable,
		overlayBase: math.MaxInt64,
	}
	defer func() {
		if err != nil {
			l.closeFiles()
		}
	}()
	if mode.writable {
		if mode.create {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("ledger: %w", err)
			}
		}
		lf, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		l.lockf = lf
		if err := lockFile(lf); err != nil {
			return nil, fmt.Errorf("ledger: lock %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, fileHead)); errors.Is(err, fs.ErrNotExist) {
		if !mode.create {
			return nil, fmt.Errorf("ledger: %s is not a ledger directory (no %s file): %w", dir, fileHead, err)
		}
		if err := initDir(dir, opts.Origin, mode.logID); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}

	scan, err := scanDir(dir, scanOptions{
		verifiers:   note.VerifierList(opts.Verifier),
		keepOffsets: true,
		keepMissing: true,
	})
	if err != nil {
		return nil, err
	}
	if len(scan.problems) > 0 {
		return nil, &problemsError{problems: scan.problems}
	}
	if scan.hdr.origin != opts.Origin {
		return nil, &problemsError{problems: []Problem{{KindForeign, fileEntries, -1, 0,
			fmt.Sprintf("the directory holds the log of origin %q, but Options.Origin is %q", scan.hdr.origin, opts.Origin)}}}
	}
	if mode.logID != nil && scan.hdr.logID != *mode.logID {
		return nil, &problemsError{problems: []Problem{{KindForeign, fileEntries, -1, 0,
			fmt.Sprintf("the directory holds log %x, want log %x", scan.hdr.logID, *mode.logID)}}}
	}
	l.hdr = scan.hdr
	l.hdrSize = scan.hdr.size()
	l.recovered = scan.recoverable

	flag := os.O_RDONLY
	if mode.writable {
		flag = os.O_RDWR
	}
	for _, f := range []struct {
		name string
		dst  **os.File
	}{{fileEntries, &l.ent}, {fileHashes, &l.hsh}, {fileCheckpoints, &l.cpf}} {
		*f.dst, err = os.OpenFile(filepath.Join(dir, f.name), flag, 0)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}

	expected := scan.expectedSlots()
	keep := min(scan.fileSlots, expected)
	if mode.writable {
		if err := l.repair(scan, keep); err != nil {
			return nil, err
		}
	} else if keep < expected {
		l.overlayBase = keep
		l.overlay = scan.missing
	}

	l.size = scan.entries
	l.entEnd = scan.entEnd
	l.offsets = scan.offsets
	l.cps = scan.cps
	l.cpEnd = scan.cpEnd
	l.fr = scan.fr
	l.wSize = scan.entries
	l.wEntEnd = scan.entEnd
	l.wHashEnd = l.hdrSize + expected*tlog.HashSize
	l.quit = make(chan struct{})
	l.done = make(chan struct{})
	if mode.writable {
		l.smCond = sync.NewCond(&l.sm)
		l.reqs = make(chan *request, 4096)
		go l.run()
	} else {
		close(l.done)
	}
	return l, nil
}

// initDir creates the four files of an empty log: headers first, the head
// last, so that a directory without a head is known to hold no records.
func initDir(dir, origin string, id *[logIDLen]byte) error {
	hdr := fileHeader{origin: origin}
	if id != nil {
		hdr.logID = *id
	} else if _, err := rand.Read(hdr.logID[:]); err != nil {
		return fmt.Errorf("ledger: log id: %w", err)
	}
	for _, name := range []string{fileEntries, fileHashes, fileCheckpoints} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Size() > hdr.size() {
			return &problemsError{problems: []Problem{{KindMissing, fileHead, -1, -1,
				fmt.Sprintf("file missing while %s holds %d bytes", name, fi.Size())}}}
		}
		h := hdr
		h.kind = name
		if err := fsutil.WriteFileAtomic(path, h.marshal(), 0o600); err != nil {
			return fmt.Errorf("ledger: create %s: %w", name, err)
		}
	}
	h := hdr
	h.kind = fileHead
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, fileHead), append(h.marshal(), headBody{}.marshal()...), 0o600); err != nil {
		return fmt.Errorf("ledger: create %s: %w", fileHead, err)
	}
	return nil
}

// repair applies the crash recovery found by scanDir: it trims torn
// tails, writes recomputed hash slots and completes an interrupted head
// update, then syncs what it changed.
func (l *Log) repair(scan *scanResult, keepSlots int64) error {
	var touched []*os.File
	trim := func(f *os.File, size int64) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() != size {
			if err := f.Truncate(size); err != nil {
				return err
			}
			touched = append(touched, f)
		}
		return nil
	}
	if err := trim(l.ent, scan.entEnd); err != nil {
		return fmt.Errorf("ledger: repair entries: %w", err)
	}
	if err := trim(l.hsh, l.hdrSize+keepSlots*tlog.HashSize); err != nil {
		return fmt.Errorf("ledger: repair hashes: %w", err)
	}
	if len(scan.missing) > 0 {
		buf := make([]byte, 0, len(scan.missing)*tlog.HashSize)
		for _, h := range scan.missing {
			buf = append(buf, h[:]...)
		}
		if _, err := l.hsh.WriteAt(buf, l.hdrSize+keepSlots*tlog.HashSize); err != nil {
			return fmt.Errorf("ledger: repair hashes: %w", err)
		}
		touched = append(touched, l.hsh)
	}
	if err := trim(l.cpf, scan.cpEnd); err != nil {
		return fmt.Errorf("ledger: repair checkpoints: %w", err)
	}
	for _, f := range touched {
		if err := datasync(f); err != nil {
			return fmt.Errorf("ledger: repair: %w", err)
		}
	}
	if scan.head.count != scan.cpRecords {
		var last [32]byte
		if n := len(scan.cps); n > 0 {
			last = sha256.Sum256(scan.cps[n-1].cp.Note)
		}
		if err := l.writeHead(headBody{count: scan.cpRecords, last: last}); err != nil {
			return fmt.Errorf("ledger: repair head: %w", err)
		}
	}
	// Leftovers of an interrupted head update.
	if tmps, _ := filepath.Glob(filepath.Join(l.dir, "."+fileHead+".tmp*")); len(tmps) > 0 {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	return nil
}

// writeHead atomically replaces the head file.
func (l *Log) writeHead(b headBody) error {
	h := l.hdr
	h.kind = fileHead
	return fsutil.WriteFileAtomic(filepath.Join(l.dir, fileHead), append(h.marshal(), b.marshal()...), 0o600)
}

// Dir returns the directory of the log.
func (l *Log) Dir() string { return l.dir }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.hdr.origin }

// Now returns the current time from the clock in Options.Now.
func (l *Log) Now() time.Time { return l.now() }

// Recovered returns what Open repaired after a crash (torn tails trimmed,
// hash slots recomputed, an interrupted head update completed), or
// nothing after a clean shutdown. A read-only Log reports what it would
// have repaired.
func (l *Log) Recovered() []Problem {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Problem(nil), l.recovered...)
}

// Size returns the number of durable entries.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Latest returns the latest checkpoint, or the zero Checkpoint if none
// was ever made.
func (l *Log) Latest() Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.cps) == 0 {
		return Checkpoint{}
	}
	return l.cps[len(l.cps)-1].cp
}

// Append appends data as one entry and returns its index once it is
// durable (written and fdatasync'd). Concurrent calls are committed
// together with one write and one fdatasync per file (group commit).
// If ctx is done before the entry is handed to the writer, Append returns
// ctx.Err() and nothing is appended; once handed over, Append waits for
// the outcome of that commit. Errors: ErrTooLarge (more than MaxEntrySize
// bytes), ErrReadOnly, ErrClosed, or ErrFailed after a write or sync
// error: the log then refuses all writes until it is reopened, and an
// append answered with ErrFailed may or may not be present afterwards.
func (l *Log) Append(ctx context.Context, data []byte) (int64, error) {
	return l.AppendBatch(ctx, [][]byte{data})
}

// AppendBatch appends entries as consecutive entries, atomically with
// respect to other appends (all durable, or none acknowledged), and
// returns the index of the first. It follows Append's contract; a batch
// holds 1..MaxBatchEntries entries. The entries must not be modified
// until AppendBatch returns.
func (l *Log) AppendBatch(ctx context.Context, entries [][]byte) (int64, error) {
	if len(entries) == 0 {
		return 0, fmt.Errorf("%w: empty batch", ErrRange)
	}
	if len(entries) > MaxBatchEntries {
		return 0, fmt.Errorf("%w: batch of %d entries exceeds %d", ErrTooLarge, len(entries), MaxBatchEntries)
	}
	if !l.writable {
		return 0, fmt.Errorf("%w: append to a log opened without a Signer", ErrReadOnly)
	}
	r := &request{entries: entries, leaves: make([]tlog.Hash, len(entries)), done: make(chan struct{})}
	for i, e := range entries {
		if len(e) > MaxEntrySize {
			return 0, fmt.Errorf("%w: entry %d of the batch is %d bytes, limit %d", ErrTooLarge, i, len(e), MaxEntrySize)
		}
		r.leaves[i] = tlog.RecordHash(e)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.quit:
		return 0, ErrClosed
	}
	select {
	case <-r.done:
	case <-l.done:
		select {
		case <-r.done:
		default:
			return 0, ErrClosed
		}
	}
	return r.first, r.err
}

// run is the writer goroutine: it takes the first waiting request,
// gathers whatever else is waiting, writes them all with one write per
// file, and hands them to the syncer. It never waits for a sync, so the
// next group is written while the previous one is being synced.
func (l *Log) run() {
	defer close(l.done)
	l.syncDone = make(chan struct{})
	go l.syncer()
	defer func() {
		l.sm.Lock()
		l.stopping = true
		l.sm.Unlock()
		l.smCond.Broadcast()
		<-l.syncDone
	}()
	var batch []*request
	for {
		select {
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		case <-l.quit:
			// Write what was handed over before Close, then exit.
			for {
				select {
				case r := <-l.reqs:
					l.write([]*request{r})
				default:
					return
				}
			}
		}
		n, size := len(batch[0].entries), 0
		for _, e := range batch[0].entries {
			size += len(e)
		}
	gather:
		for n < maxGroupEntries && size < maxGroupBytes {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
				n += len(r.entries)
				for _, e := range r.entries {
					size += len(e)
				}
			default:
				break gather
			}
		}
		l.write(batch)
		clear(batch)
	}
}

// pendingBatch is a group written to the files but not yet durable.
type pendingBatch struct {
	seq     int64 // order of writing
	reqs    []*request
	offsets []int64 // record offsets of its entries
	size    int64   // log size once it is published
	entEnd  int64   // end of the entries once it is published
}

// answer completes the requests of a batch.
func (pb *pendingBatch) answer(err error) {
	for _, r := range pb.reqs {
		r.err = err
		close(r.done)
	}
}

// write encodes a group of requests, writes its records and hashes (page
// cache only) and queues it for the syncers.
func (l *Log) write(batch []*request) {
	pb := &pendingBatch{reqs: slices.Clone(batch)}
	l.mu.RLock()
	failed := l.failed
	l.mu.RUnlock()
	if failed != nil {
		pb.answer(failed)
		return
	}
	eb, hb := l.ebuf[:0], l.hbuf[:0]
	n, off := l.wSize, l.wEntEnd
	var hs []tlog.Hash
	for _, r := range batch {
		r.first = n
		for i, e := range r.entries {
			pb.offsets = append(pb.offsets, off)
			eb = appendRecord(eb, n, e)
			off += recordHeaderSize + int64(len(e))
			hs = l.fr.add(r.leaves[i], hs[:0])
			for _, h := range hs {
				hb = append(hb, h[:]...)
			}
			n++
		}
	}
	if cap(eb) <= maxGroupBytes*2 {
		l.ebuf, l.hbuf = eb, hb
	}
	if _, err := l.ent.WriteAt(eb, l.wEntEnd); err != nil {
		l.writeFailed(pb, err, n)
		return
	}
	if _, err := l.hsh.WriteAt(hb, l.wHashEnd); err != nil {
		l.writeFailed(pb, err, n)
		return
	}
	l.wSize, l.wEntEnd = n, off
	l.wHashEnd += int64(len(hb))
	pb.size, pb.entEnd = n, off
	l.sm.Lock()
	pb.seq = l.written
	l.written++
	l.pending = append(l.pending, pb)
	l.sm.Unlock()
	l.smCond.Signal()
}

// writeFailed fails the log after a write error and answers the batch.
func (l *Log) writeFailed(pb *pendingBatch, err error, n int64) {
	err = fmt.Errorf("%w: write of entries %d..%d: %w", ErrFailed, l.wSize, n-1, err)
	l.fail(err)
	pb.answer(err)
}

// syncer is the sync goroutine: it repeatedly fdatasyncs the entries file
// and then publishes and answers every group written before that sync
// started. Groups written during a sync wait for the next one, so one sync
// covers everything that arrived while the previous one ran (group
// commit). There is a single syncer of entries: every writeback error is
// reported to it, so a successful sync really covers all earlier writes.
//
// The hashes file is not synced here: its slots are recomputable from the
// entries, so Checkpoint syncs it before signing (and Close before
// closing), and Open recomputes the slots after the last checkpoint that a
// crash lost or left stale. At a few entries per group this halves the
// syncs an append waits behind.
func (l *Log) syncer() {
	defer close(l.syncDone)
	for {
		l.sm.Lock()
		for l.claimed == l.written && !l.stopping {
			l.smCond.Wait()
		}
		if l.claimed == l.written {
			l.sm.Unlock()
			return
		}
		target := l.written
		l.claimed = target
		l.sm.Unlock()

		var err error
		if !l.noSync {
			err = datasync(l.ent)
		}
		l.syncs.Add(1)

		l.sm.Lock()
		if err != nil {
			err = fmt.Errorf("%w: sync: %w", ErrFailed, err)
			l.fail(err)
		}
		l.mu.RLock()
		failed := l.failed
		l.mu.RUnlock()
		var done []*pendingBatch
		for len(l.pending) > 0 && l.pending[0].seq < target {
			done = append(done, l.pending[0])
			l.pending = l.pending[1:]
		}
		if failed == nil && len(done) > 0 {
			last := done[len(done)-1]
			l.mu.Lock()
			for _, pb := range done {
				l.offsets = append(l.offsets, pb.offsets...)
			}
			l.size, l.entEnd = last.size, last.entEnd
			l.mu.Unlock()
		}
		for _, pb := range done {
			pb.answer(failed)
		}
		l.sm.Unlock()
	}
}

// fail records the first write failure: the log refuses writes from now on.
func (l *Log) fail(err error) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.mu.Unlock()
}

// Checkpoint signs the current tree head, appends it durably to the
// checkpoints file, updates the head, and returns it. If no entry was
// appended since the latest checkpoint it returns that one unchanged
// (the first call on an empty log signs the empty tree). A write or sync
// error makes the log fail (ErrFailed).
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	if l.signer == nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of a log opened without a Signer", ErrReadOnly)
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.RLock()
	if l.closed || l.failed != nil {
		err := l.failed
		if l.closed {
			err = ErrClosed
		}
		l.mu.RUnlock()
		return Checkpoint{}, err
	}
	n := l.size
	seq := int64(len(l.cps))
	if seq > 0 && l.cps[seq-1].cp.Size == n {
		cp := l.cps[seq-1].cp
		l.mu.RUnlock()
		return cp, nil
	}
	l.mu.RUnlock()
	// The hash slots of the n entries were written before the entries were
	// published (Log.write), so this sync covers them: what the signature
	// vouches for is durable before it exists.
	if !l.noSync {
		l.hashSyncs.Add(1)
		if err := datasync(l.hsh); err != nil {
			err = fmt.Errorf("%w: sync hashes before checkpoint %d: %w", ErrFailed, seq, err)
			l.fail(err)
			return Checkpoint{}, err
		}
	}
	l.mu.RLock()
	root, err := tlog.TreeHash(n, tlog.HashReaderFunc(l.readHashes))
	l.mu.RUnlock()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: tree hash of size %d: %w", n, err)
	}
	cp, err := signCheckpoint(l.hdr.origin, n, root, l.signer)
	if err != nil {
		return Checkpoint{}, err
	}
	rec := appendRecord(nil, seq, cp.Note)
	if _, err := l.cpf.WriteAt(rec, l.cpEnd); err != nil {
		err = fmt.Errorf("%w: write checkpoint %d: %w", ErrFailed, seq, err)
		l.fail(err)
		return Checkpoint{}, err
	}
	if !l.noSync {
		if err := datasync(l.cpf); err != nil {
			err = fmt.Errorf("%w: sync checkpoint %d: %w", ErrFailed, seq, err)
			l.fail(err)
			return Checkpoint{}, err
		}
	}
	if err := l.writeHead(headBody{count: seq + 1, last: sha256.Sum256(cp.Note)}); err != nil {
		err = fmt.Errorf("%w: head after checkpoint %d: %w", ErrFailed, seq, err)
		l.fail(err)
		return Checkpoint{}, err
	}
	l.mu.Lock()
	l.cps = append(l.cps, cpRef{seq: seq, offset: l.cpEnd, cp: cp})
	l.mu.Unlock()
	l.cpEnd += int64(len(rec))
	return cp, nil
}

// readHashes implements tlog.HashReader over the hashes file (and the
// overlay of a read-only log). The caller holds l.mu for reading.
func (l *Log) readHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i := 0; i < len(indexes); {
		idx := indexes[i]
		if idx < 0 {
			return nil, fmt.Errorf("ledger: hash slot %d out of range", idx)
		}
		if idx >= l.overlayBase {
			k := idx - l.overlayBase
			if k >= int64(len(l.overlay)) {
				return nil, fmt.Errorf("ledger: hash slot %d out of range", idx)
			}
			out[i] = l.overlay[k]
			i++
			continue
		}
		j := i + 1
		for j < len(indexes) && indexes[j] == indexes[j-1]+1 && indexes[j] < l.overlayBase {
			j++
		}
		buf := make([]byte, (j-i)*tlog.HashSize)
		if _, err := l.hsh.ReadAt(buf, l.hdrSize+idx*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("ledger: read hash slots %d..%d: %w", idx, idx+int64(j-i)-1, err)
		}
		for k := i; k < j; k++ {
			copy(out[k][:], buf[(k-i)*tlog.HashSize:])
		}
		i = j
	}
	return out, nil
}

// checkOpen returns ErrClosed after Close. The caller holds l.mu.
func (l *Log) checkOpen() error {
	if l.closed {
		return ErrClosed
	}
	return nil
}

// Entry returns a copy of the entry at index. The record's CRC is checked
// again: bytes changed on disk since Open give an error wrapping
// ErrCorrupt.
func (l *Log) Entry(index int64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if index < 0 || index >= l.size {
		return nil, fmt.Errorf("%w: entry %d of a log of size %d", ErrRange, index, l.size)
	}
	return l.readEntry(index)
}

// readEntry reads and checks one published record. The caller holds l.mu.
func (l *Log) readEntry(index int64) ([]byte, error) {
	off := l.offsets[index]
	end := l.entEnd
	if index+1 < l.size {
		end = l.offsets[index+1]
	}
	buf := make([]byte, end-off)
	if _, err := l.ent.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("ledger: entries record %d at offset %d: %w", index, off, err)
	}
	if len(buf) < recordHeaderSize ||
		int64(binary.BigEndian.Uint64(buf[0:8])) != index ||
		int64(binary.BigEndian.Uint32(buf[8:12])) != int64(len(buf)-recordHeaderSize) ||
		recordCRC(buf, buf[recordHeaderSize:]) != binary.BigEndian.Uint32(buf[12:16]) {
		return nil, &problemsError{problems: []Problem{{KindCRC, fileEntries, index, off, "CRC mismatch (changed on disk since Open)"}}}
	}
	return buf[recordHeaderSize:], nil
}

// TreeHash returns the RFC 6962 root of the first size entries.
func (l *Log) TreeHash(size int64) (tlog.Hash, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return tlog.Hash{}, err
	}
	if size < 0 || size > l.size {
		return tlog.Hash{}, fmt.Errorf("%w: tree size %d of a log of size %d", ErrRange, size, l.size)
	}
	return tlog.TreeHash(size, tlog.HashReaderFunc(l.readHashes))
}

// InclusionProof returns the proof that the entry at index is in the tree
// of the first treeSize entries (0 <= index < treeSize <= Size()), to be
// checked with VerifyInclusion or tlog.CheckRecord.
func (l *Log) InclusionProof(index, treeSize int64) (tlog.RecordProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if index < 0 || index >= treeSize || treeSize > l.size {
		return nil, fmt.Errorf("%w: inclusion of entry %d in tree size %d of a log of size %d", ErrRange, index, treeSize, l.size)
	}
	return tlog.ProveRecord(treeSize, index, tlog.HashReaderFunc(l.readHashes))
}

// ConsistencyProof returns the proof that the tree of the first oldSize
// entries is a prefix of the tree of the first newSize entries
// (0 <= oldSize <= newSize <= Size()), to be checked with
// VerifyConsistency or tlog.CheckTree. The proof from the empty tree, or
// between equal sizes, is empty.
func (l *Log) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if oldSize < 0 || oldSize > newSize || newSize > l.size {
		return nil, fmt.Errorf("%w: consistency of tree size %d with %d in a log of size %d", ErrRange, oldSize, newSize, l.size)
	}
	if oldSize == 0 || oldSize == newSize {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(newSize, oldSize, tlog.HashReaderFunc(l.readHashes))
}

// Bundle returns a proof bundle for the entry at index against the latest
// checkpoint, for offline verification with VerifyBundle. The entry must
// be covered by that checkpoint (ErrRange otherwise: make a Checkpoint
// first).
func (l *Log) Bundle(index int64) (Bundle, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkOpen(); err != nil {
		return Bundle{}, err
	}
	if len(l.cps) == 0 || index < 0 || index >= l.cps[len(l.cps)-1].cp.Size {
		var size int64
		if len(l.cps) > 0 {
			size = l.cps[len(l.cps)-1].cp.Size
		}
		return Bundle{}, fmt.Errorf("%w: entry %d not covered by the latest checkpoint (size %d)", ErrRange, index, size)
	}
	cp := l.cps[len(l.cps)-1].cp
	entry, err := l.readEntry(index)
	if err != nil {
		return Bundle{}, err
	}
	proof, err := tlog.ProveRecord(cp.Size, index, tlog.HashReaderFunc(l.readHashes))
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{Checkpoint: cp.Note, Index: index, Entry: entry, Proof: proof}, nil
}

// Close waits for appends already handed to the writer to commit, syncs
// the hash slots written since the last checkpoint, then closes the files.
// Later calls return ErrClosed; Close is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
		l.cpMu.Lock()
		l.mu.Lock()
		l.closed = true
		var serr error
		if l.writable && !l.noSync && l.failed == nil {
			l.hashSyncs.Add(1)
			if err := datasync(l.hsh); err != nil {
				serr = fmt.Errorf("ledger: sync hashes: %w", err)
			}
		}
		l.closeErr = errors.Join(serr, l.closeFiles())
		l.mu.Unlock()
		l.cpMu.Unlock()
	})
	return l.closeErr
}

// closeFiles closes whatever files are open.
func (l *Log) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{l.ent, l.hsh, l.cpf, l.lockf} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ledger: close: %w", err)
	}
	return nil
}
