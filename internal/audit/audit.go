// Package audit keeps the audit log of a taxlink hub or node: every
// operator action and access (who, what, which record, from where, with
// what result), appended durably to a tamper-evident ledger (package
// ledger) so that it can be checkpointed, backed up and verified offline
// (Verify; `taxlink audit verify`).
//
// Each event is one ledger entry, encoded as canonical JSON:
//
//	{"time":"2026-03-15T09:00:00.000000000Z","actor":"op:tanaka","action":"auth.success",
//	 "object":"console","from":"192.0.2.7:51234","result":"ok","detail":""}
//
// (on one line): exactly these keys in this order, the time in UTC with
// nine fractional digits, no HTML escaping. Events never carry personal
// data: Record refuses control and invisible formatting characters,
// enforces lengths and character sets, and refuses any field holding a
// 12-digit number with a valid 個人番号 (My Number) check digit.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/ledger"
)

// Field limits, in bytes.
const (
	MaxActorLen  = 128
	MaxActionLen = 64
	MaxObjectLen = 256
	MaxFromLen   = 128
	MaxDetailLen = 512
)

// Results an Event may carry.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultError  = "error"
)

// MaxEvents is the most events one Events call returns.
const MaxEvents = 100_000

// timeLayout is the canonical time encoding: UTC, nine fractional digits.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Sentinel errors.
var (
	// ErrInvalid reports an Event that Record refuses: a field missing,
	// too long, or with characters outside its set.
	ErrInvalid = errors.New("audit: invalid event")
	// ErrPersonalData reports a field that looks like personal data (a
	// valid 個人番号). Errors wrapping it also wrap ErrInvalid.
	ErrPersonalData = errors.New("audit: personal data in event")
)

// An Event is one audited action.
type Event struct {
	Time   time.Time // set by Record from the clock; any value given is ignored
	Actor  string    // operator ID, participant ID or "system": 1..128 bytes of printable ASCII, no spaces
	Action string    // e.g. "start", "auth.failure", "config.change", "record.open": 1..64 bytes, [a-z0-9] words joined by '.', '_' or '-'
	Object string    // what was acted on (an envelope ID, a tenant, a config key), never personal data: 0..256 bytes of printable text
	From   string    // remote address or "local": 1..128 bytes of printable ASCII, no spaces
	Result string    // ResultOK, ResultDenied or ResultError
	Detail string    // short, no personal data: 0..512 bytes of printable text
}

// eventJSON fixes the canonical key names and order.
type eventJSON struct {
	Time   string `json:"time"`
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Object string `json:"object"`
	From   string `json:"from"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

// Validate checks every field of e except Time against the rules of
// Event. It returns nil or an error wrapping ErrInvalid (and
// ErrPersonalData) that names the field.
func (e Event) Validate() error {
	fields := []struct {
		name, value string
		min, max    int
		ascii       bool // printable ASCII without spaces
	}{
		{"actor", e.Actor, 1, MaxActorLen, true},
		{"action", e.Action, 1, MaxActionLen, true},
		{"object", e.Object, 0, MaxObjectLen, false},
		{"from", e.From, 1, MaxFromLen, true},
		{"result", e.Result, 1, 16, true},
		{"detail", e.Detail, 0, MaxDetailLen, false},
	}
	for _, f := range fields {
		if len(f.value) < f.min || len(f.value) > f.max {
			return invalid(f.name, fmt.Sprintf("length %d not in %d..%d", len(f.value), f.min, f.max))
		}
		if err := checkChars(f.name, f.value, f.ascii); err != nil {
			return err
		}
		if myNumberIn(f.value) {
			return &fieldError{
				msg:  fmt.Sprintf("audit: invalid event: field %s holds a 12-digit number with a valid 個人番号 check digit; audit events must not carry personal data", f.name),
				errs: []error{ErrInvalid, ErrPersonalData},
			}
		}
	}
	if !validAction(e.Action) {
		return invalid("action", fmt.Sprintf("%q is not lowercase words of [a-z0-9] joined by '.', '_' or '-'", e.Action))
	}
	switch e.Result {
	case ResultOK, ResultDenied, ResultError:
	default:
		return invalid("result", fmt.Sprintf("%q is not %q, %q or %q", e.Result, ResultOK, ResultDenied, ResultError))
	}
	return nil
}

// fieldError is an error with a full message that matches several sentinels.
type fieldError struct {
	msg  string
	errs []error
}

func (e *fieldError) Error() string   { return e.msg }
func (e *fieldError) Unwrap() []error { return e.errs }

func invalid(field, problem string) error {
	return fmt.Errorf("%w: field %s: %s", ErrInvalid, field, problem)
}

// checkChars refuses invalid UTF-8, control characters and invisible
// formatting characters (such as bidirectional overrides); with ascii, it
// allows only printable ASCII without spaces.
func checkChars(field, s string, ascii bool) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			return invalid(field, fmt.Sprintf("invalid UTF-8 at byte %d", i))
		case ascii && (r <= ' ' || r > '~'):
			return invalid(field, fmt.Sprintf("character %U at byte %d; only printable ASCII without spaces is allowed", r, i))
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return invalid(field, fmt.Sprintf("control or formatting character %U at byte %d", r, i))
		}
	}
	return nil
}

// validAction reports whether s is lowercase [a-z0-9] words joined by
// single '.', '_' or '-'.
func validAction(s string) bool {
	prevSep := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			prevSep = false
		case c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// myNumberIn reports whether s holds a run of exactly 12 digits that is a
// valid 個人番号: weights 2,3,4,5,6,7,2,3,4,5,6 from the rightmost of the
// first 11 digits; check = 11 − (S mod 11), or 0 when S mod 11 ≤ 1.
func myNumberIn(s string) bool {
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i == 12 && validMyNumber(s[i:j]) {
			return true
		}
		i = j
	}
	return false
}

func validMyNumber(d string) bool {
	sum := 0
	for n := 1; n <= 11; n++ {
		w := n + 1
		if n > 6 {
			w = n - 5
		}
		sum += int(d[11-n]-'0') * w
	}
	check := 0
	if r := sum % 11; r > 1 {
		check = 11 - r
	}
	return int(d[11]-'0') == check
}

// Marshal returns the canonical JSON encoding of e (see the package
// documentation). It validates e first; Time must not be zero.
func (e Event) Marshal() ([]byte, error) {
	if e.Time.IsZero() {
		return nil, invalid("time", "zero")
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(eventJSON{
		Time:   e.Time.UTC().Format(timeLayout),
		Actor:  e.Actor,
		Action: e.Action,
		Object: e.Object,
		From:   e.From,
		Result: e.Result,
		Detail: e.Detail,
	}); err != nil {
		return nil, fmt.Errorf("audit: encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseEvent decodes an event and checks that data is exactly its
// canonical encoding (Marshal) and that the event is valid. Errors wrap
// ErrInvalid.
func ParseEvent(data []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j eventJSON
	if err := dec.Decode(&j); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t, err := time.Parse(timeLayout, j.Time)
	if err != nil {
		return Event{}, invalid("time", err.Error())
	}
	e := Event{Time: t, Actor: j.Actor, Action: j.Action, Object: j.Object, From: j.From, Result: j.Result, Detail: j.Detail}
	again, err := e.Marshal()
	if err != nil {
		return Event{}, err
	}
	if !bytes.Equal(again, data) {
		return Event{}, fmt.Errorf("%w: not in canonical form", ErrInvalid)
	}
	return e, nil
}

// Log is an audit log. It is safe for concurrent use.
type Log struct {
	l *ledger.Log
	// observe, when set, sees every event recorded (detection rules).
	observe atomic.Pointer[func(Event)]
}

// Observe makes f see every event recorded from now on, after it is
// durable; f must return quickly (the detector queues). nil stops it.
func (l *Log) Observe(f func(Event)) {
	if f == nil {
		l.observe.Store(nil)
		return
	}
	l.observe.Store(&f)
}

// Open opens (or, with opts.Signer set, creates) the audit log in dir. It
// is a ledger.Open: see there for what is checked and recovered. opts.Now
// is the clock Record stamps events with.
func Open(dir string, opts ledger.Options) (*Log, error) {
	l, err := ledger.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Log{l: l}, nil
}

// Record stamps e with the clock, validates it, encodes it canonically
// and appends it durably; it returns the event's index in the log.
// Errors: ErrInvalid (ErrPersonalData) for a refused event, or the
// ledger's errors (ledger.ErrReadOnly, ledger.ErrClosed, ledger.ErrFailed,
// the context's error).
func (l *Log) Record(ctx context.Context, e Event) (int64, error) {
	e.Time = l.l.Now().UTC()
	b, err := e.Marshal()
	if err != nil {
		return 0, err
	}
	idx, err := l.l.Append(ctx, b)
	if err != nil {
		return 0, fmt.Errorf("audit: record %s by %s: %w", e.Action, e.Actor, err)
	}
	if f := l.observe.Load(); f != nil {
		(*f)(e)
	}
	return idx, nil
}

// Checkpoint signs the current state of the log (ledger.Log.Checkpoint).
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	return l.l.Checkpoint(ctx)
}

// Size returns the number of events recorded.
func (l *Log) Size() int64 { return l.l.Size() }

// Events returns the events with indexes in [from, to), at most MaxEvents
// of them. An entry that is not a canonical event gives an error wrapping
// ledger.ErrCorrupt naming its index.
func (l *Log) Events(from, to int64) ([]Event, error) {
	if from < 0 || from > to || to > l.l.Size() {
		return nil, fmt.Errorf("audit: events %d..%d of a log of %d: %w", from, to, l.l.Size(), ledger.ErrRange)
	}
	if to-from > MaxEvents {
		return nil, fmt.Errorf("audit: %d events requested, at most %d per call: %w", to-from, MaxEvents, ledger.ErrRange)
	}
	out := make([]Event, 0, to-from)
	for i := from; i < to; i++ {
		data, err := l.l.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("audit: event %d: %w", i, err)
		}
		e, err := ParseEvent(data)
		if err != nil {
			return nil, fmt.Errorf("audit: entry %d is not an audit event: %w: %w", i, ledger.ErrCorrupt, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Ledger returns the underlying ledger, for proofs, bundles and backups.
func (l *Log) Ledger() *ledger.Log { return l.l }

// Close closes the log (ledger.Log.Close).
func (l *Log) Close() error { return l.l.Close() }

// Verify checks the audit log in dir offline, read only: the whole ledger
// (ledger.VerifyDir with opts.Verifier) and then that every entry is a
// canonical, valid event. opts.Signer is ignored. It returns the ledger's
// report and nil, or an error wrapping ledger.ErrCorrupt that names the
// first problem.
func Verify(dir string, opts ledger.Options) (ledger.Report, error) {
	if opts.Verifier == nil {
		return ledger.Report{}, errors.New("audit: verify: Options.Verifier is required")
	}
	rep, err := ledger.VerifyDir(dir, note.VerifierList(opts.Verifier))
	if err != nil {
		return rep, fmt.Errorf("audit: verify %s: %w", dir, err)
	}
	opts.Signer = nil
	l, err := ledger.Open(dir, opts)
	if err != nil {
		return rep, fmt.Errorf("audit: verify %s: %w", dir, err)
	}
	defer l.Close()
	for i := range l.Size() {
		data, err := l.Entry(i)
		if err != nil {
			return rep, fmt.Errorf("audit: verify %s: event %d: %w", dir, i, err)
		}
		if _, err := ParseEvent(data); err != nil {
			return rep, fmt.Errorf("audit: verify %s: entry %d is not an audit event: %w: %w", dir, i, ledger.ErrCorrupt, err)
		}
	}
	return rep, nil
}

// String formats e on one line for operators.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action)
	if e.Object != "" {
		fmt.Fprintf(&b, " %q", e.Object)
	}
	fmt.Fprintf(&b, " from %s: %s", e.From, e.Result)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	return b.String()
}
