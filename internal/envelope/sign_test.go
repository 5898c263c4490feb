package envelope

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

func TestSignVerify(t *testing.T) {
	key := testSigningKey(t, "sign")
	other := testSigningKey(t, "other")
	hb, err := completeHeader(KEMMLKEM768P256).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(key, hb)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if err := Verify(&key.PublicKey, hb, sig); err != nil {
		t.Fatalf("Verify(own signature) = %v", err)
	}
	// The signature must be over the documented input, so that a second
	// implementation can check it with nothing but SHA-256 and ECDSA.
	want := sha256.Sum256(append([]byte("taxlink/envelope-signature/v1\x00"), hb...))
	if SignatureDigest(hb) != want || !ecdsa.VerifyASN1(&key.PublicKey, want[:], sig) {
		t.Error("signature is not over SHA-256(\"taxlink/envelope-signature/v1\" || 0x00 || header)")
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  *ecdsa.PublicKey
		hb   []byte
		sig  []byte
		want error
	}{
		{"header byte flipped", &key.PublicKey, flip(hb, 10), sig, ErrBadSignature},
		{"last header byte flipped", &key.PublicKey, flip(hb, len(hb)-1), sig, ErrBadSignature},
		{"header extended", &key.PublicKey, append(bytes.Clone(hb), 0), sig, ErrBadSignature},
		{"signature byte flipped", &key.PublicKey, hb, flip(sig, len(sig)-1), ErrBadSignature},
		{"signature truncated", &key.PublicKey, hb, sig[:len(sig)-1], ErrBadSignature},
		{"signature empty", &key.PublicKey, hb, nil, ErrBadSignature},
		{"signature too long", &key.PublicKey, hb, make([]byte, MaxSignatureSize+1), ErrBadSignature},
		{"other key", &other.PublicKey, hb, sig, ErrBadSignature},
		{"P-384 key", &p384.PublicKey, hb, sig, ErrBadKey},
		{"nil key", nil, hb, sig, ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.pub, tc.hb, tc.sig); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	if _, err := Sign(p384, hb); !errors.Is(err, ErrBadKey) {
		t.Errorf("Sign with P-384 key = %v, want ErrBadKey", err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Sign(edKey, hb); !errors.Is(err, ErrBadKey) {
		t.Errorf("Sign with Ed25519 key = %v, want ErrBadKey", err)
	}
	if _, err := Sign(key, append(bytes.Clone(hb), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign of non-canonical header bytes = %v, want ErrMalformed", err)
	}
	if _, err := Sign(key, []byte("anything else")); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign of arbitrary bytes = %v, want ErrMalformed", err)
	}
	if _, err := Sign(brokenSigner{key}, hb); err == nil {
		t.Error("Sign with a failing signer succeeded")
	}
}

// brokenSigner has a P-256 public key but fails to sign, as an unplugged
// HSM would.
type brokenSigner struct{ k *ecdsa.PrivateKey }

func (b brokenSigner) Public() crypto.PublicKey { return &b.k.PublicKey }
func (brokenSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("hsm unavailable")
}
