package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"io"
	"testing"
	"time"
)

// kems lists the supported KEMs so that every round-trip test runs for each.
var kems = []struct {
	name string
	id   uint16
}{
	{"MLKEM768P256", KEMMLKEM768P256},
	{"DHKEMP256", KEMDHKEMP256},
}

// testSealingKey derives a deterministic sealing key so that failures are
// reproducible; the IKM label keeps different tests' keys distinct.
func testSealingKey(t testing.TB, kem uint16, label string) hpke.PrivateKey {
	t.Helper()
	k, _, err := kemFor(kem)
	if err != nil {
		t.Fatal(err)
	}
	ikm := sha256.Sum256([]byte("taxlink test sealing key/" + label))
	priv, err := k.DeriveKeyPair(ikm[:])
	if err != nil {
		t.Fatalf("DeriveKeyPair(kem 0x%04x): %v", kem, err)
	}
	return priv
}

// testSigningKey returns a deterministic ECDSA P-256 key.
func testSigningKey(t testing.TB, label string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("taxlink test signing key/" + label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatalf("ParseRawPrivateKey: %v", err)
	}
	return k
}

// identityHeader returns a header with only the fields Seal expects the
// caller to set.
func identityHeader() *Header {
	return &Header{
		ID:          "01JH8Z5V6Q3K4M7N8P9R0S1T2V",
		Type:        "resident-tax-notice",
		Sender:      "nta:e-tax",
		Recipient:   "lg:130001",
		Created:     time.Date(2026, 5, 15, 9, 30, 0, 123_000_000, time.UTC),
		ContentType: "application/xml",
		KeyID:       "lg-130001.2026-01",
	}
}

// sealed seals pt under a fresh identity header with the given chunk size
// and returns the complete header and ciphertext.
func sealed(t testing.TB, priv hpke.PrivateKey, chunkSize uint32, pt []byte) (*Header, []byte) {
	t.Helper()
	h := identityHeader()
	h.ChunkSize = chunkSize
	var ct bytes.Buffer
	if err := Seal(priv.PublicKey(), h, bytes.NewReader(pt), &ct); err != nil {
		t.Fatalf("Seal(%d bytes): %v", len(pt), err)
	}
	return h, ct.Bytes()
}

// openAll opens ct completely, returning the plaintext and the error that
// ended reading (nil for a clean io.EOF).
func openAll(priv hpke.PrivateKey, h *Header, ct io.Reader) ([]byte, error) {
	r, err := Open(priv, h, ct)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// testPayload returns n bytes of a deterministic, non-repeating pattern so
// that reordered chunks cannot accidentally produce the same plaintext.
func testPayload(n int) []byte {
	b := make([]byte, 0, n+32)
	for i := 0; len(b) < n; i++ {
		s := sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
		b = append(b, s[:]...)
	}
	return b[:n]
}

func ecdhX25519() ecdh.Curve { return ecdh.X25519() }
