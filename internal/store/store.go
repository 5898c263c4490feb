// Package store defines a node's inbox: the durable, idempotent record of
// every envelope the node has received, kept per tenant (recipient); and
// its outbox ([Outbox]): the envelopes it submits, with their receipts, and
// named cursors. A [NodeStore] is both.
//
// The store only ever sees ciphertext: payloads stay sealed at rest, and the
// metadata it keeps (the envelope's canonical header, its signature and the
// node's recording receipt) carries no personal data. Ciphertext is streamed
// in and out and is never held whole in memory.
//
// Implementations live in sub-packages (see store/sqlite); every one of them
// must pass the conformance suite in store/storetest. Every method validates
// its arguments at the boundary and reports a bad one with an error wrapping
// [ErrInvalid]; callers decide on the sentinel errors below with errors.Is.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Errors returned by an [Inbox] or an [Outbox] wrap at most one of them;
// test with errors.Is.
var (
	// ErrNotFound means no record with that ID exists for that recipient.
	// A record that belongs to another tenant is reported as not found.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a record with that ID exists with different
	// header bytes; the stored record is unchanged. In the [Outbox]: the
	// ID is already enqueued, or another recorded index is stored.
	ErrConflict = errors.New("store: conflicting record with the same ID")
	// ErrSizeMismatch means the ciphertext read was not exactly
	// Record.CiphertextSize bytes long; nothing was stored.
	ErrSizeMismatch = errors.New("store: ciphertext size mismatch")
	// ErrClosed means the store (or a reader obtained from it) was used
	// after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid means an argument was rejected before anything was
	// touched; the wrapping error names the argument and the expectation.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrCorrupt means stored data is inconsistent with its own metadata
	// (for example a missing ciphertext chunk). It calls for an operator,
	// not a retry.
	ErrCorrupt = errors.New("store: stored data is corrupt")
)

// Limits enforced at the boundary by [Record.Validate], [Query.Validate] and
// [ValidateRef].
const (
	// MaxIDLen bounds, in bytes, an envelope ID, a participant ID and a
	// message type.
	MaxIDLen = 256
	// MaxListLimit is the largest Query.Limit.
	MaxListLimit = 1000
	// MaxHeaderLen bounds Record.Header, Record.Signature and
	// Record.Receipt, in bytes each. They are metadata; payloads go through
	// the ciphertext stream.
	MaxHeaderLen = 1 << 20
)

// Record is one recorded envelope's metadata. Header holds the envelope's
// canonical header bytes (no personal data); Receipt is the node-signed
// recording receipt (opaque JSON bytes to the store).
//
// Times are returned in UTC with nanosecond precision; compare them with
// time.Time.Equal.
type Record struct {
	// Seq is assigned by the store on first recording. It increases with
	// commit order and is never reused, so a reader that has seen Seq n
	// will never later see a new record with Seq <= n. It is ignored on
	// input.
	Seq int64
	// ID is the envelope ID (a ULID string), unique across all tenants.
	ID string
	// Type is the envelope's message type.
	Type string
	// Sender is the participant ID of the envelope's sender.
	Sender string
	// Recipient is the tenant (participant ID) this record belongs to.
	Recipient string
	// Created is the creation time from the header. It must be set.
	Created time.Time
	// RecordedAt is when the node recorded the envelope, as stated in
	// Receipt. When zero on input the store uses its own clock.
	RecordedAt time.Time
	// Header is the envelope's canonical header bytes. Re-recording an ID
	// is idempotent exactly when these bytes are equal.
	Header []byte
	// Signature is the sender's signature over the envelope.
	Signature []byte
	// CiphertextSize is the exact length of the sealed payload in bytes.
	CiphertextSize int64
	// Receipt is the node-signed recording receipt (opaque JSON bytes).
	Receipt []byte
}

// Query selects one page of a tenant's records for [Inbox.List].
type Query struct {
	// Recipient is the tenant whose records are listed; required.
	Recipient string
	// AfterSeq excludes records with Seq <= AfterSeq; 0 starts at the
	// beginning. Pass the last Seq of a page to get the next page.
	AfterSeq int64
	// Limit is the page size, 1..MaxListLimit.
	Limit int
}

// Inbox is a node's durable record of received envelopes. Implementations
// are safe for concurrent use by multiple goroutines, and, where they are
// backed by a shared file, by multiple processes.
type Inbox interface {
	// Record durably stores rec and the ciphertext read from r to EOF in
	// ONE transaction, committed (fsync'd) before it returns; rec.Seq is
	// ignored and the stored record, with its Seq, is returned.
	//
	// If a record with rec.ID exists: when its Header bytes are equal,
	// nothing changes and the stored record (with the receipt stored first)
	// is returned with existed=true (r need not be read); when they differ,
	// ErrConflict. If reading r fails, nothing is stored and the read error
	// is returned wrapped (so a verifying reader can abort a recording).
	// The ciphertext read must be exactly rec.CiphertextSize bytes, else
	// ErrSizeMismatch and nothing is stored. An invalid rec is rejected
	// with ErrInvalid before r is read.
	Record(ctx context.Context, rec Record, ciphertext io.Reader) (stored Record, existed bool, err error)

	// Get returns the record with that ID of that recipient (tenant). A
	// missing record, or one that belongs to another tenant, is
	// ErrNotFound.
	Get(ctx context.Context, recipient, id string) (Record, error)

	// OpenCiphertext streams the ciphertext of the record with that ID of
	// that recipient, chunk by chunk; the caller must Close it. Scoping and
	// errors are those of Get. ctx governs the whole stream: once it is
	// done, Read fails with its error. The reader yields exactly
	// CiphertextSize bytes or fails (with ErrCorrupt if the stored chunks
	// disagree with the record).
	OpenCiphertext(ctx context.Context, recipient, id string) (io.ReadCloser, error)

	// List returns up to q.Limit records of q.Recipient with Seq >
	// q.AfterSeq, in increasing Seq order. An empty result means there is
	// nothing after AfterSeq (yet).
	List(ctx context.Context, q Query) ([]Record, error)

	// Count returns the number of records of recipient; recipient ""
	// counts the records of all tenants (operator-wide).
	Count(ctx context.Context, recipient string) (int64, error)

	// Erase removes, in ONE transaction committed before it returns, up
	// to q.Limit records of q.Recipient (of q.Type only, when it is not
	// "") whose RecordedAt is strictly before q.RecordedBefore, lowest Seq
	// first, together with their ciphertext chunks. It returns how many
	// records it erased, their envelope IDs in Seq order (which carry no
	// personal data, for the audit record) and the ciphertext bytes they
	// held; erasing nothing is a zero Erased and no error. An invalid q
	// (see [EraseQuery.Validate]) is ErrInvalid before anything is touched.
	//
	// Afterwards Get, OpenCiphertext, List and Count no longer find the
	// erased records; a ciphertext reader already open on one fails
	// (ErrCorrupt or ErrNotFound). A later Record of an erased ID stores it
	// anew. Seq values of erased records are never reused.
	//
	// How thoroughly the bytes go depends on the implementation:
	// store/sqlite runs with secure_delete on, so the freed pages are
	// overwritten with zeros in the same transaction (the write-ahead log
	// holds the old pages until its next checkpoint); store/postgres
	// deletes the rows, whose space (and old tuple versions) PostgreSQL
	// reclaims at the next VACUUM (autovacuum, or an operator's VACUUM of
	// the records and chunks tables). Erase never runs VACUUM FULL itself.
	Erase(ctx context.Context, q EraseQuery) (Erased, error)

	// Close releases the store. Later calls fail with ErrClosed, as do
	// reads from ciphertext readers still open; a second Close returns
	// ErrClosed.
	Close() error
}

// MaxEraseLimit is the largest EraseQuery.Limit.
const MaxEraseLimit = 10000

// EraseQuery selects the expired records of one tenant for [Inbox.Erase].
type EraseQuery struct {
	// Recipient is the tenant whose records are erased; required.
	Recipient string
	// Type restricts the erasure to one message type; "" erases records
	// of every type.
	Type string
	// RecordedBefore is the exclusive upper bound of RecordedAt; required.
	RecordedBefore time.Time
	// Limit bounds the number of records erased, 1..MaxEraseLimit.
	Limit int
}

// Erased says what one [Inbox.Erase] removed.
type Erased struct {
	Count int64    // records erased
	IDs   []string // their envelope IDs, in Seq order
	Bytes int64    // ciphertext bytes they held
}

// Validate reports, with an error wrapping [ErrInvalid], why q cannot be
// erased: Recipient must be a valid identifier, Type "" or a valid
// identifier (see [ValidateID]), RecordedBefore set and within
// [InTimeRange], and Limit in 1..MaxEraseLimit.
func (q EraseQuery) Validate() error {
	if err := ValidateID("Recipient", q.Recipient); err != nil {
		return err
	}
	if q.Type != "" {
		if err := ValidateID("Type", q.Type); err != nil {
			return err
		}
	}
	if q.RecordedBefore.IsZero() || !InTimeRange(q.RecordedBefore) {
		return fmt.Errorf("%w: RecordedBefore %v is zero or outside the storable range", ErrInvalid, q.RecordedBefore)
	}
	if q.Limit < 1 || q.Limit > MaxEraseLimit {
		return fmt.Errorf("%w: Limit %d is outside 1..%d", ErrInvalid, q.Limit, MaxEraseLimit)
	}
	return nil
}

// Validate reports, with an error wrapping [ErrInvalid], the first field of
// r that cannot be recorded: ID, Type, Sender and Recipient must be
// non-empty identifiers (see [ValidateID]); Created must be set and
// RecordedAt zero, both within [InTimeRange]; Header, Signature and Receipt must be
// non-empty and at most MaxHeaderLen bytes; CiphertextSize must not be
// negative. Seq is not checked: the store assigns it.
func (r Record) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"ID", r.ID}, {"Type", r.Type}, {"Sender", r.Sender}, {"Recipient", r.Recipient},
	} {
		if err := ValidateID(f.name, f.v); err != nil {
			return err
		}
	}
	if r.Created.IsZero() || !InTimeRange(r.Created) {
		return fmt.Errorf("%w: record %s: Created %v is zero or outside the storable range", ErrInvalid, r.ID, r.Created)
	}
	if !r.RecordedAt.IsZero() && !InTimeRange(r.RecordedAt) {
		return fmt.Errorf("%w: record %s: RecordedAt %v is outside the storable range", ErrInvalid, r.ID, r.RecordedAt)
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"Header", r.Header}, {"Signature", r.Signature}, {"Receipt", r.Receipt}} {
		if len(f.v) == 0 || len(f.v) > MaxHeaderLen {
			return fmt.Errorf("%w: record %s: %s is %d bytes, want 1..%d", ErrInvalid, r.ID, f.name, len(f.v), MaxHeaderLen)
		}
	}
	if r.CiphertextSize < 0 {
		return fmt.Errorf("%w: record %s: CiphertextSize %d is negative", ErrInvalid, r.ID, r.CiphertextSize)
	}
	return nil
}

// Validate reports, with an error wrapping [ErrInvalid], why q cannot be
// listed: Recipient must be a valid identifier, AfterSeq must not be
// negative and Limit must be in 1..MaxListLimit.
func (q Query) Validate() error {
	if err := ValidateID("Recipient", q.Recipient); err != nil {
		return err
	}
	if q.AfterSeq < 0 {
		return fmt.Errorf("%w: AfterSeq %d is negative", ErrInvalid, q.AfterSeq)
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return fmt.Errorf("%w: Limit %d is outside 1..%d", ErrInvalid, q.Limit, MaxListLimit)
	}
	return nil
}

// ValidateRef reports, with an error wrapping [ErrInvalid], whether
// recipient and id cannot name a record (see [ValidateID]).
func ValidateRef(recipient, id string) error {
	if err := ValidateID("recipient", recipient); err != nil {
		return err
	}
	return ValidateID("id", id)
}

// ValidateID reports, with an error wrapping [ErrInvalid] that mentions
// name, whether v is not an acceptable identifier: it must be 1..MaxIDLen
// bytes of valid UTF-8 without control or space characters.
func ValidateID(name, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, name)
	}
	if len(v) > MaxIDLen {
		return fmt.Errorf("%w: %s is %d bytes, want at most %d", ErrInvalid, name, len(v), MaxIDLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, name, v)
	}
	for _, c := range v {
		if unicode.IsControl(c) || unicode.IsSpace(c) {
			return fmt.Errorf("%w: %s %q contains a control or space character", ErrInvalid, name, v)
		}
	}
	return nil
}

// timeBounds returns the earliest and latest time the store can keep: it
// stores nanoseconds since the Unix epoch in a signed 64-bit integer
// (1677-09-21 to 2262-04-11).
func timeBounds() (lo, hi time.Time) {
	return time.Unix(0, math.MinInt64).UTC(), time.Unix(0, math.MaxInt64).UTC()
}

// InTimeRange reports whether t can be stored: whether it lies within
// 1677-09-21T00:12:43.145224192Z..2262-04-11T23:47:16.854775807Z, the range
// of int64 nanoseconds since the Unix epoch.
func InTimeRange(t time.Time) bool {
	lo, hi := timeBounds()
	return !t.Before(lo) && !t.After(hi)
}

// MaxErrorCodeLen bounds Outgoing.LastError in bytes.
const MaxErrorCodeLen = 256

// MaxInlineEnvelope bounds Outgoing.Envelope in bytes; a larger envelope
// goes to side files.
const MaxInlineEnvelope = 1 << 20

// Outgoing is an envelope this node submitted (or will submit) to the hub.
// Times are returned in UTC; AcceptedAt and RecordedAt are zero exactly when
// Accepted and Recorded are nil.
type Outgoing struct {
	ID, Type, Sender, Recipient string    // envelope ID, message type, and this node's and the addressee's participant IDs
	Created                     time.Time // from the header
	EnvelopePath                string    // side files (EnvelopePath+".pre" and ".ct") holding the wire envelope until the hub accepted it; "" when Envelope holds it
	// Envelope is the whole wire envelope when the outbox holds it itself
	// (up to MaxInlineEnvelope bytes): written in the same commit as the
	// entry, and dropped once the hub accepted it. Only GetOutgoing returns
	// it; it is nil in Pending and ListOutgoing results.
	Envelope               []byte
	Accepted               []byte    // acceptance receipt JSON, nil until accepted
	Recorded               []byte    // recording receipt JSON, nil until recorded
	AcceptedAt, RecordedAt time.Time // when Accepted and Recorded were set; zero while they are nil
	LastError              string    // last submission error code (never payload data)
	// RecordedIndex is the index of the recording receipt's entry in the
	// hub's ledger, -1 while unknown.
	RecordedIndex int64
}

// ValidateErrorCode reports, wrapping [ErrInvalid], a code that is too long
// (over MaxErrorCodeLen bytes) or holds control characters or invalid
// UTF-8; "" is valid.
func ValidateErrorCode(code string) error {
	if len(code) > MaxErrorCodeLen {
		return fmt.Errorf("%w: error code is %d bytes, want at most %d", ErrInvalid, len(code), MaxErrorCodeLen)
	}
	if !utf8.ValidString(code) {
		return fmt.Errorf("%w: error code %q is not valid UTF-8", ErrInvalid, code)
	}
	for _, c := range code {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: error code %q contains a control character", ErrInvalid, code)
		}
	}
	return nil
}

// ValidateNew reports, wrapping [ErrInvalid], why o cannot be enqueued:
// ID, Type, Sender and Recipient must be valid identifiers (see
// [ValidateID]), Created set and within [InTimeRange], exactly one of
// EnvelopePath (valid UTF-8) and Envelope (up to [MaxInlineEnvelope] bytes)
// set, Accepted, Recorded, AcceptedAt and RecordedAt unset, and LastError a
// valid error code (see [ValidateErrorCode]).
func (o Outgoing) ValidateNew() error {
	for _, f := range []struct{ name, v string }{
		{"ID", o.ID}, {"Type", o.Type}, {"Sender", o.Sender}, {"Recipient", o.Recipient},
	} {
		if err := ValidateID("outgoing "+f.name, f.v); err != nil {
			return err
		}
	}
	switch {
	case o.Created.IsZero() || !InTimeRange(o.Created):
		return fmt.Errorf("%w: outgoing %s: Created %v is zero or outside the storable range", ErrInvalid, o.ID, o.Created)
	case (o.EnvelopePath == "") == (len(o.Envelope) == 0):
		return fmt.Errorf("%w: outgoing %s: set exactly one of EnvelopePath and Envelope", ErrInvalid, o.ID)
	case len(o.Envelope) > MaxInlineEnvelope:
		return fmt.Errorf("%w: outgoing %s: Envelope is %d bytes, over %d", ErrInvalid, o.ID, len(o.Envelope), MaxInlineEnvelope)
	case !utf8.ValidString(o.EnvelopePath):
		return fmt.Errorf("%w: outgoing %s: EnvelopePath is not valid UTF-8", ErrInvalid, o.ID)
	case o.Accepted != nil || o.Recorded != nil || !o.AcceptedAt.IsZero() || !o.RecordedAt.IsZero():
		return fmt.Errorf("%w: outgoing %s: a new envelope cannot be accepted or recorded yet; use MarkAccepted and MarkRecorded", ErrInvalid, o.ID)
	}
	return ValidateErrorCode(o.LastError)
}

// ValidateLimit reports, wrapping [ErrInvalid], a page size outside
// 1..MaxListLimit.
func ValidateLimit(limit int) error {
	if limit < 1 || limit > MaxListLimit {
		return fmt.Errorf("%w: limit %d is outside 1..%d", ErrInvalid, limit, MaxListLimit)
	}
	return nil
}

// Outbox is a node's durable record of the envelopes it submits to the hub
// (one row per envelope ID, keyed by ID alone, not per tenant) and of named
// cursors (a consumer's position in some stream). Every write is committed
// durably before it returns. Implementations are safe for concurrent use
// and validate arguments as [Inbox] does: a bad one is reported, before
// anything is touched, with an error wrapping [ErrInvalid]. After Close
// (of the [NodeStore]) every method fails with [ErrClosed].
type Outbox interface {
	// Enqueue durably records o, a new envelope to submit, before it is
	// first submitted. o must pass [Outgoing.ValidateNew], else
	// ErrInvalid. It fails with ErrConflict if the ID is already in the
	// outbox (whatever its fields), which is left unchanged. RecordedIndex
	// is ignored on input: a new entry's index is unknown (-1).
	Enqueue(ctx context.Context, o Outgoing) error

	// Pending returns up to limit (1..MaxListLimit, else ErrInvalid)
	// envelopes that are neither accepted nor recorded, oldest Created
	// first (ties by ID). An empty result is nil or empty, not an error.
	Pending(ctx context.Context, limit int) ([]Outgoing, error)

	// MarkAccepted records the hub's acceptance receipt of envelope id
	// (1..MaxHeaderLen bytes), taking it out of Pending and dropping its
	// inline Envelope, which the hub now holds. It is idempotent:
	// once accepted, later calls leave the first receipt and time in
	// place and return nil. A zero at means now (the store's clock); at
	// must otherwise be within [InTimeRange]. It fails with ErrNotFound
	// for an unknown id and ErrInvalid for an invalid id, an empty or
	// oversized receipt or an out-of-range time.
	MarkAccepted(ctx context.Context, id string, receipt []byte, at time.Time) error

	// MarkRecorded records the recipient's recording receipt of envelope
	// id, taking it out of Pending (recorded implies delivered, even if
	// the acceptance was never marked). It is idempotent like
	// MarkAccepted and fails the same way, with ErrNotFound for an
	// unknown id. With index >= 0 it also stores where the hub's ledger
	// holds the receipt, as SetRecordedIndex does, in the same write: a
	// different index stored already fails it with ErrConflict and it
	// changes nothing. A negative index leaves the index as it is.
	MarkRecorded(ctx context.Context, id string, receipt []byte, at time.Time, index int64) error

	// SetRecordedIndex stores where the hub's ledger holds envelope id's
	// recording receipt. It is set once: a repeat with the same index is
	// a no-op returning nil, a different index fails with ErrConflict and
	// leaves the first. It fails with ErrNotFound for an unknown id and
	// ErrInvalid for an invalid id or a negative index.
	SetRecordedIndex(ctx context.Context, id string, index int64) error

	// SetLastError records code, the last submission error of envelope
	// id ("" clears it); later calls overwrite it. code is an error code,
	// never payload data (see [ValidateErrorCode]), else ErrInvalid. It
	// fails with ErrNotFound for an unknown id.
	SetLastError(ctx context.Context, id, code string) error

	// GetOutgoing returns the outbox entry with that ID, or ErrNotFound.
	GetOutgoing(ctx context.Context, id string) (Outgoing, error)

	// ListOutgoing returns up to limit (1..MaxListLimit, else ErrInvalid)
	// envelopes of the outbox with an ID greater than afterID ("" starts
	// at the beginning), ordered by ID (byte-wise). Pass the last ID of a
	// page to get the next one; an empty page means the end.
	ListOutgoing(ctx context.Context, afterID string, limit int) ([]Outgoing, error)

	// OutgoingCounts returns how many envelopes the outbox holds, how
	// many of them are accepted and how many recorded.
	OutgoingCounts(ctx context.Context) (total, accepted, recorded int64, err error)

	// Cursor returns the value of the named cursor, 0 if it was never
	// set. name must be a valid identifier ([ValidateID]), else
	// ErrInvalid.
	Cursor(ctx context.Context, name string) (uint64, error)

	// SetCursor durably sets the named cursor to v, overwriting any
	// earlier value; every uint64 round-trips. name must be a valid
	// identifier, else ErrInvalid.
	SetCursor(ctx context.Context, name string, v uint64) error
}

// NodeStore is everything a node keeps durably: its inbox and its outbox.
// Close (of the Inbox) closes both.
type NodeStore interface {
	Inbox
	Outbox
}

// Vacuumer is implemented by stores that can give the space of erased
// records back and overwrite or drop what the database still keeps of
// them (old pages, write-ahead log copies). A tenant's decommission calls
// it after erasing every record of the tenant.
type Vacuumer interface {
	// Vacuum runs the store's reclamation; it may take long and, for some
	// stores, block writers meanwhile.
	Vacuum(ctx context.Context) error
}
