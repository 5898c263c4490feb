package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestPublicKeyPEMRoundTrip(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := MarshalPublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatalf("MarshalPublicKeyPEM: %v", err)
	}
	if !strings.HasPrefix(s, "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("MarshalPublicKeyPEM output does not start with a PUBLIC KEY block: %q", s)
	}
	got, err := ParsePublicKeyPEM(s)
	if err != nil {
		t.Fatalf("ParsePublicKeyPEM(own output): %v", err)
	}
	if !got.Equal(&key.PublicKey) {
		t.Error("parsed public key differs from the marshalled one")
	}
	// JSON round trips may lose the final newline or add indentation space.
	if _, err := ParsePublicKeyPEM("\n  " + strings.TrimSuffix(s, "\n")); err != nil {
		t.Errorf("ParsePublicKeyPEM refused surrounding whitespace: %v", err)
	}
}

func TestPublicKeyPEMRejects(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := MarshalPublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	keyDER := pkix(&key.PublicKey)

	if _, err := MarshalPublicKeyPEM(&p384.PublicKey); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("MarshalPublicKeyPEM(P-384) = %v, want ErrUnsupportedKey", err)
	}
	if _, err := MarshalPublicKeyPEM(nil); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("MarshalPublicKeyPEM(nil) = %v, want ErrUnsupportedKey", err)
	}

	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"empty", "", ErrMalformedPEM},
		{"not PEM", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", ErrMalformedPEM},
		{"two blocks", good + good, ErrMalformedPEM},
		{"trailing text", good + "x", ErrMalformedPEM},
		{"wrong block type", string(pemOf("EC PUBLIC KEY", keyDER)), ErrMalformedPEM},
		{"trailing DER", string(pemOf("PUBLIC KEY", append(keyDER, 0))), ErrMalformedPEM},
		{"point off the curve", string(pemOf("PUBLIC KEY", append(keyDER[:len(keyDER)-1], keyDER[len(keyDER)-1]^1))), ErrMalformedPEM},
		{"P-384 key", string(pemOf("PUBLIC KEY", pkix(&p384.PublicKey))), ErrUnsupportedKey},
		{"Ed25519 key", string(pemOf("PUBLIC KEY", pkix(edPub))), ErrUnsupportedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKeyPEM(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParsePublicKeyPEM(%s) = %v, %v; want error wrapping %v", tc.name, got, err, tc.wantErr)
			}
		})
	}
}
