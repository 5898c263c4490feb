// Package erasure is the evidence and the mechanics of a tenant's
// decommission (第4 5(4)): destroying key files so that nothing sealed to
// them can be opened again (crypto-erasure), and the signed erase
// certificate that states what was erased, by whose request and approval,
// and how.
//
// A certificate is canonical JSON signed by the node's signing key (ECDSA
// P-256 over SHA-256 of a domain string and the JSON); anyone with the
// node's public key from the directory verifies it offline (Verify).
package erasure

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MaxSize bounds a signed certificate read back.
const MaxSize = 1 << 20

const sigDomain = "taxlink/erase-certificate/v1\x00"

// ErrBadSignature: the certificate's signature does not verify.
var ErrBadSignature = errors.New("erasure: signature does not verify")

// Certificate states one tenant's erasure.
type Certificate struct {
	Version     int       `json:"version"` // 1
	Node        string    `json:"node"`    // the node that erased
	Tenant      string    `json:"tenant"`
	Time        time.Time `json:"time"`
	RequestedBy string    `json:"requested_by"`
	ApprovedBy  string    `json:"approved_by"`
	Approval    string    `json:"approval"` // the two-person approval's ID
	Reason      string    `json:"reason"`
	// Records and CiphertextBytes say what the store held for the tenant.
	Records         int64 `json:"records"`
	CiphertextBytes int64 `json:"ciphertext_bytes"`
	// Store names how the rows went, e.g. "sqlite: secure_delete, WAL
	// truncated, VACUUM".
	Store string `json:"store"`
	// KeysDestroyed lists the sealing key IDs destroyed; KeyFiles the key
	// files overwritten and removed (base names).
	KeysDestroyed []string `json:"keys_destroyed"`
	KeyFiles      []string `json:"key_files"`
	// IndexEntries is how many search-index entries were removed.
	IndexEntries int `json:"index_entries"`
}

// Signed is a certificate with its signature.
type Signed struct {
	Certificate json.RawMessage `json:"certificate"`
	Signature   []byte          `json:"signature"`
}

// Sign encodes c and signs it with key (the node's signing key).
func Sign(c Certificate, key crypto.Signer) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("erasure: encode: %w", err)
	}
	digest := sha256.Sum256(append([]byte(sigDomain), body...))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("erasure: sign: %w", err)
	}
	// Not indented: indenting would reformat the signed bytes.
	return json.Marshal(Signed{Certificate: body, Signature: sig})
}

// Verify checks a signed certificate against the node's public key and
// returns it.
func Verify(doc []byte, pub *ecdsa.PublicKey) (*Certificate, error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("erasure: certificate of %d bytes exceeds %d", len(doc), MaxSize)
	}
	var s Signed
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("erasure: malformed certificate: %w", err)
	}
	digest := sha256.Sum256(append([]byte(sigDomain), s.Certificate...))
	if !ecdsa.VerifyASN1(pub, digest[:], s.Signature) {
		return nil, ErrBadSignature
	}
	var c Certificate
	dec = json.NewDecoder(bytes.NewReader(s.Certificate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("erasure: malformed certificate body: %w", err)
	}
	if c.Version != 1 {
		return nil, fmt.Errorf("erasure: certificate version %d, want 1", c.Version)
	}
	return &c, nil
}

// DestroyFile overwrites a key file with random bytes of its length,
// syncs it, and removes it. On file systems that write in place this
// leaves no readable copy; on copy-on-write or flash storage the
// overwrite is best effort, and what protects the data is that the key
// was only ever stored encrypted (enc:) and its passphrase is not in the
// file.
func DestroyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		_, err = io.CopyN(f, rand.Reader, st.Size())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("erasure: overwrite %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	return nil
}
