// Package receipt implements taxlink's signed receipts: the hub's
// acceptance receipt (Accepted), issued once an envelope is in the hub's
// durable log, and the recipient node's recording receipt (Recorded),
// issued once the node has stored it.
//
// A receipt identifies the envelope by its ID, routing fields and the
// SHA-256 of its canonical header bytes; since the header binds the
// ciphertext digest, a receipt commits to the exact payload without
// containing any of it. The signed form is a canonical binary encoding
// (SignedBytes); the transport form is strict JSON (MarshalJSON, Parse).
// Both are specified byte by byte in docs/format.md.
package receipt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"taxlink/internal/envelope"
)

// Sentinel errors; every error caused by bad input wraps one of them.
var (
	// ErrMalformed reports a receipt whose fields or JSON do not follow the
	// format. Errors for participant IDs also wrap
	// envelope.ErrBadParticipantID.
	ErrMalformed = errors.New("receipt: malformed")
	// ErrBadSignature reports a receipt that does not verify. Verify also
	// returns it (together with ErrMalformed) for receipts whose fields are
	// invalid, so that checking for ErrBadSignature alone is safe.
	ErrBadSignature = errors.New("receipt: bad signature")
	// ErrBadKey reports a signing or verification key that is not ECDSA
	// P-256.
	ErrBadKey = errors.New("receipt: bad key")
	// ErrHeaderMismatch reports a receipt that does not refer to the given
	// envelope header.
	ErrHeaderMismatch = errors.New("receipt: header mismatch")
)

// Kind says what a receipt attests.
type Kind uint8

const (
	// Accepted: the hub has appended the envelope to its durable log. Issuer
	// must be a hub: participant.
	Accepted Kind = 1
	// Recorded: the node hosting the recipient has stored the envelope.
	// Issuer is that node's participant ID (the recipient itself when
	// self-hosted, its outsourcer otherwise) and must not be a hub:
	// participant; which node hosts a recipient is checked by the verifier
	// against the directory.
	Recorded Kind = 2
)

// String returns "accepted", "recorded", or "Kind(n)" for other values.
func (k Kind) String() string {
	switch k {
	case Accepted:
		return "accepted"
	case Recorded:
		return "recorded"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Format constants.
const (
	// MaxJSONSize is the largest JSON receipt Parse accepts. Real receipts
	// are about 500 bytes.
	MaxJSONSize = 8 << 10
	// MaxSignatureSize bounds Signature; a DER ECDSA P-256 signature is at
	// most 72 bytes.
	MaxSignatureSize = 80

	signedMagic    = "TLR1"
	signatureLabel = "taxlink/receipt/v1"
	// timeLayout is the only accepted JSON time form: UTC, exactly three
	// fractional digits, so that one instant has one spelling.
	timeLayout = "2006-01-02T15:04:05.000Z"
	// maxTimeMs is 9999-12-31T23:59:59.999Z, the last instant timeLayout
	// can express.
	maxTimeMs = 253402300799999
)

// Receipt is a signed statement by Issuer that an envelope reached a
// stage. All fields are mandatory; Validate states the rules.
type Receipt struct {
	Kind Kind
	// EnvelopeID, Type, Sender and Recipient copy the envelope header and
	// follow the same rules (envelope.ValidID, envelope.ValidType,
	// envelope.ValidParticipantID).
	EnvelopeID, Type, Sender, Recipient string
	// HeaderDigest is HeaderDigest(headerBytes) of the envelope's canonical
	// header; it must not be all zero.
	HeaderDigest [32]byte
	// Issuer is the participant ID of the signer: a hub: ID for Accepted,
	// the ID of the node that recorded (the recipient when self-hosted, an
	// outsourcer's node otherwise) for Recorded.
	Issuer string
	// Time is when the issuer reached the stage, with millisecond precision
	// in 1970..9999. Parse returns it in UTC.
	Time time.Time
	// Seq is the issuer's sequence number: the acceptance sequence in the
	// hub's durable log, or the node's row sequence. It lets an auditor
	// detect gaps in an issuer's receipts.
	Seq uint64
	// Signature is the issuer's ASN.1 DER ECDSA P-256 signature over
	// SHA-256("taxlink/receipt/v1" || 0x00 || SignedBytes()), 1..80 bytes.
	// Validate does not require it; Verify, MarshalJSON and Parse do.
	Signature []byte
}

// HeaderDigest returns the SHA-256 of an envelope's canonical header bytes,
// the value receipts carry in HeaderDigest.
func HeaderDigest(headerBytes []byte) [32]byte {
	return sha256.Sum256(headerBytes)
}

// New returns an unsigned receipt of the given kind for the envelope whose
// canonical header bytes are headerBytes (parsed with envelope.ParseHeader,
// so they must be valid), issued by issuer at t (converted to UTC and
// truncated to the millisecond) with sequence number seq. The result is
// validated; call Sign next.
func New(kind Kind, headerBytes []byte, issuer string, t time.Time, seq uint64) (*Receipt, error) {
	h, err := envelope.ParseHeader(headerBytes)
	if err != nil {
		return nil, fmt.Errorf("receipt: new: %w", err)
	}
	r := &Receipt{
		Kind:         kind,
		EnvelopeID:   h.ID,
		Type:         h.Type,
		Sender:       h.Sender,
		Recipient:    h.Recipient,
		HeaderDigest: HeaderDigest(headerBytes),
		Issuer:       issuer,
		Time:         t.UTC().Truncate(time.Millisecond),
		Seq:          seq,
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// fieldError returns an ErrMalformed error naming a field; extra sentinels
// are wrapped too.
func fieldError(field, problem string, extra ...error) error {
	return &detailError{
		msg:  fmt.Sprintf("%v: field %s: %s", ErrMalformed, field, problem),
		errs: append([]error{ErrMalformed}, extra...),
	}
}

// detailError carries a full message and the sentinels it matches, so
// that one error can match several sentinels without repeating their text.
type detailError struct {
	msg  string
	errs []error
}

func (e *detailError) Error() string   { return e.msg }
func (e *detailError) Unwrap() []error { return e.errs }

// quote renders an untrusted value for an error message, bounded in size.
func quote(s string) string {
	const max = 72
	if len(s) > max {
		return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// Validate reports whether every field but Signature follows the rules,
// naming the first offending field. Errors wrap ErrMalformed (and
// envelope.ErrBadParticipantID for participant IDs).
func (r *Receipt) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil receipt", ErrMalformed)
	}
	if r.Kind != Accepted && r.Kind != Recorded {
		return fieldError("kind", fmt.Sprintf("%d is neither accepted (1) nor recorded (2)", r.Kind))
	}
	if envelope.ValidID(r.EnvelopeID) != nil {
		return fieldError("envelope_id", fmt.Sprintf("%s is not a ULID (26 chars 0-9A-HJKMNP-TV-Z, first 0-7)", quote(r.EnvelopeID)))
	}
	if envelope.ValidType(r.Type) != nil {
		return fieldError("type", fmt.Sprintf("%s does not match ^[a-z][a-z0-9-]{0,63}$", quote(r.Type)))
	}
	for _, f := range []struct{ name, v string }{{"sender", r.Sender}, {"recipient", r.Recipient}, {"issuer", r.Issuer}} {
		if err := envelope.ValidParticipantID(f.v); err != nil {
			return &detailError{
				msg:  fmt.Sprintf("%v: field %s: %v", ErrMalformed, f.name, err),
				errs: []error{ErrMalformed, err},
			}
		}
	}
	// Who may issue which kind is part of the format, so that a verifier
	// cannot be fooled by, say, a node signing an acceptance in the hub's
	// name with its own valid key.
	switch {
	case r.Kind == Accepted && envelope.ParticipantKind(r.Issuer) != envelope.KindHub:
		return fieldError("issuer", fmt.Sprintf("accepted receipts are issued by a hub: participant, not %s", r.Issuer))
	case r.Kind == Recorded && envelope.ParticipantKind(r.Issuer) == envelope.KindHub:
		// The node that recorded signs: the recipient itself when
		// self-hosted, its outsourcer's node otherwise. Which node hosts the
		// recipient is the directory's to say; the verifier checks it.
		return fieldError("issuer", fmt.Sprintf("recorded receipts are issued by the recording node, not the hub %s", r.Issuer))
	}
	if r.HeaderDigest == ([32]byte{}) {
		return fieldError("header_digest", "all zero (not set?)")
	}
	if r.Time.Nanosecond()%int(time.Millisecond) != 0 {
		return fieldError("time", "has sub-millisecond precision (truncate to time.Millisecond)")
	}
	if ms := r.Time.UnixMilli(); ms < 0 || ms > maxTimeMs {
		return fieldError("time", fmt.Sprintf("%d ms is outside 1970-01-01..9999-12-31", ms))
	}
	return nil
}

// SignedBytes validates r and returns the canonical encoding that is signed
// (all integers big-endian):
//
//	"TLR1"                  4 bytes magic
//	u8 Kind                 1 accepted, 2 recorded
//	u8 len, EnvelopeID      len = 26
//	u8 len, Type
//	u8 len, Sender
//	u8 len, Recipient
//	u8 len, Issuer
//	i64 Time                Unix milliseconds
//	u64 Seq
//	32 bytes HeaderDigest
//
// Signature is not part of it.
func (r *Receipt) SignedBytes() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 4+1+5+len(r.EnvelopeID)+len(r.Type)+len(r.Sender)+len(r.Recipient)+len(r.Issuer)+8+8+32)
	b = append(b, signedMagic...)
	b = append(b, byte(r.Kind))
	for _, s := range []string{r.EnvelopeID, r.Type, r.Sender, r.Recipient, r.Issuer} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = append(b, r.HeaderDigest[:]...)
	return b, nil
}

// SignatureDigest returns SHA-256("taxlink/receipt/v1" || 0x00 ||
// signedBytes), the digest Sign signs and Verify checks.
func SignatureDigest(signedBytes []byte) [32]byte {
	d := sha256.New()
	d.Write([]byte(signatureLabel))
	d.Write([]byte{0})
	d.Write(signedBytes)
	var out [32]byte
	d.Sum(out[:0])
	return out
}

// Sign validates r and sets r.Signature to the issuer's signature made with
// s, which must hold an ECDSA P-256 key (ErrBadKey otherwise). The caller
// is responsible for s being the key of r.Issuer.
func (r *Receipt) Sign(s crypto.Signer) error {
	if s == nil {
		return fmt.Errorf("%w: nil signer", ErrBadKey)
	}
	if err := checkP256(s.Public()); err != nil {
		return err
	}
	sb, err := r.SignedBytes()
	if err != nil {
		return err
	}
	d := SignatureDigest(sb)
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return fmt.Errorf("receipt: sign: %w", err)
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return fmt.Errorf("receipt: sign: signer returned %d bytes, want a DER signature of 1..%d", len(sig), MaxSignatureSize)
	}
	r.Signature = sig
	return nil
}

// Verify checks r.Signature against r's fields with the issuer's public
// key. It returns nil only for a valid, correctly signed receipt; every
// failure wraps ErrBadSignature (with ErrMalformed if the fields are
// invalid, ErrBadKey if pub is not P-256). The caller is responsible for
// pub being the key of r.Issuer.
func (r *Receipt) Verify(pub *ecdsa.PublicKey) error {
	if err := checkP256(pub); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	sb, err := r.SignedBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(r.Signature) == 0 || len(r.Signature) > MaxSignatureSize {
		return fmt.Errorf("%w: signature length %d not in 1..%d", ErrBadSignature, len(r.Signature), MaxSignatureSize)
	}
	d := SignatureDigest(sb)
	if !ecdsa.VerifyASN1(pub, d[:], r.Signature) {
		return fmt.Errorf("%w: %s receipt seq %d for envelope %s does not verify with the given key", ErrBadSignature, r.Kind, r.Seq, r.EnvelopeID)
	}
	return nil
}

// MatchesHeader reports whether r refers to the envelope whose canonical
// header bytes are headerBytes: same header digest and same ID, type,
// sender and recipient. Errors wrap ErrHeaderMismatch, or ErrMalformed if
// headerBytes do not parse.
func (r *Receipt) MatchesHeader(headerBytes []byte) error {
	h, err := envelope.ParseHeader(headerBytes)
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	switch {
	case HeaderDigest(headerBytes) != r.HeaderDigest:
		return fmt.Errorf("%w: header_digest differs", ErrHeaderMismatch)
	case h.ID != r.EnvelopeID || h.Type != r.Type || h.Sender != r.Sender || h.Recipient != r.Recipient:
		// Unreachable for receipts made by New; catches hand-built ones.
		return fmt.Errorf("%w: envelope_id/type/sender/recipient differ from the header", ErrHeaderMismatch)
	}
	return nil
}

func checkP256(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil || k.Curve == nil {
		return fmt.Errorf("%w: key is %T, want *ecdsa.PublicKey on P-256", ErrBadKey, pub)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("%w: ECDSA key is on %s, want P-256", ErrBadKey, k.Curve.Params().Name)
	}
	return nil
}

// LedgerEntry returns the bytes the hub appends to its ledger for r: r's
// signed bytes with Seq set to zero (an acceptance receipt's Seq is the
// index of this very entry, so it cannot be part of it). To check that a
// receipt is in the ledger, verify the inclusion of r.LedgerEntry() at
// index r.Seq (acceptance) or at the index the hub reported with it
// (recording).
func (r *Receipt) LedgerEntry() ([]byte, error) {
	c := *r
	c.Seq = 0
	c.Signature = nil
	return c.SignedBytes()
}

// ParseLedgerEntry decodes an entry written by LedgerEntry, for
// authorization and display; it checks the encoding strictly but verifies
// no signature.
func ParseLedgerEntry(b []byte) (*Receipt, error) {
	bad := func(what string) (*Receipt, error) {
		return nil, fmt.Errorf("%w: ledger entry: %s", ErrMalformed, what)
	}
	if len(b) < 5 || string(b[:4]) != signedMagic {
		return bad("not a receipt entry")
	}
	r := &Receipt{Kind: Kind(b[4])}
	p := b[5:]
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		s := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return s, true
	}
	var ok bool
	for _, f := range []*string{&r.EnvelopeID, &r.Type, &r.Sender, &r.Recipient, &r.Issuer} {
		if *f, ok = str(); !ok {
			return bad("truncated")
		}
	}
	if len(p) != 8+8+32 {
		return bad("wrong length")
	}
	r.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(p[:8]))).UTC()
	r.Seq = binary.BigEndian.Uint64(p[8:16])
	copy(r.HeaderDigest[:], p[16:])
	again, err := r.SignedBytes()
	if err != nil || !bytes.Equal(again, b) {
		return bad("not canonical")
	}
	return r, nil
}

// VerifyFor checks that r is a receipt of kind issued by issuer for the
// envelope with header h (canonical bytes headerBytes), and that its
// signature verifies with pub: what a hub checks of a node's recording
// receipt and a node of the hub's acceptance.
func (r *Receipt) VerifyFor(kind Kind, h *envelope.Header, headerBytes []byte, issuer string, pub *ecdsa.PublicKey) error {
	switch {
	case r.Kind != kind:
		return fmt.Errorf("%w: a %s receipt, expected %s", ErrHeaderMismatch, r.Kind, kind)
	case r.EnvelopeID != h.ID || r.Recipient != h.Recipient || r.Sender != h.Sender || r.Type != h.Type:
		return fmt.Errorf("%w: the receipt names another envelope", ErrHeaderMismatch)
	case r.HeaderDigest != HeaderDigest(headerBytes):
		return fmt.Errorf("%w: the receipt carries another header digest", ErrHeaderMismatch)
	case r.Issuer != issuer:
		return fmt.Errorf("%w: issued by %s, expected %s", ErrHeaderMismatch, r.Issuer, issuer)
	}
	return r.Verify(pub)
}
