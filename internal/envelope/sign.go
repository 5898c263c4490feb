package envelope

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// signatureLabel domain-separates header signatures from every other use
// of the same ECDSA key (receipts use a different label).
const signatureLabel = "taxlink/envelope-signature/v1"

// MaxSignatureSize bounds the signature in the wire preamble. An ASN.1 DER
// ECDSA P-256 signature is at most 72 bytes.
const MaxSignatureSize = 80

// SignatureDigest returns the SHA-256 digest that Sign signs and Verify
// checks: SHA-256("taxlink/envelope-signature/v1" || 0x00 || headerBytes).
func SignatureDigest(headerBytes []byte) [32]byte {
	d := sha256.New()
	d.Write([]byte(signatureLabel))
	d.Write([]byte{0})
	d.Write(headerBytes)
	var out [32]byte
	d.Sum(out[:0])
	return out
}

// Sign returns the sender's ASN.1 DER ECDSA P-256 signature over
// SignatureDigest(headerBytes). headerBytes must be a canonical header
// (ParseHeader accepts it), so that nothing else can ever be signed with a
// sender key under this label. signer must hold an ECDSA P-256 key
// (ErrBadKey otherwise); it may be an HSM-backed crypto.Signer.
func Sign(signer crypto.Signer, headerBytes []byte) ([]byte, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrBadKey)
	}
	if err := checkP256(signer.Public()); err != nil {
		return nil, err
	}
	if _, err := ParseHeader(headerBytes); err != nil {
		return nil, fmt.Errorf("envelope: sign: %w", err)
	}
	digest := SignatureDigest(headerBytes)
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("envelope: sign: %w", err)
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return nil, fmt.Errorf("envelope: sign: signer returned %d bytes, want a DER signature of 1..%d", len(sig), MaxSignatureSize)
	}
	return sig, nil
}

// Verify checks sig, an ASN.1 DER ECDSA P-256 signature, over
// SignatureDigest(headerBytes) with the sender's public key. It returns
// nil or an error wrapping ErrBadSignature (also ErrBadKey if pub is not a
// P-256 key). It does not parse headerBytes; ReadPreamble already has.
func Verify(pub *ecdsa.PublicKey, headerBytes, sig []byte) error {
	if pub == nil {
		return fmt.Errorf("%w: %w: nil public key", ErrBadSignature, ErrBadKey)
	}
	if err := checkP256(pub); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(sig) == 0 || len(sig) > MaxSignatureSize {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrBadSignature, len(sig), MaxSignatureSize)
	}
	digest := SignatureDigest(headerBytes)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return fmt.Errorf("%w: header signature does not verify with the given key", ErrBadSignature)
	}
	return nil
}

// checkP256 refuses every key but ECDSA P-256: the format names a single
// signature algorithm so that verifiers never negotiate.
func checkP256(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil {
		return fmt.Errorf("%w: key is %T, want *ecdsa.PublicKey on P-256", ErrBadKey, pub)
	}
	if k.Curve == nil {
		return fmt.Errorf("%w: ECDSA key has no curve, want P-256", ErrBadKey)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("%w: ECDSA key is on %s, want P-256", ErrBadKey, k.Curve.Params().Name)
	}
	return nil
}
