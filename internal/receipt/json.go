package receipt

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// jsonReceipt fixes the member order of MarshalJSON's output.
type jsonReceipt struct {
	Kind         string `json:"kind"`
	EnvelopeID   string `json:"envelope_id"`
	Type         string `json:"type"`
	Sender       string `json:"sender"`
	Recipient    string `json:"recipient"`
	HeaderDigest string `json:"header_digest"`
	Issuer       string `json:"issuer"`
	Time         string `json:"time"`
	Seq          uint64 `json:"seq"`
	Signature    string `json:"signature"`
}

// jsonFields lists every member Parse requires, in MarshalJSON order.
var jsonFields = [...]string{"kind", "envelope_id", "type", "sender", "recipient", "header_digest", "issuer", "time", "seq", "signature"}

// MarshalJSON returns the transport form of a valid, signed receipt:
//
//	{"kind":"accepted"|"recorded","envelope_id":…,"type":…,"sender":…,
//	 "recipient":…,"header_digest":<64 lowercase hex>,"issuer":…,
//	 "time":"YYYY-MM-DDTHH:MM:SS.mmmZ","seq":<decimal>,"signature":<base64 std, padded>}
//
// with no insignificant whitespace, members in that order. It fails with
// ErrMalformed if r is invalid or unsigned.
func (r *Receipt) MarshalJSON() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if len(r.Signature) == 0 || len(r.Signature) > MaxSignatureSize {
		return nil, fieldError("signature", fmt.Sprintf("length %d not in 1..%d (sign the receipt first)", len(r.Signature), MaxSignatureSize))
	}
	return json.Marshal(jsonReceipt{
		Kind:         r.Kind.String(),
		EnvelopeID:   r.EnvelopeID,
		Type:         r.Type,
		Sender:       r.Sender,
		Recipient:    r.Recipient,
		HeaderDigest: hex.EncodeToString(r.HeaderDigest[:]),
		Issuer:       r.Issuer,
		Time:         r.Time.UTC().Format(timeLayout),
		Seq:          r.Seq,
		Signature:    base64.StdEncoding.EncodeToString(r.Signature),
	})
}

// UnmarshalJSON replaces *r with Parse(b), so that receipts embedded in
// other JSON documents are parsed just as strictly. On error *r is left
// unchanged.
func (r *Receipt) UnmarshalJSON(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	*r = *p
	return nil
}

// Parse parses the JSON form produced by MarshalJSON. It is strict: at most
// MaxJSONSize bytes, a single object, every member present exactly once
// with the right JSON type (no null), no unknown members, no trailing data,
// canonical spellings for kind, header_digest, time and signature, and
// every field validated as by Validate. Errors wrap ErrMalformed and name
// the member. Parse does not verify the signature: call Verify with the
// issuer's key.
func Parse(b []byte) (*Receipt, error) {
	if len(b) > MaxJSONSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxJSONSize)
	}
	members, err := readObject(b)
	if err != nil {
		return nil, err
	}
	str := func(name string) (string, error) {
		raw := members[name]
		if len(raw) == 0 || raw[0] != '"' {
			return "", fieldError(name, "must be a JSON string")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fieldError(name, "must be a JSON string")
		}
		return s, nil
	}
	var s [len(jsonFields)]string
	for i, name := range jsonFields {
		if name == "seq" {
			continue
		}
		if s[i], err = str(name); err != nil {
			return nil, err
		}
	}
	kind, envID, typ, sender, recipient, digest, issuer, tm, sig := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[9]

	r := &Receipt{EnvelopeID: envID, Type: typ, Sender: sender, Recipient: recipient, Issuer: issuer}
	switch kind {
	case "accepted":
		r.Kind = Accepted
	case "recorded":
		r.Kind = Recorded
	default:
		return nil, fieldError("kind", fmt.Sprintf("%s is neither \"accepted\" nor \"recorded\"", quote(kind)))
	}
	// Lowercase only: hex.DecodeString also takes uppercase, which would
	// give one digest two spellings.
	if len(digest) != 64 || hex.EncodeToString(mustHex(digest)) != digest {
		return nil, fieldError("header_digest", fmt.Sprintf("%s is not 64 lowercase hex digits", quote(digest)))
	}
	copy(r.HeaderDigest[:], mustHex(digest))
	t, err := time.Parse(timeLayout, tm)
	if err != nil || t.Format(timeLayout) != tm {
		return nil, fieldError("time", fmt.Sprintf("%s is not of the form 2006-01-02T15:04:05.000Z", quote(tm)))
	}
	r.Time = t
	seqRaw := string(members["seq"])
	seq, err := strconv.ParseUint(seqRaw, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != seqRaw {
		return nil, fieldError("seq", fmt.Sprintf("%s is not a decimal integer in 0..2^64-1", quote(seqRaw)))
	}
	r.Seq = seq
	// Strict base64 and a re-encoding check: the decoder alone would skip
	// embedded newlines.
	sigBytes, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || base64.StdEncoding.EncodeToString(sigBytes) != sig {
		return nil, fieldError("signature", "is not canonical padded standard base64")
	}
	if len(sigBytes) == 0 || len(sigBytes) > MaxSignatureSize {
		return nil, fieldError("signature", fmt.Sprintf("length %d not in 1..%d", len(sigBytes), MaxSignatureSize))
	}
	r.Signature = sigBytes
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// mustHex decodes s or returns nil; callers compare the re-encoding.
func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

// readObject reads one JSON object whose members are all known, each
// present exactly once, and returns their raw values. encoding/json alone
// would accept duplicate members (last wins), missing members, null and
// case-insensitive names; all of these are refused here.
func readObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	members := make(map[string]json.RawMessage, len(jsonFields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: invalid JSON: %w", ErrMalformed, err)
		}
		name, _ := tok.(string)
		if !isField(name) {
			return nil, fmt.Errorf("%w: unknown member %s", ErrMalformed, quote(name))
		}
		if _, dup := members[name]; dup {
			return nil, fieldError(name, "duplicate member")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fieldError(name, fmt.Sprintf("invalid JSON value: %v", err))
		}
		members[name] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("%w: invalid JSON object end", ErrMalformed)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	for _, name := range jsonFields {
		if _, ok := members[name]; !ok {
			return nil, fieldError(name, "missing")
		}
	}
	return members, nil
}

func isField(name string) bool {
	for _, f := range jsonFields {
		if f == name {
			return true
		}
	}
	return false
}
