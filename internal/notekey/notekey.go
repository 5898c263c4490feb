// Package notekey signs and verifies signed notes (golang.org/x/mod/sumdb/note,
// the C2SP signed-note format of taxlink's ledger checkpoints) with the
// ECDSA P-256 keys taxlink participants already have: the hub's and each
// node's signing key, published in the directory and held in an encrypted
// file or on a PKCS#11 token. No second kind of key to protect, and anyone
// holding the directory can verify a checkpoint.
//
// The key name is the participant ID. The key hash is the first four bytes
// (big-endian) of SHA-256(name || 0x0A || 0x02 || PKIX DER of the public
// key), 0x02 naming ECDSA P-256 with SHA-256 in this package; signatures
// are ASN.1 DER ECDSA over SHA-256 of the note text.
package notekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/directory"
)

const algECDSAP256 = 0x02

func keyHash(name string, pub *ecdsa.PublicKey) (uint32, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', algECDSAP256})
	h.Write(der)
	return binary.BigEndian.Uint32(h.Sum(nil)), nil
}

type signer struct {
	name string
	hash uint32
	key  crypto.Signer
}

// NewSigner returns a note signer named name backed by key, which must be
// an ECDSA P-256 key.
func NewSigner(name string, key crypto.Signer) (note.Signer, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("notekey: the key is not ECDSA P-256")
	}
	h, err := keyHash(name, pub)
	if err != nil {
		return nil, fmt.Errorf("notekey: %w", err)
	}
	return &signer{name, h, key}, nil
}

func (s *signer) Name() string    { return s.name }
func (s *signer) KeyHash() uint32 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, d[:], crypto.SHA256)
}

type verifier struct {
	name string
	hash uint32
	pub  *ecdsa.PublicKey
}

// NewVerifier returns the note verifier of pub named name.
func NewVerifier(name string, pub *ecdsa.PublicKey) (note.Verifier, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("notekey: the key is not ECDSA P-256")
	}
	h, err := keyHash(name, pub)
	if err != nil {
		return nil, fmt.Errorf("notekey: %w", err)
	}
	return &verifier{name, h, pub}, nil
}

func (v *verifier) Name() string    { return v.name }
func (v *verifier) KeyHash() uint32 { return v.hash }
func (v *verifier) Verify(msg, sig []byte) bool {
	d := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(v.pub, d[:], sig)
}

// FromDirectory returns the verifiers of every key in d that signs notes:
// the hub's and each node's signing key.
func FromDirectory(d *directory.Directory) (note.Verifiers, error) {
	var vs []note.Verifier
	v, err := NewVerifier(d.Hub.ID, d.HubKey())
	if err != nil {
		return nil, err
	}
	vs = append(vs, v)
	for _, n := range d.Nodes {
		v, err := NewVerifier(n.ID, n.Key())
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}
