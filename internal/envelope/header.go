package envelope

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// Format limits.
const (
	// MaxHeaderSize is the largest canonical header accepted, in bytes.
	// Real headers are about 1.3 KB with MLKEM768-P256 and 0.2 KB with
	// DHKEM-P256.
	MaxHeaderSize = 4096
	// MinChunkSize and MaxChunkSize bound Header.ChunkSize. The lower bound
	// keeps the per-chunk tag overhead small; the upper bound caps the memory
	// a receiver must hold for one chunk.
	MinChunkSize = 1024
	MaxChunkSize = 1 << 20
	// DefaultChunkSize is used by Seal when Header.ChunkSize is zero.
	DefaultChunkSize = 64 << 10
	// TagSize is the AES-256-GCM tag appended to every sealed chunk.
	TagSize = 16
	// MaxPayloadSize is the largest plaintext the format admits (64 GiB).
	// It keeps every size computation far from uint64 overflow; services
	// should enforce their own, much smaller, limits on PayloadSize.
	MaxPayloadSize uint64 = 1 << 36

	// maxCreatedMs is 9999-12-31T23:59:59.999Z: timestamps beyond it have
	// no RFC 3339 rendering, and negative ones make no sense for new mail.
	maxCreatedMs = 253402300799999
)

// headerMagic starts every canonical header; the trailing digit is the
// format version.
const headerMagic = "TLH1"

// Header is the envelope header. It is signed by the sender and read by the
// hub for routing, so it must never hold personal data: only identifiers of
// organisations, the notification type and sizes. All fields are
// mandatory; Validate states the exact rules.
type Header struct {
	// ID is the notification ULID: 26 characters of uppercase Crockford
	// base32 (0-9A-HJKMNP-TV-Z), the first one 0-7.
	ID string
	// Type is the notification type, ^[a-z][a-z0-9-]{0,63}$.
	Type string
	// Sender and Recipient are participant IDs (see ValidParticipantID).
	Sender    string
	Recipient string
	// Created is the creation time with millisecond precision, encoded as
	// Unix milliseconds in 1970..9999; ParseHeader returns it in UTC.
	Created time.Time
	// ContentType is the payload media type without parameters, e.g.
	// "application/xml": lowercase type "/" subtype, each
	// [a-z0-9][a-z0-9!#$&^_.+-]{0,62}.
	ContentType string
	// KeyID names the recipient sealing key, ^[A-Za-z0-9._-]{1,64}$.
	KeyID string
	// KEM, KDF and AEAD are the HPKE suite identifiers (see KEMMLKEM768P256
	// and friends).
	KEM, KDF, AEAD uint16
	// Enc is the HPKE encapsulated key; its length is fixed by the KEM
	// (1153 bytes for MLKEM768-P256, 65 for DHKEM-P256).
	Enc []byte
	// ChunkSize is the plaintext size of every chunk but the last,
	// MinChunkSize..MaxChunkSize.
	ChunkSize uint32
	// PayloadSize is the plaintext size, at most MaxPayloadSize.
	PayloadSize uint64
	// CiphertextSize must equal PayloadSize + TagSize*max(1,
	// ceil(PayloadSize/ChunkSize)).
	CiphertextSize uint64
	// CiphertextDigest is the SHA-256 of the whole ciphertext stream. It lets
	// the hub and nodes check what they store without being able to open it,
	// and makes the sender's signature cover the payload.
	CiphertextDigest [32]byte
}

// CiphertextSizeFor returns the ciphertext size of a payload of
// payloadSize bytes sealed in chunks of chunkSize bytes: one TagSize tag
// per chunk, and one (empty) chunk for an empty payload. It fails with
// ErrMalformed if either size is out of range.
func CiphertextSizeFor(payloadSize uint64, chunkSize uint32) (uint64, error) {
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return 0, headerFieldError("chunk_size", fmt.Sprintf("%d is not in %d..%d", chunkSize, MinChunkSize, MaxChunkSize))
	}
	if payloadSize > MaxPayloadSize {
		return 0, headerFieldError("payload_size", fmt.Sprintf("%d exceeds %d", payloadSize, MaxPayloadSize))
	}
	return payloadSize + TagSize*chunkCount(payloadSize, chunkSize), nil
}

// chunkCount is max(1, ceil(payloadSize/chunkSize)); callers have checked
// the ranges.
func chunkCount(payloadSize uint64, chunkSize uint32) uint64 {
	n := (payloadSize + uint64(chunkSize) - 1) / uint64(chunkSize)
	return max(n, 1)
}

// Validate reports whether every field of h follows the format rules,
// returning an error that names the first offending field. It wraps
// ErrMalformed, or ErrUnsupportedSuite for suite identifiers, and also
// ErrBadParticipantID for Sender and Recipient.
func (h *Header) Validate() error {
	if h == nil {
		return fmt.Errorf("%w header: nil", ErrMalformed)
	}
	if err := h.validateIdentity(); err != nil {
		return err
	}
	if err := validateSuite(h.KEM, h.KDF, h.AEAD); err != nil {
		return err
	}
	_, encLen, _ := kemFor(h.KEM)
	if len(h.Enc) != encLen {
		return headerFieldError("enc", fmt.Sprintf("length %d, kem 0x%04x requires %d", len(h.Enc), h.KEM, encLen))
	}
	want, err := CiphertextSizeFor(h.PayloadSize, h.ChunkSize)
	if err != nil {
		return err
	}
	if h.CiphertextSize != want {
		return headerFieldError("ciphertext_size", fmt.Sprintf("%d, expected %d for payload_size %d and chunk_size %d",
			h.CiphertextSize, want, h.PayloadSize, h.ChunkSize))
	}
	if h.CiphertextDigest == ([32]byte{}) {
		// An all-zero digest is what a caller gets by forgetting to seal;
		// no real stream hashes to it.
		return headerFieldError("ciphertext_digest", "all zero (payload not sealed?)")
	}
	return nil
}

// validateIdentity checks the fields the caller sets before sealing: the
// ones that identify and describe the notification.
func (h *Header) validateIdentity() error {
	if !isULID(h.ID) {
		return headerFieldError("id", fmt.Sprintf("%s is not a ULID (26 chars 0-9A-HJKMNP-TV-Z, first 0-7)", quote(h.ID)))
	}
	if !isType(h.Type) {
		return headerFieldError("type", fmt.Sprintf("%s does not match ^[a-z][a-z0-9-]{0,63}$", quote(h.Type)))
	}
	if p := participantProblem(h.Sender); p != "" {
		return headerFieldError("sender", p, ErrBadParticipantID)
	}
	if p := participantProblem(h.Recipient); p != "" {
		return headerFieldError("recipient", p, ErrBadParticipantID)
	}
	if p := createdProblem(h.Created); p != "" {
		return headerFieldError("created", p)
	}
	if !isContentType(h.ContentType) {
		return headerFieldError("content_type", fmt.Sprintf("%s is not a lowercase type/subtype without parameters", quote(h.ContentType)))
	}
	if !isKeyID(h.KeyID) {
		return headerFieldError("key_id", fmt.Sprintf("%s does not match ^[A-Za-z0-9._-]{1,64}$", quote(h.KeyID)))
	}
	return nil
}

func validateSuite(kem, kdf, aead uint16) error {
	if _, _, err := kemFor(kem); err != nil {
		return fmt.Errorf("%w: header field kem: %s", ErrUnsupportedSuite, kemProblem(kem))
	}
	if kdf != KDFHKDFSHA256 {
		return fmt.Errorf("%w: header field kdf: 0x%04x (supported: 0x%04x HKDF-SHA256)", ErrUnsupportedSuite, kdf, KDFHKDFSHA256)
	}
	if aead != AEADAES256GCM {
		return fmt.Errorf("%w: header field aead: 0x%04x (supported: 0x%04x AES-256-GCM)", ErrUnsupportedSuite, aead, AEADAES256GCM)
	}
	return nil
}

// createdProblem returns "" if t can be encoded exactly, else why not.
// Sub-millisecond precision is refused rather than truncated so that the
// in-memory header always equals the signed one.
func createdProblem(t time.Time) string {
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		return "has sub-millisecond precision (truncate to time.Millisecond)"
	}
	if ms := t.UnixMilli(); ms < 0 || ms > maxCreatedMs {
		return fmt.Sprintf("%d ms is outside 1970-01-01..9999-12-31", ms)
	}
	return ""
}

// isULID matches 26 uppercase Crockford base32 characters with the first in
// 0-7 (larger values would overflow the 128-bit ULID).
func isULID(s string) bool {
	if len(s) != 26 || s[0] < '0' || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U':
		default:
			return false
		}
	}
	return true
}

// isType matches ^[a-z][a-z0-9-]{0,63}$.
func isType(s string) bool {
	if len(s) < 1 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isContentType matches
// ^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$,
// the lowercase RFC 6838 restricted-name form, so that one media type has
// exactly one spelling.
func isContentType(s string) bool {
	typ, sub, ok := bytes.Cut([]byte(s), []byte("/"))
	return ok && isRestrictedName(typ) && isRestrictedName(sub)
}

func isRestrictedName(b []byte) bool {
	if len(b) < 1 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && bytes.IndexByte([]byte("!#$&^_.+-"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isKeyID matches ^[A-Za-z0-9._-]{1,64}$.
func isKeyID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MarshalBinary validates h and returns its canonical encoding (all
// integers big-endian):
//
//	"TLH1"                          4 bytes magic
//	u8 len, ID                      len = 26
//	u8 len, Type                    1..64
//	u8 len, Sender                  participant ID
//	u8 len, Recipient               participant ID
//	i64 Created                     Unix milliseconds
//	u8 len, ContentType             3..127
//	u8 len, KeyID                   1..64
//	u16 KEM, u16 KDF, u16 AEAD
//	u16 len, Enc                    len fixed by KEM
//	u32 ChunkSize
//	u64 PayloadSize
//	u64 CiphertextSize
//	32 bytes CiphertextDigest
//
// The result is at most MaxHeaderSize bytes and is what Sign signs.
func (h *Header) MarshalBinary() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256+len(h.Enc))
	b = append(b, headerMagic...)
	for _, s := range []string{h.ID, h.Type, h.Sender, h.Recipient} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixMilli()))
	for _, s := range []string{h.ContentType, h.KeyID} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint16(b, h.KEM)
	b = binary.BigEndian.AppendUint16(b, h.KDF)
	b = binary.BigEndian.AppendUint16(b, h.AEAD)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Enc)))
	b = append(b, h.Enc...)
	b = binary.BigEndian.AppendUint32(b, h.ChunkSize)
	b = binary.BigEndian.AppendUint64(b, h.PayloadSize)
	b = binary.BigEndian.AppendUint64(b, h.CiphertextSize)
	b = append(b, h.CiphertextDigest[:]...)
	if len(b) > MaxHeaderSize {
		// Unreachable with the current field limits; kept so that a future
		// field cannot silently produce headers that ParseHeader refuses.
		return nil, fmt.Errorf("%w header: %d bytes exceeds %d", ErrMalformed, len(b), MaxHeaderSize)
	}
	return b, nil
}

// UnmarshalBinary replaces *h with the header parsed from b by ParseHeader.
// On error *h is left unchanged.
func (h *Header) UnmarshalBinary(b []byte) error {
	p, err := ParseHeader(b)
	if err != nil {
		return err
	}
	*h = *p
	return nil
}

// ParseHeader parses a canonical header as produced by MarshalBinary. It is
// strict: at most MaxHeaderSize bytes, exact lengths, no trailing bytes,
// and every field validated as by Validate (including the CiphertextSize
// consistency). Whatever it accepts re-marshals to exactly b. The returned
// header does not alias b.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) > MaxHeaderSize {
		return nil, fmt.Errorf("%w header: %d bytes exceeds %d", ErrMalformed, len(b), MaxHeaderSize)
	}
	d := decoder{b: b}
	if magic := d.bytes("magic", len(headerMagic)); d.err == nil && string(magic) != headerMagic {
		return nil, headerFieldError("magic", fmt.Sprintf("%q, want %q", magic, headerMagic))
	}
	h := &Header{
		ID:        d.str8("id"),
		Type:      d.str8("type"),
		Sender:    d.str8("sender"),
		Recipient: d.str8("recipient"),
	}
	created := int64(d.u64("created"))
	h.ContentType = d.str8("content_type")
	h.KeyID = d.str8("key_id")
	h.KEM = d.u16("kem")
	h.KDF = d.u16("kdf")
	h.AEAD = d.u16("aead")
	h.Enc = bytes.Clone(d.bytes("enc", int(d.u16("enc length"))))
	h.ChunkSize = d.u32("chunk_size")
	h.PayloadSize = d.u64("payload_size")
	h.CiphertextSize = d.u64("ciphertext_size")
	copy(h.CiphertextDigest[:], d.bytes("ciphertext_digest", 32))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w header: %d trailing bytes", ErrMalformed, len(d.b))
	}
	// Range-check before converting so that out-of-range values are
	// reported as such rather than as whatever time.UnixMilli makes of them.
	if created < 0 || created > maxCreatedMs {
		return nil, headerFieldError("created", fmt.Sprintf("%d ms is outside 1970-01-01..9999-12-31", created))
	}
	h.Created = time.UnixMilli(created).UTC()
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// decoder reads big-endian fields from a byte slice, remembering the first
// error so that parsing code reads linearly.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = &detailError{
			msg:  fmt.Sprintf("%v header: field %s: truncated (need %d bytes, have %d)", ErrMalformed, field, n, len(d.b)),
			errs: []error{ErrMalformed, ErrTruncated},
		}
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str8(field string) string {
	n := d.bytes(field+" length", 1)
	if d.err != nil {
		return ""
	}
	return string(d.bytes(field, int(n[0])))
}

func (d *decoder) u16(field string) uint16 {
	if v := d.bytes(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if v := d.bytes(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if v := d.bytes(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// ValidID reports whether s is a valid envelope ID: a ULID of 26 uppercase
// Crockford base32 characters (0-9A-HJKMNP-TV-Z) whose first character is
// 0-7. Errors wrap ErrMalformed.
func ValidID(s string) error {
	if !isULID(s) {
		return fmt.Errorf("%w id: %s is not a ULID (26 chars 0-9A-HJKMNP-TV-Z, first 0-7)", ErrMalformed, quote(s))
	}
	return nil
}

// ValidType reports whether s is a valid notification type,
// ^[a-z][a-z0-9-]{0,63}$. Errors wrap ErrMalformed.
func ValidType(s string) error {
	if !isType(s) {
		return fmt.Errorf("%w type: %s does not match ^[a-z][a-z0-9-]{0,63}$", ErrMalformed, quote(s))
	}
	return nil
}
