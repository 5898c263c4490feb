package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"fmt"
)

// HPKE algorithm identifiers accepted in Header.KEM, Header.KDF and
// Header.AEAD. Anything else is refused with ErrUnsupportedSuite so that a
// sender cannot downgrade a recipient to a weaker or untested suite.
const (
	// KEMMLKEM768P256 is the hybrid post-quantum KEM MLKEM768-P256
	// (draft-ietf-hpke-pq). It is the default because notifications must
	// stay confidential for years, beyond the expected life of P-256 alone.
	KEMMLKEM768P256 uint16 = 0x0050
	// KEMDHKEMP256 is DHKEM(P-256, HKDF-SHA256) from RFC 9180, kept for
	// recipients whose key storage cannot hold ML-KEM keys yet.
	KEMDHKEMP256 uint16 = 0x0010
	// KDFHKDFSHA256 is HKDF-SHA256, the only accepted KDF.
	KDFHKDFSHA256 uint16 = 0x0001
	// AEADAES256GCM is AES-256-GCM, the only accepted AEAD.
	AEADAES256GCM uint16 = 0x0002

	// DefaultKEM is the KEM recommended for new sealing keys.
	DefaultKEM = KEMMLKEM768P256
)

// kemFor returns the HPKE KEM for a supported identifier together with the
// exact length of its encapsulated key, so that Header.Enc can be checked
// byte-exactly rather than only bounded.
func kemFor(id uint16) (hpke.KEM, int, error) {
	switch id {
	case KEMMLKEM768P256:
		return hpke.MLKEM768P256(), 1088 + 65, nil // ML-KEM-768 ciphertext || P-256 uncompressed point
	case KEMDHKEMP256:
		return hpke.DHKEM(ecdh.P256()), 65, nil // P-256 uncompressed point
	}
	return nil, 0, fmt.Errorf("%w: kem %s", ErrUnsupportedSuite, kemProblem(id))
}

func kemProblem(id uint16) string {
	return fmt.Sprintf("0x%04x (supported: 0x%04x MLKEM768-P256, 0x%04x DHKEM-P256)", id, KEMMLKEM768P256, KEMDHKEMP256)
}

// GenerateSealingKey generates a new recipient sealing key for the given
// supported KEM identifier (use DefaultKEM unless there is a reason not
// to). Unsupported identifiers yield ErrUnsupportedSuite.
func GenerateSealingKey(kem uint16) (hpke.PrivateKey, error) {
	k, _, err := kemFor(kem)
	if err != nil {
		return nil, err
	}
	priv, err := k.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("envelope: generate sealing key: %w", err)
	}
	return priv, nil
}

// MarshalPublicKey returns the RFC 9180 SerializePublicKey encoding of a
// sealing public key of a supported KEM (1249 bytes for MLKEM768-P256, 65
// for DHKEM-P256). Keys of other KEMs yield ErrUnsupportedSuite.
func MarshalPublicKey(pub hpke.PublicKey) ([]byte, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: nil public key", ErrBadKey)
	}
	if _, _, err := kemFor(pub.KEM().ID()); err != nil {
		return nil, err
	}
	return pub.Bytes(), nil
}

// ParsePublicKey parses the output of MarshalPublicKey for the given KEM
// identifier. Encodings that the KEM rejects (wrong length, point not on
// the curve, …) yield ErrBadKey.
func ParsePublicKey(kem uint16, b []byte) (hpke.PublicKey, error) {
	k, _, err := kemFor(kem)
	if err != nil {
		return nil, err
	}
	pub, err := k.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: public key for kem 0x%04x: %w", ErrBadKey, kem, err)
	}
	return pub, nil
}

// MarshalPrivateKey returns the RFC 9180 SerializePrivateKey encoding of a
// sealing private key of a supported KEM (a 32-byte seed for MLKEM768-P256,
// a 32-byte scalar for DHKEM-P256). The result is secret.
func MarshalPrivateKey(priv hpke.PrivateKey) ([]byte, error) {
	if priv == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrBadKey)
	}
	if _, _, err := kemFor(priv.KEM().ID()); err != nil {
		return nil, err
	}
	b, err := priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: serialize private key: %w", ErrBadKey, err)
	}
	// Go 1.26's hybrid keys return their own seed; a caller that wipes the
	// result must not wipe the key.
	return bytes.Clone(b), nil
}

// ParsePrivateKey parses the output of MarshalPrivateKey for the given KEM
// identifier; bad encodings yield ErrBadKey. The error never contains key
// bytes.
func ParsePrivateKey(kem uint16, b []byte) (hpke.PrivateKey, error) {
	k, _, err := kemFor(kem)
	if err != nil {
		return nil, err
	}
	priv, err := k.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: private key for kem 0x%04x (%d bytes) does not parse", ErrBadKey, kem, len(b))
	}
	return priv, nil
}
