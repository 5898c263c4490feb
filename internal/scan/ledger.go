package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"taxlink/internal/fsutil"
)

// State of a record with respect to scanning.
type State string

// States of a record.
const (
	// Pending: never scanned (or every scan failed). Must not be served.
	Pending State = "pending"
	// Clean: scanned and found clean. May be served.
	Clean State = "clean"
	// Quarantined: a scan found it infected. Kept, flagged, never served.
	Quarantined State = "quarantined"
)

// Entry is one recorded verdict.
type Entry struct {
	Tenant, ID string
	Verdict    Verdict
	At         time.Time
}

// ledgerVersion is the "v" field of every ledger line.
const ledgerVersion = 1

// maxLedgerLine bounds one ledger line; valid lines are far shorter.
const maxLedgerLine = 8 << 10

// ledgerLine is the JSON form of one ledger line. Pointer fields are
// required and must be present.
type ledgerLine struct {
	V         *int       `json:"v"`
	Tenant    *string    `json:"tenant"`
	ID        *string    `json:"id"`
	Clean     *bool      `json:"clean"`
	Signature string     `json:"signature,omitempty"`
	Scanner   string     `json:"scanner"`
	At        *time.Time `json:"at"`
}

type ledgerKey struct{ tenant, id string }

// Ledger records scan verdicts durably in one append-only JSON-lines file,
// one line per Record, fsync'd before Record returns, keyed by
// (tenant, record ID).
//
// Quarantine is sticky: once a record has an infected verdict it stays
// Quarantined, and later verdicts for it (even clean ones) are appended to
// the file for the record but do not change its state. Among clean
// verdicts the latest recorded wins.
//
// A Ledger is safe for concurrent use within one process; only one process
// may have a given file open at a time.
type Ledger struct {
	mu      sync.Mutex
	path    string
	f       *os.File // nil once closed
	err     error    // sticky write failure
	entries map[ledgerKey]Entry
}

// OpenLedger opens (creating with mode 0600 if needed) the ledger file at
// path and loads it. A torn last line (one without its terminating newline,
// left by a crash during Record) is ignored and truncated away so that new
// lines append cleanly. Any other malformed line (bad JSON, unknown or
// missing field, invalid value, blank line) is refused with an error
// naming its 1-based line number.
func OpenLedger(path string) (*Ledger, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scan: open ledger: %w", err)
	}
	l := &Ledger{path: path, f: f, entries: make(map[ledgerKey]Entry)}
	if err := l.load(); err != nil {
		f.Close()
		return nil, err
	}
	if err := fsutil.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("scan: open ledger %s: %w", path, err)
	}
	return l, nil
}

// load reads every line of the file and truncates a torn tail.
func (l *Ledger) load() error {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("scan: read ledger %s: %w", l.path, err)
	}
	br := bufio.NewReader(l.f)
	var (
		good   int64 // offset just past the last complete line
		lineNo int
	)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("scan: read ledger %s: %w", l.path, err)
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				break
			}
			// Torn last line: ignore it and cut it off.
			if err := l.f.Truncate(good); err != nil {
				return fmt.Errorf("scan: ledger %s: truncate torn line %d: %w", l.path, lineNo+1, err)
			}
			if err := l.f.Sync(); err != nil {
				return fmt.Errorf("scan: ledger %s: sync after truncate: %w", l.path, err)
			}
			break
		}
		lineNo++
		e, perr := parseLedgerLine(line[:len(line)-1])
		if perr != nil {
			return fmt.Errorf("scan: ledger %s: line %d: %w", l.path, lineNo, perr)
		}
		l.apply(e)
		good += int64(len(line))
	}
	return nil
}

// parseLedgerLine decodes and validates one line (without its newline).
func parseLedgerLine(line []byte) (Entry, error) {
	if len(line) > maxLedgerLine {
		return Entry{}, fmt.Errorf("line longer than %d bytes", maxLedgerLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var ll ledgerLine
	if err := dec.Decode(&ll); err != nil {
		return Entry{}, fmt.Errorf("malformed: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Entry{}, errors.New("malformed: trailing data after the JSON object")
	}
	switch {
	case ll.V == nil || *ll.V != ledgerVersion:
		return Entry{}, fmt.Errorf("missing or unsupported version (want %d)", ledgerVersion)
	case ll.Tenant == nil || ll.ID == nil || ll.Clean == nil || ll.At == nil:
		return Entry{}, errors.New("missing required field")
	}
	e := Entry{
		Tenant:  *ll.Tenant,
		ID:      *ll.ID,
		Verdict: Verdict{Clean: *ll.Clean, Signature: ll.Signature, Scanner: ll.Scanner},
		At:      *ll.At,
	}
	if err := validateEntry(e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// validateEntry checks an entry at the package boundary.
func validateEntry(e Entry) error {
	switch {
	case !validIdent(e.Tenant):
		return fmt.Errorf("invalid tenant %q: want 1..%d bytes of printable ASCII", truncate(e.Tenant, 64), maxIdentLen)
	case !validIdent(e.ID):
		return fmt.Errorf("invalid record ID %q: want 1..%d bytes of printable ASCII", truncate(e.ID, 64), maxIdentLen)
	case e.Verdict.Clean && e.Verdict.Signature != "":
		return errors.New("clean verdict with a signature")
	case !e.Verdict.Clean && !validSignature(e.Verdict.Signature):
		return fmt.Errorf("infected verdict needs a signature of 1..%d bytes of printable ASCII", maxSignatureLen)
	case !validScanner(e.Verdict.Scanner):
		return fmt.Errorf("invalid scanner version: want at most %d bytes of printable ASCII", maxScannerLen)
	case e.At.IsZero():
		return errors.New("zero time")
	}
	return nil
}

// apply folds e into the in-memory state (quarantine is sticky).
func (l *Ledger) apply(e Entry) {
	k := ledgerKey{e.Tenant, e.ID}
	if cur, ok := l.entries[k]; ok && !cur.Verdict.Clean {
		return
	}
	l.entries[k] = e
}

// Record appends the verdict v for (tenant, id) scanned at time at, and
// fsyncs it before returning. tenant and id must be 1..256 bytes of
// printable ASCII; an infected verdict needs a signature of 1..200 bytes of
// printable ASCII, a clean one must have none; at must be non-zero (it is
// stored in UTC). On a write or sync failure the ledger refuses further
// Records (the file's tail is then uncertain; reopen it to recover). After
// Close the error wraps os.ErrClosed.
func (l *Ledger) Record(tenant, id string, v Verdict, at time.Time) error {
	e := Entry{Tenant: tenant, ID: id, Verdict: v, At: at.UTC().Round(0)}
	if err := validateEntry(e); err != nil {
		return fmt.Errorf("scan: record: %w", err)
	}
	version := ledgerVersion
	b, err := json.Marshal(ledgerLine{
		V: &version, Tenant: &e.Tenant, ID: &e.ID, Clean: &e.Verdict.Clean,
		Signature: e.Verdict.Signature, Scanner: e.Verdict.Scanner, At: &e.At,
	})
	if err != nil {
		return fmt.Errorf("scan: record: %w", err)
	}
	b = append(b, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.f == nil:
		return fmt.Errorf("scan: record: ledger %s: %w", l.path, os.ErrClosed)
	case l.err != nil:
		return fmt.Errorf("scan: record: ledger %s unusable after earlier failure: %w", l.path, l.err)
	}
	if _, err := l.f.Write(b); err != nil {
		l.err = err
		return fmt.Errorf("scan: record: ledger %s: write: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		l.err = err
		return fmt.Errorf("scan: record: ledger %s: sync: %w", l.path, err)
	}
	l.apply(e)
	return nil
}

// State returns the state of (tenant, id) and the verdict that decided it.
// ok is false when the record was never scanned; the state is then
// Pending. For a Quarantined record the verdict is the first infected one.
// State keeps answering from memory after Close.
func (l *Ledger) State(tenant, id string) (State, Verdict, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[ledgerKey{tenant, id}]
	switch {
	case !ok:
		return Pending, Verdict{}, false
	case e.Verdict.Clean:
		return Clean, e.Verdict, true
	default:
		return Quarantined, e.Verdict, true
	}
}

// Quarantined returns the quarantined records, each with the verdict and
// time that quarantined it, sorted by time (ties by tenant, then ID). The
// slice is a fresh copy.
func (l *Ledger) Quarantined() []Entry {
	l.mu.Lock()
	out := make([]Entry, 0)
	for _, e := range l.entries {
		if !e.Verdict.Clean {
			out = append(out, e)
		}
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		return a.ID < b.ID
	})
	return out
}

// Close syncs and closes the file. Further Records fail; State and
// Quarantined keep answering from memory. A second Close returns an error
// wrapping os.ErrClosed.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("scan: close ledger %s: %w", l.path, os.ErrClosed)
	}
	serr := l.f.Sync()
	cerr := l.f.Close()
	l.f = nil
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("scan: close ledger %s: %w", l.path, err)
	}
	return nil
}
