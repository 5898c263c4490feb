package envelope

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package that is caused by
// bad input wraps at least one of them (test with errors.Is); the wrapping
// message names the offending field or region but never contains payload
// bytes.
var (
	// ErrMalformed reports a header or preamble that does not follow the
	// format: wrong length, bad field value, trailing bytes, etc.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrUnsupportedSuite reports an HPKE KEM, KDF or AEAD identifier (or a
	// key of such a KEM) that this implementation refuses.
	ErrUnsupportedSuite = errors.New("envelope: unsupported suite")
	// ErrBadSignature reports a header signature that does not verify.
	ErrBadSignature = errors.New("envelope: bad signature")
	// ErrDigestMismatch reports a ciphertext stream whose SHA-256 differs
	// from Header.CiphertextDigest.
	ErrDigestMismatch = errors.New("envelope: ciphertext digest mismatch")
	// ErrSizeMismatch reports a ciphertext stream whose length differs from
	// Header.CiphertextSize (too short or trailing bytes).
	ErrSizeMismatch = errors.New("envelope: ciphertext size mismatch")
	// ErrDecrypt reports a chunk that fails HPKE authentication: tampered,
	// reordered, or sealed to another key or another envelope identity.
	ErrDecrypt = errors.New("envelope: decryption failed")
	// ErrTruncated reports a stream that ended early. Truncated ciphertext
	// errors also match ErrSizeMismatch.
	ErrTruncated = errors.New("envelope: truncated")
	// ErrBadParticipantID reports a participant ID or local government code
	// that is not well formed or whose check digit is wrong.
	ErrBadParticipantID = errors.New("envelope: bad participant id")
	// ErrBadKey reports a key of the wrong type or curve, or a key encoding
	// that does not parse.
	ErrBadKey = errors.New("envelope: bad key")
)

// detailError carries a complete human-readable message and the sentinels
// it matches. It exists so that an error can match several sentinels (for
// example ErrMalformed and ErrBadParticipantID) without repeating their
// texts in the message.
type detailError struct {
	msg  string
	errs []error
}

func (e *detailError) Error() string   { return e.msg }
func (e *detailError) Unwrap() []error { return e.errs }

// headerFieldError returns an ErrMalformed error for a header field. extra
// sentinels are matched too.
func headerFieldError(field, problem string, extra ...error) error {
	return &detailError{
		msg:  fmt.Sprintf("%v header: field %s: %s", ErrMalformed, field, problem),
		errs: append([]error{ErrMalformed}, extra...),
	}
}

// quote renders an untrusted header value for an error message, bounded so
// that a hostile input cannot blow up logs. Header values never hold
// personal data, so echoing them is safe; payload bytes are never passed
// here.
func quote(s string) string {
	const max = 72
	if len(s) > max {
		return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
