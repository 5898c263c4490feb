// Package store defines a node's inbox: the durable, idempotent record of
// every envelope the node has received, kept per tenant (recipient).
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

// Sentinel errors. Errors returned by an [Inbox] wrap at most one of them;
// test with errors.Is.
var (
	// ErrNotFound means no record with that ID exists for that recipient.
	// A record that belongs to another tenant is reported as not found.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a record with that ID exists with different
	// header bytes; the stored record is unchanged.
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

	// Close releases the store. Later calls fail with ErrClosed, as do
	// reads from ciphertext readers still open; a second Close returns
	// ErrClosed.
	Close() error
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
