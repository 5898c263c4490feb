package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// MarshalPublicKeyPEM encodes an ECDSA P-256 public key (for example a
// signing key published in the participant directory) as a single PKIX
// "PUBLIC KEY" PEM block. Other keys yield an error wrapping
// ErrUnsupportedKey.
func MarshalPublicKeyPEM(pub *ecdsa.PublicKey) (string, error) {
	if pub == nil {
		return "", fmt.Errorf("pki: marshal public key: nil key: %w", ErrUnsupportedKey)
	}
	if err := checkP256Public(pub); err != nil {
		return "", fmt.Errorf("pki: marshal public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pki: marshal public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: pemTypePublicKey, Bytes: der})), nil
}

// ParsePublicKeyPEM parses exactly one PKIX "PUBLIC KEY" PEM block holding
// an ECDSA P-256 key, as produced by MarshalPublicKeyPEM. Surrounding
// whitespace is allowed; anything else (other text, further blocks,
// headers, trailing DER data) yields an error wrapping ErrMalformedPEM, and
// keys other than ECDSA P-256 an error wrapping ErrUnsupportedKey.
func ParsePublicKeyPEM(s string) (*ecdsa.PublicKey, error) {
	const what = "public key"
	blocks, err := decodePEMStrict([]byte(s), what)
	if err != nil {
		return nil, fmt.Errorf("pki: parse public key: %w", err)
	}
	if len(blocks) != 1 || blocks[0].Type != pemTypePublicKey {
		return nil, fmt.Errorf("pki: parse public key: %w: want exactly one %q PEM block, got %d block(s), first %q",
			ErrMalformedPEM, pemTypePublicKey, len(blocks), blocks[0].Type)
	}
	parsed, err := x509.ParsePKIXPublicKey(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse public key: %w: %w", ErrMalformedPEM, err)
	}
	if err := checkP256Public(parsed); err != nil {
		return nil, fmt.Errorf("pki: parse public key: %w", err)
	}
	return parsed.(*ecdsa.PublicKey), nil
}
