package ledger

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error this package returns for bad input, bad
// state on disk or a failed proof wraps at least one of them (test with
// errors.Is); the message around it names the file, record and byte offset
// or the field that is wrong.
var (
	// ErrCorrupt reports a log directory whose files were damaged or
	// tampered with: a CRC mismatch, a missing, reordered or edited record,
	// a stored hash or checkpoint root that does not match the entries, a
	// dropped checkpoint, or a file from another log.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrForeign reports a file, backup or checkpoint that belongs to
	// another log (other origin or other log identity). Errors wrapping it
	// from Open, VerifyDir and CheckBackup also wrap ErrCorrupt.
	ErrForeign = errors.New("ledger: foreign log")
	// ErrRollback reports a checkpoint or copy that is smaller than one
	// already seen: the log was truncated or rolled back.
	ErrRollback = errors.New("ledger: rollback")
	// ErrFork reports two views of the log that cannot both be true: two
	// checkpoints of the same size with different roots, a consistency
	// proof that fails, or a copy whose entries differ from the original.
	ErrFork = errors.New("ledger: fork")
	// ErrBadProof reports an inclusion or consistency proof that does not
	// verify.
	ErrBadProof = errors.New("ledger: bad proof")
	// ErrBadCheckpoint reports a checkpoint that is malformed, too large,
	// or not signed by a trusted key.
	ErrBadCheckpoint = errors.New("ledger: bad checkpoint")
	// ErrBadBundle reports a proof bundle that is malformed, too large or
	// not in canonical form.
	ErrBadBundle = errors.New("ledger: bad bundle")
	// ErrTooLarge reports an entry larger than MaxEntrySize or a batch
	// with more than MaxBatchEntries entries.
	ErrTooLarge = errors.New("ledger: too large")
	// ErrRange reports an index or tree size outside the log.
	ErrRange = errors.New("ledger: out of range")
	// ErrReadOnly reports a write to a log opened without a Signer.
	ErrReadOnly = errors.New("ledger: read-only")
	// ErrClosed reports a call on a closed Log.
	ErrClosed = errors.New("ledger: closed")
	// ErrFailed reports a log that stopped accepting writes after a write
	// or sync error; the state on disk is recovered by closing the Log and
	// opening the directory again.
	ErrFailed = errors.New("ledger: failed")
	// ErrLocked reports a directory already opened for writing by another
	// Log, in this process or another.
	ErrLocked = errors.New("ledger: locked")
)

// Kind classifies a Problem found in a log directory.
type Kind string

// Kinds of Problem. Each tampering or damage pattern has its own kind so
// that reports and tests can tell them apart.
const (
	KindMissing   Kind = "missing"    // a file of the log is missing
	KindMalformed Kind = "malformed"  // bad header or record framing, bad checkpoint text
	KindForeign   Kind = "foreign"    // a file belongs to another log
	KindCRC       Kind = "crc"        // a record's CRC does not match: edited or damaged bytes
	KindDeleted   Kind = "deleted"    // records are missing from the middle of the file
	KindReordered Kind = "reordered"  // records are in the wrong order
	KindIndex     Kind = "index"      // a record carries an unexpected index (duplicated or inserted)
	KindHash      Kind = "hash"       // a stored hash does not match the entries
	KindTruncated Kind = "truncated"  // a file ends before data a checkpoint covers
	KindSignature Kind = "signature"  // a checkpoint's signature does not verify
	KindRoot      Kind = "root"       // a checkpoint's root does not match the entries
	KindSequence  Kind = "sequence"   // checkpoints not increasing, or with another origin
	KindDropped   Kind = "dropped"    // the head names a checkpoint the file no longer holds
	KindHead      Kind = "head"       // the head does not match the last checkpoint
	KindTorn      Kind = "torn"       // recoverable: an incomplete tail left by a crash
	KindStaleHead Kind = "stale-head" // recoverable: a crash between a checkpoint and its head update
	KindMismatch  Kind = "mismatch"   // CheckBackup: a copy's record differs from the live log's at the same index
)

// A Problem is one defect found in a log directory by Open, VerifyDir or
// CheckBackup.
type Problem struct {
	Kind   Kind   // what kind of defect
	File   string // "entries", "hashes", "checkpoints" or "head" (or a backup-relative name)
	Index  int64  // record, hash slot or checkpoint number; -1 when the problem is about the whole file
	Offset int64  // byte offset in File; -1 when not applicable
	Detail string // what is wrong, e.g. "CRC mismatch"
}

// String formats p as "entries record 41 at offset 9102: CRC mismatch".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Index >= 0 {
		noun := "record"
		switch p.File {
		case fileHashes:
			noun = "slot"
		case fileCheckpoints:
			noun = "checkpoint"
		}
		fmt.Fprintf(&b, " %s %d", noun, p.Index)
	}
	if p.Offset >= 0 {
		fmt.Fprintf(&b, " at offset %d", p.Offset)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	return b.String()
}

// problemsError is the error returned for a directory with problems. Its
// message is the first problem (prefixed "ledger: ") and a count of the
// others; it wraps ErrCorrupt and, for foreign files, ErrForeign.
type problemsError struct {
	prefix   string
	problems []Problem
	extra    []error // more sentinels to match
}

func (e *problemsError) Error() string {
	msg := "ledger: " + e.prefix + e.problems[0].String()
	if n := len(e.problems) - 1; n == 1 {
		msg += " (and 1 more problem)"
	} else if n > 1 {
		msg += fmt.Sprintf(" (and %d more problems)", n)
	}
	return msg
}

func (e *problemsError) Unwrap() []error {
	errs := []error{ErrCorrupt}
	if e.problems[0].Kind == KindForeign {
		errs = append(errs, ErrForeign)
	}
	return append(errs, e.extra...)
}

// Problems returns the problems carried by an error from Open, VerifyDir
// or CheckBackup, or nil if err carries none.
func Problems(err error) []Problem {
	var pe *problemsError
	if errors.As(err, &pe) {
		return append([]Problem(nil), pe.problems...)
	}
	return nil
}

// multiError is an error with a complete message that matches several
// sentinels.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string   { return e.msg }
func (e *multiError) Unwrap() []error { return e.errs }
