// Package scan implements the malware check required before a data user may
// open a received payload (総務省告示第151号 第4 7(4)).
//
// A payload is scanned by a Scanner (Clamd talks to a ClamAV clamd daemon).
// The verdict is recorded durably in a Ledger keyed by (tenant, record ID).
// A record with no verdict is Pending and must not be served; a record with
// an infected verdict is Quarantined: it is kept, flagged and never served.
// Only a Clean record may be opened.
//
// Any error from a Scanner means "no verdict": the caller keeps the payload
// unscanned (Pending, not clean) and retries later.
package scan

import (
	"context"
	"io"
)

// Verdict is the result of one scan.
type Verdict struct {
	// Clean is true when the scanner found nothing.
	Clean bool
	// Signature is the name reported by the scanner when infected (for
	// example "Taxlink.Test.Signature-1.UNOFFICIAL"); empty when Clean.
	// It is printable ASCII, at most 200 bytes, and never payload bytes.
	Signature string
	// Scanner is the scanner's version string (from clamd's VERSION
	// command), kept for the record.
	Scanner string
}

// Scanner scans a stream. Implementations: Clamd.
//
// Scan reads r to its end and returns the verdict. A non-nil error means no
// verdict was reached (the returned Verdict is the zero value and must not
// be taken as clean).
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (Verdict, error)
}

// Signature and identifier limits enforced at the package boundary.
const (
	maxIdentLen     = 256 // tenant and record ID
	maxSignatureLen = 200 // signature names
	maxScannerLen   = 256 // scanner version strings
)

// isPrintableASCII reports whether every byte of s is in 0x20..0x7e.
func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validIdent reports whether s is an acceptable tenant or record ID:
// non-empty printable ASCII of at most 256 bytes.
func validIdent(s string) bool {
	return s != "" && len(s) <= maxIdentLen && isPrintableASCII(s)
}

// validSignature reports whether s is an acceptable signature name:
// non-empty printable ASCII of at most 200 bytes without leading or
// trailing spaces.
func validSignature(s string) bool {
	return s != "" && len(s) <= maxSignatureLen && isPrintableASCII(s) &&
		s[0] != ' ' && s[len(s)-1] != ' '
}

// validScanner reports whether s is an acceptable scanner version string:
// printable ASCII of at most 256 bytes (may be empty).
func validScanner(s string) bool {
	return len(s) <= maxScannerLen && isPrintableASCII(s)
}
