package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"taxlink/internal/envelope"
)

func testKey(t testing.TB, label string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("taxlink receipt test key/" + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testHeaderBytes returns canonical envelope header bytes without sealing:
// receipts only need the header.
func testHeaderBytes(t testing.TB) []byte {
	t.Helper()
	h := &envelope.Header{
		ID: "01JH8Z5V6Q3K4M7N8P9R0S1T2V", Type: "resident-tax-notice",
		Sender: "nta:e-tax", Recipient: "lg:130001",
		Created:     time.Date(2026, 5, 15, 9, 30, 0, 123_000_000, time.UTC),
		ContentType: "application/xml", KeyID: "lg-130001.2026-01",
		KEM: envelope.KEMDHKEMP256, KDF: envelope.KDFHKDFSHA256, AEAD: envelope.AEADAES256GCM,
		Enc: bytes.Repeat([]byte{4}, 65), ChunkSize: envelope.DefaultChunkSize,
		PayloadSize: 10, CiphertextSize: 26, CiphertextDigest: sha256.Sum256([]byte("ct")),
	}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testTime = time.Date(2026, 5, 15, 9, 30, 1, 456_000_000, time.UTC)

// signedReceipt returns a signed receipt of the given kind.
func signedReceipt(t testing.TB, kind Kind) (*Receipt, *ecdsa.PrivateKey) {
	t.Helper()
	issuer, key := "hub:main", testKey(t, "hub")
	if kind == Recorded {
		issuer, key = "lg:130001", testKey(t, "node")
	}
	r, err := New(kind, testHeaderBytes(t), issuer, testTime, 42)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := r.Sign(key); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return r, key
}

func TestRoundTrip(t *testing.T) {
	for _, kind := range []Kind{Accepted, Recorded} {
		t.Run(kind.String(), func(t *testing.T) {
			r, key := signedReceipt(t, kind)
			if err := r.Verify(&key.PublicKey); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if err := r.MatchesHeader(testHeaderBytes(t)); err != nil {
				t.Errorf("MatchesHeader: %v", err)
			}
			j, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			p, err := Parse(j)
			if err != nil {
				t.Fatalf("Parse(%s): %v", j, err)
			}
			if !receiptsEqual(p, r) {
				t.Errorf("Parse(MarshalJSON(r)) = %+v, want %+v", p, r)
			}
			if err := p.Verify(&key.PublicKey); err != nil {
				t.Errorf("Verify after JSON round trip: %v", err)
			}
			var u Receipt
			if err := u.UnmarshalJSON(j); err != nil || !receiptsEqual(&u, r) {
				t.Errorf("UnmarshalJSON: %v", err)
			}
		})
	}
}

func receiptsEqual(a, b *Receipt) bool {
	return a.Kind == b.Kind && a.EnvelopeID == b.EnvelopeID && a.Type == b.Type && a.Sender == b.Sender &&
		a.Recipient == b.Recipient && a.HeaderDigest == b.HeaderDigest && a.Issuer == b.Issuer &&
		a.Time.Equal(b.Time) && a.Seq == b.Seq && bytes.Equal(a.Signature, b.Signature)
}

// TestJSONForm pins the exact transport form.
func TestJSONForm(t *testing.T) {
	r, _ := signedReceipt(t, Accepted)
	r.Signature = []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}
	j, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	d := HeaderDigest(testHeaderBytes(t))
	want := `{"kind":"accepted","envelope_id":"01JH8Z5V6Q3K4M7N8P9R0S1T2V","type":"resident-tax-notice",` +
		`"sender":"nta:e-tax","recipient":"lg:130001","header_digest":"` + hexs(d[:]) + `",` +
		`"issuer":"hub:main","time":"2026-05-15T09:30:01.456Z","seq":42,"signature":"MAYCAQECAQE="}`
	if string(j) != want {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", j, want)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// TestSignedBytesLayout pins the documented binary layout.
func TestSignedBytesLayout(t *testing.T) {
	r, _ := signedReceipt(t, Recorded)
	got, err := r.SignedBytes()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, "TLR1"...)
	want = append(want, 2)
	for _, s := range []string{"01JH8Z5V6Q3K4M7N8P9R0S1T2V", "resident-tax-notice", "nta:e-tax", "lg:130001", "lg:130001"} {
		want = append(want, byte(len(s)))
		want = append(want, s...)
	}
	want = binary.BigEndian.AppendUint64(want, uint64(testTime.UnixMilli()))
	want = binary.BigEndian.AppendUint64(want, 42)
	d := HeaderDigest(testHeaderBytes(t))
	want = append(want, d[:]...)
	if !bytes.Equal(got, want) {
		t.Errorf("SignedBytes =\n%x\nwant\n%x", got, want)
	}
	sd := SignatureDigest(got)
	if sd != sha256.Sum256(append([]byte("taxlink/receipt/v1\x00"), got...)) {
		t.Error("SignatureDigest is not SHA-256(\"taxlink/receipt/v1\" || 0x00 || SignedBytes)")
	}
	if !ecdsa.VerifyASN1(&testKey(t, "node").PublicKey, sd[:], r.Signature) {
		t.Error("signature is not over SignatureDigest(SignedBytes())")
	}
}

// TestTamperEachField changes one field of a signed receipt (to another
// valid value) and checks that Verify fails with ErrBadSignature.
func TestTamperEachField(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		mutate func(r *Receipt)
	}{
		{"kind", Recorded, func(r *Receipt) { r.Kind = Accepted; r.Issuer = "hub:main" }},
		{"kind only", Accepted, func(r *Receipt) { r.Kind = Recorded }}, // also invalid: still a bad signature
		{"envelope_id", Accepted, func(r *Receipt) { r.EnvelopeID = "01JH8Z5V6Q3K4M7N8P9R0S1T2W" }},
		{"type", Accepted, func(r *Receipt) { r.Type = "resident-tax-notices" }},
		{"sender", Accepted, func(r *Receipt) { r.Sender = "nta:e-tax2" }},
		{"recipient", Accepted, func(r *Receipt) { r.Recipient = "lg:011002" }},
		{"header_digest", Accepted, func(r *Receipt) { r.HeaderDigest[31] ^= 1 }},
		{"issuer", Accepted, func(r *Receipt) { r.Issuer = "hub:backup" }},
		{"time", Accepted, func(r *Receipt) { r.Time = r.Time.Add(time.Millisecond) }},
		{"seq", Accepted, func(r *Receipt) { r.Seq++ }},
		{"signature", Accepted, func(r *Receipt) { r.Signature[len(r.Signature)-1] ^= 1 }},
		{"signature empty", Accepted, func(r *Receipt) { r.Signature = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, key := signedReceipt(t, tc.kind)
			tc.mutate(r)
			if err := r.Verify(&key.PublicKey); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify after changing %s = %v, want ErrBadSignature", tc.name, err)
			}
		})
	}
	r, _ := signedReceipt(t, Accepted)
	if err := r.Verify(&testKey(t, "other").PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with another key = %v, want ErrBadSignature", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := r.Verify(&p384.PublicKey); !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrBadKey) {
		t.Errorf("Verify with P-384 key = %v, want ErrBadSignature+ErrBadKey", err)
	}
	if err := r.Verify(nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify(nil) = %v, want ErrBadSignature", err)
	}
	if err := r.Sign(p384); !errors.Is(err, ErrBadKey) {
		t.Errorf("Sign with P-384 key = %v, want ErrBadKey", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *Receipt)
		want   error
		msg    string
	}{
		{"kind 0", func(r *Receipt) { r.Kind = 0 }, ErrMalformed, "field kind"},
		{"kind 3", func(r *Receipt) { r.Kind = 3 }, ErrMalformed, "field kind"},
		{"envelope id", func(r *Receipt) { r.EnvelopeID = "x" }, ErrMalformed, "field envelope_id"},
		{"type", func(r *Receipt) { r.Type = "Income" }, ErrMalformed, `field type: "Income"`},
		{"sender check digit", func(r *Receipt) { r.Sender = "lg:011003" }, envelope.ErrBadParticipantID, "field sender: envelope: bad participant id: lg:011003: check digit is 3, expected 2"},
		{"recipient", func(r *Receipt) { r.Recipient = "" }, ErrMalformed, "field recipient"},
		{"issuer not hub", func(r *Receipt) { r.Issuer = "nta:e-tax" }, ErrMalformed, "field issuer: accepted receipts are issued by a hub"},
		{"recorded by the hub", func(r *Receipt) { r.Kind = Recorded }, ErrMalformed, "field issuer: recorded receipts are issued by the recording node, not the hub hub:main"},
		{"digest zero", func(r *Receipt) { r.HeaderDigest = [32]byte{} }, ErrMalformed, "field header_digest"},
		{"time zero", func(r *Receipt) { r.Time = time.Time{} }, ErrMalformed, "field time"},
		{"time sub-ms", func(r *Receipt) { r.Time = r.Time.Add(time.Nanosecond) }, ErrMalformed, "field time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := signedReceipt(t, Accepted)
			tc.mutate(r)
			err := r.Validate()
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Validate = %v, want %v (and ErrMalformed)", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Validate = %q, want it to contain %q", err, tc.msg)
			}
			if _, err := r.MarshalJSON(); !errors.Is(err, ErrMalformed) {
				t.Errorf("MarshalJSON of invalid receipt = %v", err)
			}
			if _, err := r.SignedBytes(); !errors.Is(err, ErrMalformed) {
				t.Errorf("SignedBytes of invalid receipt = %v", err)
			}
		})
	}
}

func TestNewAndMatchesHeader(t *testing.T) {
	hb := testHeaderBytes(t)
	r, err := New(Accepted, hb, "hub:main", time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.FixedZone("JST", 9*3600)), 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 1, 18, 4, 5, 678_000_000, time.UTC); !r.Time.Equal(want) || r.Time.Location() != time.UTC {
		t.Errorf("New time = %v, want %v (UTC, truncated to ms)", r.Time, want)
	}
	if _, err := New(Accepted, append(bytes.Clone(hb), 0), "hub:main", testTime, 1); !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("New with bad header bytes = %v, want envelope.ErrMalformed", err)
	}
	if _, err := New(Recorded, hb, "hub:main", testTime, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("New recorded by a hub = %v, want ErrMalformed", err)
	}
	// An outsourcer's node records on behalf of the recipient.
	if _, err := New(Recorded, hb, "corp:7000012050002", testTime, 1); err != nil {
		t.Errorf("New recorded by an outsourcer node = %v, want nil", err)
	}
	if _, err := New(Kind(9), hb, "hub:main", testTime, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("New with unknown kind = %v, want ErrMalformed", err)
	}
	other := bytes.Clone(hb)
	other[len(other)-1] ^= 1 // another ciphertext digest: still a valid header
	if err := r.MatchesHeader(other); !errors.Is(err, ErrHeaderMismatch) {
		t.Errorf("MatchesHeader(other header) = %v, want ErrHeaderMismatch", err)
	}
	r2 := *r
	r2.Type = "other"
	if err := r2.MatchesHeader(hb); !errors.Is(err, ErrHeaderMismatch) {
		t.Errorf("MatchesHeader with hand-altered type = %v, want ErrHeaderMismatch", err)
	}
	if err := r.MatchesHeader([]byte("junk")); !errors.Is(err, ErrMalformed) {
		t.Errorf("MatchesHeader(junk) = %v, want ErrMalformed", err)
	}
	if Kind(9).String() != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", Kind(9).String())
	}
}

func TestVerifyFor(t *testing.T) {
	hb := testHeaderBytes(t)
	h, err := envelope.ParseHeader(hb)
	if err != nil {
		t.Fatal(err)
	}
	r, key := signedReceipt(t, Accepted)
	if err := r.VerifyFor(Accepted, h, hb, "hub:main", &key.PublicKey); err != nil {
		t.Fatalf("genuine receipt refused: %v", err)
	}
	other := *h
	other.Recipient = "lg:011002"
	otherBytes, err := other.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		kind   Kind
		h      *envelope.Header
		hb     []byte
		issuer string
		key    *ecdsa.PrivateKey
		want   error
	}{
		{"wrong kind", Recorded, h, hb, "hub:main", key, ErrHeaderMismatch},
		{"another envelope", Accepted, &other, otherBytes, "hub:main", key, ErrHeaderMismatch},
		{"another header digest", Accepted, h, append(bytes.Clone(hb[:len(hb)-1]), hb[len(hb)-1]^1), "hub:main", key, ErrHeaderMismatch},
		{"another issuer", Accepted, h, hb, "hub:other", key, ErrHeaderMismatch},
		{"another key", Accepted, h, hb, "hub:main", testKey(t, "other"), ErrBadSignature},
	}
	for _, c := range cases {
		if err := r.VerifyFor(c.kind, c.h, c.hb, c.issuer, &c.key.PublicKey); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
