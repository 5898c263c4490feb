package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/envelope"
	"taxlink/internal/fsutil"
	"taxlink/internal/store"
)

// DefaultMaxPending is the default DropConfig.MaxPending.
const DefaultMaxPending = 1000

// dropFrom is the audit From of the file drop, which has no remote peer.
const dropFrom = "local"

// DropConfig configures a [Drop]. Name, Tenant, Dir, Store, Open, Cursors
// and Audit are required.
type DropConfig struct {
	// Name identifies the drop (see [ValidateName]); the audit actor is
	// "export:"+Name and its cursors are "drop."+Name (acknowledged) and
	// "drop."+Name+".written" (handed over) in Cursors.
	Name string
	// Tenant is the tenant whose records are dropped.
	Tenant string
	// Dir is the existing directory the tax system collects from (for
	// example an SFTP chroot). The drop owns the names it writes there;
	// it ignores every other entry.
	Dir string
	// MaxPending bounds the records whose files are outstanding (written
	// and not yet taken away); 0 means DefaultMaxPending.
	MaxPending int
	// Store is the node's inbox the records are listed from.
	Store store.Inbox
	// Open opens a record's plaintext; it is called with the actor
	// "export:"+Name from "local".
	Open Opener
	// Cursors keeps the drop's positions.
	Cursors *Cursors
	// Audit records every record handed over and every acknowledgement.
	Audit *audit.Log
	// Logger receives operational messages (never payload or personal
	// data); nil discards them.
	Logger *slog.Logger
}

// Drop writes a tenant's new records as files into a directory its tax
// system collects from, the file alternative to the [Server].
//
// For each record after what it has written so far, in Seq order, it
// writes <seq>-<id>.json, a metadata sidecar ([DropMeta]), and then the
// plaintext as <seq>-<id>.<ext>, where <seq> is the Seq in (at least) 12
// digits and <ext> is xml, pdf or bin after the content type. Each file is
// written to a temporary name starting with "." (which collectors must
// ignore), fsynced, given mode 0600 and renamed into place, and the
// directory is fsynced: a file is visible only once it is complete, and
// the sidecar always before its payload.
//
// The tax system acknowledges a record by deleting (or moving out of Dir)
// both of its files. Each pass advances the drop's cursor over the longest
// run of acknowledged records following it, and never past a record whose
// files are still there. At most MaxPending records have files
// outstanding: the drop writes nothing more until some are taken away.
//
// The drop's cursor is the Seq of the last record of that run. Every
// record handed over is audited (export.drop, before its payload becomes
// visible) and so is every move of the cursor (export.ack), as the actor
// "export:"+Name from "local"; the plaintext is opened through the Opener
// as the same actor.
//
// Delivery is at least once: if the process stops between making a record
// visible and noting it durably, the record is written again (with the
// same names and content) at the next pass. Only one Drop may run per
// Dir and per Name.
type Drop struct {
	cfg                DropConfig
	actor              string
	ackKey, writtenKey string
	log                *slog.Logger
	mu                 sync.Mutex // serializes passes
	beforeRename       func()     // test hook: called before a payload is renamed into place
}

// DropMeta is the content of a drop's metadata sidecar.
type DropMeta struct {
	Seq         int64     `json:"seq"`
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Sender      string    `json:"sender"`
	Tenant      string    `json:"tenant"`
	Created     time.Time `json:"created"`
	RecordedAt  time.Time `json:"recorded_at"`
	ContentType string    `json:"content_type"`
	// Size and SHA256 are the payload file's length and the hex SHA-256
	// of its content.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// File is the payload file's name.
	File string `json:"file"`
}

// NewDrop checks cfg and returns a Drop. It fails with an error wrapping
// [ErrInvalid] when a required field is missing or invalid, MaxPending is
// negative, or Dir is not an existing directory.
func NewDrop(cfg DropConfig) (*Drop, error) {
	if err := ValidateName(cfg.Name); err != nil {
		return nil, err
	}
	if err := envelope.ValidParticipantID(cfg.Tenant); err != nil {
		return nil, fmt.Errorf("%w: drop %s: tenant: %w", ErrInvalid, cfg.Name, err)
	}
	switch {
	case cfg.Store == nil, cfg.Open == nil, cfg.Cursors == nil, cfg.Audit == nil:
		return nil, fmt.Errorf("%w: drop %s: Store, Open, Cursors and Audit are required", ErrInvalid, cfg.Name)
	case cfg.MaxPending < 0:
		return nil, fmt.Errorf("%w: drop %s: negative MaxPending", ErrInvalid, cfg.Name)
	case cfg.Dir == "":
		return nil, fmt.Errorf("%w: drop %s: no directory", ErrInvalid, cfg.Name)
	}
	if fi, err := os.Stat(cfg.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: drop %s: %s is not an existing directory", ErrInvalid, cfg.Name, cfg.Dir)
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	d := &Drop{
		cfg: cfg, actor: Actor(cfg.Name),
		ackKey: "drop." + cfg.Name, writtenKey: "drop." + cfg.Name + ".written",
		log: cfg.Logger,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// dropNameRE matches the names a drop writes: <seq>-<ULID>.<ext>.
var dropNameRE = regexp.MustCompile(`^([0-9]{12,19})-([0-9A-HJKMNP-TV-Z]{26})\.(xml|pdf|bin|json)$`)

// dropTempRE matches the temporary files a drop may leave after a crash.
var dropTempRE = regexp.MustCompile(`^\.[0-9]{12,19}-[0-9A-HJKMNP-TV-Z]{26}\.(xml|pdf|bin|json)\.tmp-[0-9]+$`)

func dropBase(seq int64, id string) string { return fmt.Sprintf("%012d-%s", seq, id) }

// extension returns the payload file extension for a content type.
func extension(contentType string) string {
	switch {
	case contentType == "application/xml" || contentType == "text/xml" || strings.HasSuffix(contentType, "+xml"):
		return "xml"
	case contentType == "application/pdf":
		return "pdf"
	}
	return "bin"
}

// Once makes one pass: it advances the cursor over the records the tax
// system has taken away, then writes the next records (up to MaxPending
// outstanding) and returns how many it wrote. A record that disappears
// from the store before it is written (erased) is skipped. On error the
// records written so far stay written and noted, and the next pass
// resumes after them.
func (d *Drop) Once(ctx context.Context) (written int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	acked, err := d.cfg.Cursors.Get(d.ackKey)
	if err != nil {
		return 0, err
	}
	mark, err := d.cfg.Cursors.Get(d.writtenKey)
	if err != nil {
		return 0, err
	}
	mark = max(mark, acked)

	present, err := d.scan()
	if err != nil {
		return 0, err
	}
	// The cursor moves to the last record before the first one still
	// outstanding, or to the written mark when none is.
	pending, first := 0, int64(-1)
	for seq := range present {
		if seq > acked && seq <= mark {
			pending++
			if first < 0 || seq < first {
				first = seq
			}
		}
	}
	next := mark
	if first >= 0 {
		if next, err = d.lastBefore(ctx, acked, first); err != nil {
			return 0, err
		}
	}
	if next > acked {
		// Audited first: the cursor never moves unrecorded.
		if err := recordAudit(ctx, d.cfg.Audit, d.log, audit.Event{
			Actor: d.actor, Action: actionAck, Object: d.cfg.Tenant, From: dropFrom, Result: audit.ResultOK,
			Detail: fmt.Sprintf("files taken away: cursor %d to %d", acked, next),
		}); err != nil {
			return 0, fmt.Errorf("export: drop %s: %w", d.cfg.Name, err)
		}
		if err := d.cfg.Cursors.Set(d.ackKey, next); err != nil {
			return 0, err
		}
	}

	for room := d.cfg.MaxPending - pending; room > 0; {
		recs, err := d.cfg.Store.List(ctx, store.Query{Recipient: d.cfg.Tenant, AfterSeq: mark, Limit: min(room, store.MaxListLimit)})
		if err != nil {
			return written, fmt.Errorf("export: drop %s: list records: %w", d.cfg.Name, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if err := ctx.Err(); err != nil {
				return written, err
			}
			ok, err := d.write(ctx, rec)
			if err != nil {
				return written, err
			}
			if err := d.cfg.Cursors.Set(d.writtenKey, rec.Seq); err != nil {
				return written, err
			}
			mark = rec.Seq
			if ok {
				written++
				room--
			}
		}
	}
	return written, nil
}

// lastBefore returns the Seq of the tenant's last record in (after,
// before), or after when there is none. The records it walks are those the
// cursor is about to pass, each walked once.
func (d *Drop) lastBefore(ctx context.Context, after, before int64) (int64, error) {
	last := after
	for {
		recs, err := d.cfg.Store.List(ctx, store.Query{Recipient: d.cfg.Tenant, AfterSeq: after, Limit: store.MaxListLimit})
		if err != nil {
			return 0, fmt.Errorf("export: drop %s: list records: %w", d.cfg.Name, err)
		}
		for _, r := range recs {
			if r.Seq >= before {
				return last, nil
			}
			last = r.Seq
		}
		if len(recs) < store.MaxListLimit {
			return last, nil
		}
		after = last
	}
}

// scan lists Dir and returns the Seqs that have a file there; it removes
// the drop's own temporary files left by an interrupted pass.
func (d *Drop) scan() (map[int64]bool, error) {
	entries, err := os.ReadDir(d.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("export: drop %s: %w", d.cfg.Name, err)
	}
	present := make(map[int64]bool)
	for _, e := range entries {
		name := e.Name()
		if dropTempRE.MatchString(name) {
			if err := os.Remove(filepath.Join(d.cfg.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("export: drop %s: remove stale temporary file: %w", d.cfg.Name, err)
			}
			continue
		}
		m := dropNameRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		seq, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			continue
		}
		present[seq] = true
	}
	return present, nil
}

// write hands rec over: payload to a temporary file, sidecar into place,
// audit, payload into place. It reports false for a record that is gone
// from the store.
func (d *Drop) write(ctx context.Context, rec store.Record) (bool, error) {
	if rec.Recipient != d.cfg.Tenant || envelope.ValidID(rec.ID) != nil || rec.Seq <= 0 {
		return false, fmt.Errorf("export: drop %s: store returned an unexpected record (seq %d)", d.cfg.Name, rec.Seq)
	}
	object := d.cfg.Tenant + " " + rec.ID
	rc, hdr, err := d.cfg.Open(ctx, d.actor, dropFrom, d.cfg.Tenant, rec.ID)
	if errors.Is(err, store.ErrNotFound) {
		d.log.Info("export: drop: record gone before it was written", "drop", d.cfg.Name, "seq", rec.Seq, "id", rec.ID)
		return false, nil
	}
	if err != nil {
		return false, d.fail(ctx, object, "open record", err)
	}
	defer rc.Close()
	if hdr == nil || hdr.ID != rec.ID || hdr.Recipient != d.cfg.Tenant {
		return false, d.fail(ctx, object, "open record", errors.New("the opener returned a header of another record"))
	}
	base := dropBase(rec.Seq, rec.ID)
	payloadName := base + "." + extension(hdr.ContentType)
	payloadPath := filepath.Join(d.cfg.Dir, payloadName)

	tmp, sum, n, err := d.spool(payloadName, rc)
	if err != nil {
		return false, d.fail(ctx, object, "write payload", err)
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmp)
		}
	}()
	if uint64(n) != hdr.PayloadSize {
		return false, d.fail(ctx, object, "write payload", fmt.Errorf("plaintext is %d bytes, header says %d", n, hdr.PayloadSize))
	}
	meta, err := json.MarshalIndent(DropMeta{
		Seq: rec.Seq, ID: rec.ID, Type: rec.Type, Sender: rec.Sender, Tenant: d.cfg.Tenant,
		Created: rec.Created, RecordedAt: rec.RecordedAt, ContentType: hdr.ContentType,
		Size: n, SHA256: hex.EncodeToString(sum.Sum(nil)), File: payloadName,
	}, "", "  ")
	if err != nil {
		return false, d.fail(ctx, object, "write metadata", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(d.cfg.Dir, base+".json"), append(meta, '\n'), 0o600); err != nil {
		return false, d.fail(ctx, object, "write metadata", err)
	}
	// Audited before the payload becomes visible: nothing is handed over
	// unrecorded.
	if err := recordAudit(ctx, d.cfg.Audit, d.log, audit.Event{
		Actor: d.actor, Action: actionDrop, Object: object, From: dropFrom, Result: audit.ResultOK,
		Detail: fmt.Sprintf("seq %d, %d bytes", rec.Seq, n),
	}); err != nil {
		os.Remove(filepath.Join(d.cfg.Dir, base+".json"))
		return false, fmt.Errorf("export: drop %s: %w", d.cfg.Name, err)
	}
	if d.beforeRename != nil {
		d.beforeRename()
	}
	if err := os.Rename(tmp, payloadPath); err != nil {
		return false, d.fail(ctx, object, "write payload", err)
	}
	committed = true
	if err := fsutil.SyncDir(d.cfg.Dir); err != nil {
		return false, d.fail(ctx, object, "write payload", err)
	}
	return true, nil
}

// spool copies the plaintext into a new temporary file in Dir (mode 0600,
// fsynced and closed), returning its path, its SHA-256 and its length. It
// succeeds only if r ended with io.EOF, that is, only if the opener
// confirmed the whole plaintext.
func (d *Drop) spool(name string, r io.Reader) (path string, sum hash.Hash, n int64, err error) {
	f, err := os.CreateTemp(d.cfg.Dir, "."+name+".tmp-*")
	if err != nil {
		return "", nil, 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", nil, 0, err
	}
	sum = sha256.New()
	n, err = io.Copy(io.MultiWriter(f, sum), r)
	if err != nil {
		return "", nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return "", nil, 0, err
	}
	if err := f.Close(); err != nil {
		return "", nil, 0, err
	}
	return f.Name(), sum, n, nil
}

// fail audits a failed hand-over and returns err, described.
func (d *Drop) fail(ctx context.Context, object, what string, err error) error {
	_ = recordAudit(ctx, d.cfg.Audit, d.log, audit.Event{
		Actor: d.actor, Action: actionDrop, Object: object, From: dropFrom, Result: audit.ResultError, Detail: what,
	})
	return fmt.Errorf("export: drop %s: %s %s: %w", d.cfg.Name, object, what, err)
}

// Run calls Once at once and then every interval (a minute when every is
// not positive) until ctx is done, logging failures; a failed pass is
// retried at the next tick.
func (d *Drop) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := d.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Error("export: drop pass failed", "drop", d.cfg.Name, "written", n, "err", err)
		case n > 0:
			d.log.Info("export: drop wrote records", "drop", d.cfg.Name, "written", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
