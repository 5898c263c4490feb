package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// completeHeader returns a valid header without sealing anything, so that
// header tests do not depend on HPKE.
func completeHeader(kem uint16) *Header {
	h := identityHeader()
	_, encLen, _ := kemFor(kem)
	h.KEM, h.KDF, h.AEAD = kem, KDFHKDFSHA256, AEADAES256GCM
	h.Enc = bytes.Repeat([]byte{0xE5}, encLen)
	h.ChunkSize = DefaultChunkSize
	h.PayloadSize = 200_000
	h.CiphertextSize = 200_000 + 4*TagSize
	for i := range h.CiphertextDigest {
		h.CiphertextDigest[i] = byte(i + 1)
	}
	return h
}

func TestSuiteIDsMatchHPKE(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uint16
		want uint16
	}{
		{"MLKEM768P256", KEMMLKEM768P256, hpke.MLKEM768P256().ID()},
		{"DHKEM(P-256)", KEMDHKEMP256, hpke.DHKEM(ecdh.P256()).ID()},
		{"HKDF-SHA256", KDFHKDFSHA256, hpke.HKDFSHA256().ID()},
		{"AES-256-GCM", AEADAES256GCM, hpke.AES256GCM().ID()},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: constant 0x%04x, crypto/hpke says 0x%04x", tc.name, tc.got, tc.want)
		}
	}
	// The encapsulated-key lengths enforced by Validate must be what HPKE
	// really produces, or every envelope of that KEM would be refused.
	for _, k := range kems {
		priv := testSealingKey(t, k.id, "enc-len")
		enc, _, err := hpke.NewSender(priv.PublicKey(), hpke.HKDFSHA256(), hpke.AES256GCM(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, want, _ := kemFor(k.id); len(enc) != want {
			t.Errorf("%s: enc is %d bytes, kemFor says %d", k.name, len(enc), want)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			h := completeHeader(k.id)
			h.Created = time.Date(2026, 5, 15, 18, 30, 0, 123_000_000, time.FixedZone("JST", 9*3600))
			b, err := h.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			got, err := ParseHeader(b)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if got.Created.Location() != time.UTC || !got.Created.Equal(h.Created) {
				t.Errorf("Created = %v, want %v in UTC", got.Created, h.Created)
			}
			got.Created = h.Created
			if !headersEqual(got, h) {
				t.Errorf("ParseHeader(MarshalBinary(h)) = %+v, want %+v", got, h)
			}
			b2, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-marshal differs (err %v)", err)
			}
			var u Header
			if err := u.UnmarshalBinary(b); err != nil || !u.Created.Equal(h.Created) {
				t.Errorf("UnmarshalBinary: %v", err)
			}
		})
	}
}

func headersEqual(a, b *Header) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Sender == b.Sender && a.Recipient == b.Recipient &&
		a.Created.Equal(b.Created) && a.ContentType == b.ContentType && a.KeyID == b.KeyID &&
		a.KEM == b.KEM && a.KDF == b.KDF && a.AEAD == b.AEAD && bytes.Equal(a.Enc, b.Enc) &&
		a.ChunkSize == b.ChunkSize && a.PayloadSize == b.PayloadSize &&
		a.CiphertextSize == b.CiphertextSize && a.CiphertextDigest == b.CiphertextDigest
}

// TestHeaderLayout pins the documented byte layout (docs/format.md) so that
// a change of the encoding cannot go unnoticed.
func TestHeaderLayout(t *testing.T) {
	h := completeHeader(KEMDHKEMP256)
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	want = append(want, "TLH1"...)
	want = append(want, 26)
	want = append(want, "01JH8Z5V6Q3K4M7N8P9R0S1T2V"...)
	want = append(want, 19)
	want = append(want, "resident-tax-notice"...)
	want = append(want, 9)
	want = append(want, "nta:e-tax"...)
	want = append(want, 9)
	want = append(want, "lg:130001"...)
	want = binary.BigEndian.AppendUint64(want, 1778837400123) // 2026-05-15T09:30:00.123Z
	want = append(want, 15)
	want = append(want, "application/xml"...)
	want = append(want, 17)
	want = append(want, "lg-130001.2026-01"...)
	want = append(want, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02, 0x00, 65)
	want = append(want, bytes.Repeat([]byte{0xE5}, 65)...)
	want = append(want, 0x00, 0x01, 0x00, 0x00) // 65536
	want = binary.BigEndian.AppendUint64(want, 200_000)
	want = binary.BigEndian.AppendUint64(want, 200_064)
	want = append(want, h.CiphertextDigest[:]...)
	if !bytes.Equal(b, want) {
		t.Errorf("MarshalBinary =\n%x\nwant\n%x", b, want)
	}
}

func TestHeaderValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *Header)
		want   error
		field  string // must appear in the message
	}{
		{"id lowercase", func(h *Header) { h.ID = strings.ToLower(h.ID) }, ErrMalformed, "field id"},
		{"id first char 8", func(h *Header) { h.ID = "8" + h.ID[1:] }, ErrMalformed, "field id"},
		{"id with U", func(h *Header) { h.ID = h.ID[:25] + "U" }, ErrMalformed, "field id"},
		{"id 25 chars", func(h *Header) { h.ID = h.ID[:25] }, ErrMalformed, "field id"},
		{"id empty", func(h *Header) { h.ID = "" }, ErrMalformed, "field id"},
		{"type uppercase", func(h *Header) { h.Type = "Income" }, ErrMalformed, `field type: "Income" does not match`},
		{"type leading digit", func(h *Header) { h.Type = "1099" }, ErrMalformed, "field type"},
		{"type 65 chars", func(h *Header) { h.Type = strings.Repeat("a", 65) }, ErrMalformed, "field type"},
		{"type empty", func(h *Header) { h.Type = "" }, ErrMalformed, "field type"},
		{"sender check digit", func(h *Header) { h.Sender = "lg:011003" }, ErrBadParticipantID, "field sender: lg:011003: check digit is 3, expected 2"},
		{"sender empty", func(h *Header) { h.Sender = "" }, ErrMalformed, "field sender"},
		{"recipient bad kind", func(h *Header) { h.Recipient = "city:x" }, ErrBadParticipantID, "field recipient"},
		{"created zero", func(h *Header) { h.Created = time.Time{} }, ErrMalformed, "field created"},
		{"created before 1970", func(h *Header) { h.Created = time.UnixMilli(-1) }, ErrMalformed, "field created"},
		{"created year 10000", func(h *Header) { h.Created = time.UnixMilli(maxCreatedMs + 1) }, ErrMalformed, "field created"},
		{"created sub-ms", func(h *Header) { h.Created = h.Created.Add(time.Microsecond) }, ErrMalformed, "sub-millisecond"},
		{"content type params", func(h *Header) { h.ContentType = "text/xml; charset=utf-8" }, ErrMalformed, "field content_type"},
		{"content type upper", func(h *Header) { h.ContentType = "Application/XML" }, ErrMalformed, "field content_type"},
		{"content type no slash", func(h *Header) { h.ContentType = "xml" }, ErrMalformed, "field content_type"},
		{"content type two slashes", func(h *Header) { h.ContentType = "a/b/c" }, ErrMalformed, "field content_type"},
		{"content type leading dot", func(h *Header) { h.ContentType = "application/.x" }, ErrMalformed, "field content_type"},
		{"content type 64-char subtype", func(h *Header) { h.ContentType = "a/" + strings.Repeat("b", 64) }, ErrMalformed, "field content_type"},
		{"key id empty", func(h *Header) { h.KeyID = "" }, ErrMalformed, "field key_id"},
		{"key id slash", func(h *Header) { h.KeyID = "a/b" }, ErrMalformed, "field key_id"},
		{"key id 65 chars", func(h *Header) { h.KeyID = strings.Repeat("k", 65) }, ErrMalformed, "field key_id"},
		{"kem x25519", func(h *Header) { h.KEM = 0x0020 }, ErrUnsupportedSuite, "field kem: 0x0020"},
		{"kem zero", func(h *Header) { h.KEM = 0 }, ErrUnsupportedSuite, "field kem"},
		{"kdf sha384", func(h *Header) { h.KDF = 0x0002 }, ErrUnsupportedSuite, "field kdf"},
		{"aead aes128", func(h *Header) { h.AEAD = 0x0001 }, ErrUnsupportedSuite, "field aead"},
		{"aead chacha", func(h *Header) { h.AEAD = 0x0003 }, ErrUnsupportedSuite, "field aead"},
		{"enc short", func(h *Header) { h.Enc = h.Enc[1:] }, ErrMalformed, "field enc"},
		{"enc empty", func(h *Header) { h.Enc = nil }, ErrMalformed, "field enc"},
		{"enc of other kem", func(h *Header) { h.KEM = KEMDHKEMP256 }, ErrMalformed, "field enc"},
		{"chunk size small", func(h *Header) { h.ChunkSize = 1023 }, ErrMalformed, "field chunk_size"},
		{"chunk size big", func(h *Header) { h.ChunkSize = 1<<20 + 1 }, ErrMalformed, "field chunk_size"},
		{"payload too big", func(h *Header) { h.PayloadSize = MaxPayloadSize + 1 }, ErrMalformed, "field payload_size"},
		{"ciphertext size off by one", func(h *Header) { h.CiphertextSize++ }, ErrMalformed, "field ciphertext_size"},
		{"ciphertext size without tags", func(h *Header) { h.CiphertextSize = h.PayloadSize }, ErrMalformed, "field ciphertext_size"},
		{"digest zero", func(h *Header) { h.CiphertextDigest = [32]byte{} }, ErrMalformed, "field ciphertext_digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := completeHeader(KEMMLKEM768P256)
			tc.mutate(h)
			err := h.Validate()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %q, want it to mention %q", err, tc.field)
			}
			if _, err := h.MarshalBinary(); !errors.Is(err, tc.want) {
				t.Errorf("MarshalBinary() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCiphertextSizeFor(t *testing.T) {
	for _, tc := range []struct {
		payload uint64
		chunk   uint32
		want    uint64
	}{
		{0, 1024, 16},
		{1, 1024, 17},
		{1024, 1024, 1040},
		{1025, 1024, 1025 + 32},
		{3 << 20, DefaultChunkSize, 3<<20 + 48*16},
		{MaxPayloadSize, MaxChunkSize, MaxPayloadSize + (MaxPayloadSize>>20)*16},
	} {
		got, err := CiphertextSizeFor(tc.payload, tc.chunk)
		if err != nil || got != tc.want {
			t.Errorf("CiphertextSizeFor(%d, %d) = %d, %v; want %d", tc.payload, tc.chunk, got, err, tc.want)
		}
	}
}

// TestParseHeaderStrict feeds ParseHeader corruptions of a valid encoding
// and checks each is refused with the right sentinel.
func TestParseHeaderStrict(t *testing.T) {
	valid, err := completeHeader(KEMMLKEM768P256).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Offsets derived from the layout: magic 4, id 1+26, type 1+19, sender
	// 1+9, recipient 1+9, created 8, content type 1+15, key id 1+17.
	offKEM := 4 + 27 + 20 + 10 + 10 + 8 + 16 + 18
	offKDF, offAEAD, offEncLen := offKEM+2, offKEM+4, offKEM+6
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"empty", func([]byte) []byte { return nil }, ErrMalformed},
		{"bad magic", func(b []byte) []byte { b[3] = '2'; return b }, ErrMalformed},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, ErrMalformed},
		{"id length 27", func(b []byte) []byte { b[4] = 27; return b }, ErrMalformed},
		{"id length 0", func(b []byte) []byte { b[4] = 0; return b }, ErrMalformed},
		{"kem 0x0020", set16(offKEM, 0x0020), ErrUnsupportedSuite},
		{"kem 0x0041", set16(offKEM, 0x0041), ErrUnsupportedSuite},
		{"kdf 0x0003", set16(offKDF, 0x0003), ErrUnsupportedSuite},
		{"aead 0xffff", set16(offAEAD, 0xffff), ErrUnsupportedSuite},
		{"enc length short", set16(offEncLen, 1152), ErrMalformed},
		{"enc length long", set16(offEncLen, 1154), ErrMalformed},
		{"created negative", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[4+27+20+10+10:], 1<<63)
			return b
		}, ErrMalformed},
		{"ciphertext size changed", func(b []byte) []byte { b[len(b)-33]++; return b }, ErrMalformed},
		{"payload size changed", func(b []byte) []byte { b[len(b)-41]++; return b }, ErrMalformed},
		{"oversize", func(b []byte) []byte { return append(b, make([]byte, MaxHeaderSize)...) }, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(valid))
			h, err := ParseHeader(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseHeader = %v, %v; want %v", h, err, tc.want)
			}
		})
	}
	// Every proper prefix must be refused as truncated, never accepted.
	for n := range len(valid) {
		if _, err := ParseHeader(valid[:n]); !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrTruncated) {
			t.Fatalf("ParseHeader(first %d of %d bytes) = %v, want ErrMalformed+ErrTruncated", n, len(valid), err)
		}
	}
	// The parsed header must not alias the input.
	h, err := ParseHeader(valid)
	if err != nil {
		t.Fatal(err)
	}
	clear(valid)
	if h.Enc[0] != 0xE5 {
		t.Error("ParseHeader result aliases its input (Enc changed when input was cleared)")
	}
}

func TestValidIDAndType(t *testing.T) {
	for s, ok := range map[string]bool{
		"01JH8Z5V6Q3K4M7N8P9R0S1T2V": true, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ": true,
		"8ZZZZZZZZZZZZZZZZZZZZZZZZZ": false, "01JH8Z5V6Q3K4M7N8P9R0S1T2": false,
		"01jh8z5v6q3k4m7n8p9r0s1t2v": false, "01JH8Z5V6Q3K4M7N8P9R0S1T2I": false,
		"01JH8Z5V6Q3K4M7N8P9R0S1T2L": false, "01JH8Z5V6Q3K4M7N8P9R0S1T2O": false,
	} {
		if err := ValidID(s); (err == nil) != ok || err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ValidID(%q) = %v, want valid=%v", s, err, ok)
		}
	}
	for s, ok := range map[string]bool{
		"a": true, "resident-tax-notice": true, "a" + strings.Repeat("9", 63): true,
		"": false, "-a": false, "9a": false, "a_b": false, "A": false, "a" + strings.Repeat("9", 64): false,
	} {
		if err := ValidType(s); (err == nil) != ok || err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ValidType(%q) = %v, want valid=%v", s, err, ok)
		}
	}
}
