package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/pause"
	"taxlink/internal/sqlitedb"
	"taxlink/internal/wake"
)

// FileName is the name of the file that holds the queue entries of a hub
// running alone (Options.File, InDataDir).
const FileName = "queue.db"

const (
	fileMode          = fs.FileMode(0o600)
	fileSchemaVersion = 1
	fileAppID         = 0x74787175 // "txqu": tells this file from taxlink's other SQLite files
	// AUTOINCREMENT: a sequence is never given twice, so a delivery loop's
	// cursor never skips an entry stored after a higher one was removed.
	fileSchema = `
CREATE TABLE entries (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	recipient TEXT NOT NULL,            -- the recipient's subject token (Token)
	id        TEXT NOT NULL,            -- envelope ID
	stored    INTEGER NOT NULL,         -- when it was queued, Unix nanoseconds
	data      BLOB NOT NULL,            -- the wire envelope, or its preamble when ref is set
	ref       TEXT NOT NULL DEFAULT '', -- the blob holding the ciphertext, or ''
	UNIQUE (recipient, id)
);
CREATE INDEX entries_by_recipient ON entries (recipient, seq);
`
	sqlFileInsert = "INSERT INTO entries (recipient, id, stored, data, ref) VALUES (?, ?, ?, ?, ?) ON CONFLICT (recipient, id) DO NOTHING"
	sqlFileSeqOf  = "SELECT seq FROM entries WHERE recipient = ? AND id = ?"
	sqlFileDelete = "DELETE FROM entries WHERE seq = ?"
	sqlFilePage   = "SELECT seq, id, data, ref FROM entries WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?"
	sqlFileOldest = "SELECT stored FROM entries WHERE recipient = ? ORDER BY seq LIMIT 1"
	sqlFileRefs   = "SELECT ref FROM entries WHERE recipient = ? AND ref != ''"
	sqlFileCounts = "SELECT recipient, count(*) FROM entries GROUP BY recipient"
)

// fileEntries keeps the queue entries of a hub running alone in a SQLite
// file: every entry and every removal is committed (write-ahead log,
// synchronous=FULL) before Enqueue or the acknowledgement of a delivery
// returns, and those that arrive together share one commit. JetStream's
// work queues synced each entry and each acknowledgement on its own.
//
// One process uses the file, so what a consumer needs besides the file is
// in memory: the number of entries per recipient, and a channel per
// recipient that the next commit of an entry for it closes.
type fileEntries struct {
	db     *sql.DB
	w      *sqlitedb.Writer
	stmts  map[string]*sql.Stmt // prepared once: parsing per call costs more than the work
	log    *slog.Logger
	closed atomic.Bool

	mu     sync.Mutex
	counts map[string]uint64 // entries per recipient token, kept with every commit
	// waiting is woken, per recipient token, by the commits of its entries.
	waiting wake.Keyed

	// removed counts removals since the last look at the free pages;
	// vacuuming is set while a vacuum runs. minFree, step and every are
	// vacuumMinFree, vacuumStep and vacuumEvery (smaller in tests).
	removed              atomic.Int64
	vacuuming            atomic.Bool
	minFree, step, every int64
}

const (
	// vacuumMinFree is the free space, in pages, from which the file gives
	// space back (64 MiB of 4 KiB pages, and a quarter of the file): what
	// a drained backlog freed, not the steady state, whose freed pages the
	// next entries reuse.
	vacuumMinFree = 16384
	// vacuumStep is how many pages one write gives back (16 MiB): the
	// writers wait for one step, not for the whole file.
	vacuumStep = 4096
	// vacuumEvery is how many removals pass between two looks at the free
	// pages: a drain of 1,000 entries frees about 7 MB.
	vacuumEvery = 1000
)

// openFile opens, creating it if needed (mode 0600), the entries file at
// path and counts what it holds.
func openFile(ctx context.Context, path string, log *slog.Logger) (*fileEntries, error) {
	// Incremental auto-vacuum (2), set before the file's first table:
	// the file can give back what a drained backlog freed.
	db, w, abs, err := sqlitedb.OpenFile(path, sqlitedb.Options{Pragmas: []string{"auto_vacuum(2)"}}, sqlitedb.File{
		AppID: fileAppID, Version: fileSchemaVersion, Schema: fileSchema, Kind: "hub queue", Mode: fileMode,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	f := &fileEntries{db: db, w: w, stmts: map[string]*sql.Stmt{}, log: log,
		counts: map[string]uint64{}, minFree: vacuumMinFree, step: vacuumStep, every: vacuumEvery}
	for _, q := range []string{sqlFileInsert, sqlFileSeqOf, sqlFileDelete, sqlFilePage, sqlFileOldest, sqlFileRefs} {
		st, err := db.Prepare(q)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("queue: opening %s: %w", abs, err)
		}
		f.stmts[q] = st
	}
	if err := f.count(ctx); err != nil {
		f.close()
		return nil, fmt.Errorf("queue: opening %s: %w", abs, err)
	}
	return f, nil
}

// refuseQueuedFile fails if the entries file at path holds entries: a hub
// that ran alone must deliver them before it becomes a replica of a
// cluster, whose queues are in JetStream and never read the file.
func refuseQueuedFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	f, err := openFile(ctx, path, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer f.close()
	if n := f.sum(); n > 0 {
		return fmt.Errorf("queue: %s holds %d envelopes queued while this hub ran alone: a replica of a cluster does not deliver them; run the hub alone until its queue is empty (taxlink_hub_backlog), then join the cluster", path, n)
	}
	return nil
}

// count reads the number of entries per recipient.
func (f *fileEntries) count(ctx context.Context) error {
	rows, err := f.db.QueryContext(ctx, sqlFileCounts)
	if err != nil {
		return fmt.Errorf("count entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tok string
		var n uint64
		if err := rows.Scan(&tok, &n); err != nil {
			return fmt.Errorf("count entries: %w", err)
		}
		f.counts[tok] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count entries: %w", err)
	}
	return nil
}

// put stores one entry for the recipient whose token is tok, or finds the
// entry of the same ID still queued for it (dup).
func (f *fileEntries) put(ctx context.Context, tok, id string, stored time.Time, data []byte, ref string) (seq uint64, dup bool, err error) {
	if f.closed.Load() {
		return 0, false, errors.New("queue: closed")
	}
	err = f.w.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, f.stmts[sqlFileInsert]).ExecContext(ctx, tok, id, stored.UnixNano(), data, ref)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			last, lerr := res.LastInsertId()
			seq = uint64(last)
			return errors.Join(err, lerr)
		}
		dup = true
		var s int64
		err = tx.StmtContext(ctx, f.stmts[sqlFileSeqOf]).QueryRowContext(ctx, tok, id).Scan(&s)
		seq = uint64(s)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("queue: enqueue: %w", err)
	}
	if !dup {
		f.mu.Lock()
		f.counts[tok]++
		f.mu.Unlock()
		f.waiting.Wake(tok)
	}
	return seq, dup, nil
}

// remove removes a delivered entry.
func (f *fileEntries) remove(ctx context.Context, tok string, seq uint64) error {
	if f.closed.Load() {
		return errors.New("queue: closed")
	}
	var n int64
	err := f.w.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, f.stmts[sqlFileDelete]).ExecContext(ctx, int64(seq))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("queue: remove entry %d: %w", seq, err)
	}
	if n == 1 {
		f.mu.Lock()
		if f.counts[tok]--; f.counts[tok] == 0 {
			delete(f.counts, tok)
		}
		f.mu.Unlock()
		if f.removed.Add(1) >= f.every {
			f.vacuum()
		}
	}
	return nil
}

// vacuum starts, unless one runs, giving back to the file system the free
// pages beyond minFree and a quarter of the file, one step per write, so
// that the writers between two steps go on. A step that fails is left to
// the next look.
func (f *fileEntries) vacuum() {
	if !f.vacuuming.CompareAndSwap(false, true) {
		return
	}
	f.removed.Store(0)
	go func() {
		defer f.vacuuming.Store(false)
		ctx := context.Background()
		for !f.closed.Load() {
			var free, pages int64
			if err := f.db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
				return
			}
			if err := f.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
				return
			}
			if free < f.minFree || 4*free < pages {
				return
			}
			err := f.w.Tx(ctx, func(tx *sql.Tx) error {
				// PRAGMA takes no parameters; step is an integer.
				_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", f.step))
				return err
			})
			if err != nil {
				if !f.closed.Load() {
					f.log.Warn("giving the queue file's free pages back failed", "err", err)
				}
				return
			}
		}
	}()
}

// page returns up to limit entries for tok after sequence after, oldest
// first.
func (f *fileEntries) page(ctx context.Context, q *Queue, tok string, after uint64, limit int) ([]*Item, error) {
	if f.closed.Load() {
		return nil, errors.New("queue: closed")
	}
	rows, err := f.stmts[sqlFilePage].QueryContext(ctx, tok, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("queue: read entries: %w", err)
	}
	defer rows.Close()
	var out []*Item
	for rows.Next() {
		it := &Item{q: q}
		var seq int64
		if err := rows.Scan(&seq, &it.ID, &it.data, &it.ref); err != nil {
			return nil, fmt.Errorf("queue: read entries: %w", err)
		}
		it.Seq = uint64(seq)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: read entries: %w", err)
	}
	return out, nil
}

// consume is Consume for a hub alone: entries are handed out in sequence
// from a cursor that starts at the oldest, so what an earlier loop held
// and did not finish (ctx ended) is handed out again; a handled entry is
// removed, then its blob.
func (f *fileEntries) consume(ctx context.Context, q *Queue, tok string, parallel int, idle time.Duration, h Handler) error {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	var after uint64
	for ctx.Err() == nil {
		// The channel is taken before the read: a commit between the two
		// closes it, and the loop reads again.
		woken := f.waiting.Chan(tok)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		free := 1
		for free < parallel && len(sem) < cap(sem) {
			sem <- struct{}{}
			free++
		}
		items, err := f.page(ctx, q, tok, after, free)
		for range free - len(items) {
			<-sem
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.Warn("reading the queue failed", "err", err)
			pause.For(ctx, time.Second)
			continue
		}
		for _, it := range items {
			after = it.Seq
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if h(ctx, it) != nil {
					return // ctx ended: handed out again by the next loop
				}
				// Past the cursor, an entry left in the file would wait for
				// the next loop: try again (a full disk) while the loop runs.
				for {
					err := f.remove(context.WithoutCancel(ctx), tok, it.Seq)
					if err == nil {
						break
					}
					f.log.Warn("removing a delivered entry failed; trying again", "id", it.ID, "err", err)
					if f.closed.Load() || !pause.For(ctx, time.Second) {
						return // the next loop delivers it again, deduplicated
					}
				}
				q.removeBlob(ctx, it)
			}()
		}
		if len(items) == free {
			continue // perhaps more
		}
		// Every entry committed before the read was in it: the next one's
		// commit closes woken.
		if err := f.wait(ctx, woken, idle, sem); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// wait waits for woken or ctx; with idle > 0 it returns ErrIdle once idle
// passed with nothing in hand (sem empty).
func (f *fileEntries) wait(ctx context.Context, woken <-chan struct{}, idle time.Duration, sem chan struct{}) error {
	if idle <= 0 {
		select {
		case <-woken:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-woken:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if len(sem) == 0 {
				return ErrIdle
			}
			t.Reset(idle) // deliveries in hand: not idle yet
		}
	}
}

// backlog returns the number of entries queued for tok.
func (f *fileEntries) backlog(tok string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[tok]
}

// backlogs returns the number of entries per recipient token with any.
func (f *fileEntries) backlogs() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.counts))
	for tok, n := range f.counts {
		out[tok] = n
	}
	return out
}

// sum returns the number of entries queued.
func (f *fileEntries) sum() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, c := range f.counts {
		n += c
	}
	return n
}

// oldest returns when the oldest entry for tok was queued.
func (f *fileEntries) oldest(ctx context.Context, tok string) (time.Time, bool, error) {
	var ns int64
	err := f.stmts[sqlFileOldest].QueryRowContext(ctx, tok).Scan(&ns)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("queue: oldest entry: %w", err)
	}
	return time.Unix(0, ns), true, nil
}

// refs returns the blob references of the entries queued for tok.
func (f *fileEntries) refs(ctx context.Context, tok string) ([]string, error) {
	rows, err := f.stmts[sqlFileRefs].QueryContext(ctx, tok)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, rows.Err()
}

// close closes the file after the pending writes.
func (f *fileEntries) close() {
	if !f.closed.CompareAndSwap(false, true) {
		return
	}
	for _, st := range f.stmts {
		st.Close()
	}
	if err := f.db.Close(); err != nil {
		f.log.Warn("closing the queue file failed", "err", err)
	}
}

// movedEntry is an entry of an earlier version's work-queue streams.
type movedEntry struct {
	tok, id string
	stored  time.Time
	data    []byte
	ref     string
}

// importEntries stores es in one commit, in their order, skipping those
// queued already (a move a crash interrupted, done again).
func (f *fileEntries) importEntries(ctx context.Context, es []movedEntry) error {
	var added []string
	err := f.w.Tx(ctx, func(tx *sql.Tx) error {
		added = added[:0]
		ins := tx.StmtContext(ctx, f.stmts[sqlFileInsert])
		for _, e := range es {
			res, err := ins.ExecContext(ctx, e.tok, e.id, e.stored.UnixNano(), e.data, e.ref)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				added = append(added, e.tok)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: import %d entries: %w", len(es), err)
	}
	f.mu.Lock()
	for _, tok := range added {
		f.counts[tok]++
	}
	f.mu.Unlock()
	return nil
}

// moveShards moves what an earlier version of a hub alone queued in
// JetStream's work-queue streams into the file, in order and with the
// times they were queued, then deletes the streams. A move a crash cut
// short is done again at the next start: the entries already in the file
// are skipped.
func (q *Queue) moveShards(ctx context.Context) error {
	moved := 0
	for n := range queueShards {
		name, _ := shard(n)
		s, err := q.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("queue: look for stream %s: %w", name, err)
		}
		k, err := q.moveShard(ctx, s)
		moved += k
		if err != nil {
			return fmt.Errorf("queue: move stream %s into %s: %w", name, q.opts.File, err)
		}
		if err := q.js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("queue: delete stream %s after moving it: %w", name, err)
		}
	}
	if moved > 0 {
		q.log.Info("moved the queue from JetStream into its file", "entries", moved, "file", q.opts.File)
	}
	return nil
}

// moveShard copies every entry of the work-queue stream s into the file.
func (q *Queue) moveShard(ctx context.Context, s jetstream.Stream) (int, error) {
	want := s.CachedInfo().State.Msgs
	if want == 0 {
		return 0, nil
	}
	// A work queue takes one consumer per subject: the delivery consumers
	// of the earlier version go first.
	for name := range s.ConsumerNames(ctx).Name() {
		if err := s.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, err
		}
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, err
	}
	moved := 0
	for uint64(moved) < want {
		// No more than are left: Fetch waits to fill what it asks for.
		batch, err := c.Fetch(int(min(want-uint64(moved), moveBatch)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return moved, err
		}
		var es []movedEntry
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return moved, err
			}
			subj := m.Subject()
			es = append(es, movedEntry{tok: subj[strings.LastIndexByte(subj, '.')+1:], id: m.Headers().Get(jetstream.MsgIDHeader),
				stored: md.Timestamp, data: m.Data(), ref: m.Headers().Get(blobHeader)})
		}
		if err := batch.Error(); err != nil {
			return moved, err
		}
		if len(es) == 0 {
			return moved, fmt.Errorf("%d of %d entries read", moved, want)
		}
		if err := q.file.importEntries(ctx, es); err != nil {
			return moved, err
		}
		moved += len(es)
	}
	return moved, nil
}
