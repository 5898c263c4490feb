package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"taxlink/internal/fsutil"
)

// File modes written by this package.
const (
	// KeyFileMode is the mode of private key files written by WriteKeyFile.
	KeyFileMode fs.FileMode = 0o600
	// CertFileMode is the mode of certificate files written by WriteCertFile.
	CertFileMode fs.FileMode = 0o644
)

// WriteKeyFile writes key to path as an unencrypted PKCS#8 "PRIVATE KEY"
// PEM block with mode 0600, atomically: the data goes to a temporary file in
// the same directory, which is fsynced, renamed over path, and the directory
// is fsynced. An existing file at path is replaced. Only *ecdsa.PrivateKey
// on P-256 can be written; any other key (including non-exportable
// signers) yields an error wrapping ErrUnsupportedKey.
func WriteKeyFile(path string, key crypto.Signer) error {
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k == nil {
		return fmt.Errorf("pki: write key file %s: key type %T cannot be written: %w", path, key, ErrUnsupportedKey)
	}
	if err := checkP256Public(&k.PublicKey); err != nil {
		return fmt.Errorf("pki: write key file %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("pki: write key file %s: marshal PKCS#8: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})
	if err := fsutil.WriteFileAtomic(path, data, KeyFileMode); err != nil {
		return fmt.Errorf("pki: write key file: %w", err)
	}
	return nil
}

// ReadKeyFile reads an ECDSA P-256 private key written by WriteKeyFile (an
// unencrypted PKCS#8 "PRIVATE KEY" PEM block, nothing else in the file).
//
// The file must be a regular file not accessible by group or others (no bit
// of 0077 set, checked on the opened file); otherwise the error wraps
// ErrKeyFilePermissions and names the path and the mode. Encrypted keys
// yield ErrEncryptedKey, malformed or tampered files ErrMalformedPEM, keys
// other than ECDSA P-256 ErrUnsupportedKey. The PKCS#8 structure must be in
// the canonical encoding WriteKeyFile (and OpenSSL) writes, embedded public
// key included, so that corruption is detected rather than loading a
// different key.
func ReadKeyFile(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pki: read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pki: read key file %s: not a regular file (mode %v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want no group/other access (e.g. %#o)", ErrKeyFilePermissions, path, perm, KeyFileMode)
	}
	data, err := readLimited(f, path)
	if err != nil {
		return nil, fmt.Errorf("pki: read key file: %w", err)
	}
	key, err := parsePrivateKeyPEM(data, path)
	if err != nil {
		return nil, fmt.Errorf("pki: read key file: %w", err)
	}
	return key, nil
}

// parsePrivateKeyPEM parses exactly one unencrypted PKCS#8 ECDSA P-256
// private key PEM block. what names the data in errors.
func parsePrivateKeyPEM(data []byte, what string) (*ecdsa.PrivateKey, error) {
	blocks, err := decodePEMStrict(data, what)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w: %s: %d PEM blocks, want exactly one %q", ErrMalformedPEM, what, len(blocks), pemTypePrivateKey)
	}
	b := blocks[0]
	switch b.Type {
	case pemTypePrivateKey:
	case pemTypeEncryptedKey:
		return nil, fmt.Errorf("%s: %w", what, ErrEncryptedKey)
	default:
		return nil, fmt.Errorf("%w: %s: PEM block type %q, want %q (unencrypted PKCS#8)", ErrMalformedPEM, what, b.Type, pemTypePrivateKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedPEM, what, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: private key type %T: %w", what, parsed, ErrUnsupportedKey)
	}
	if err := checkP256Public(&key.PublicKey); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkCanonicalPKCS8(b.Bytes, key); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedPEM, what, err)
	}
	return key, nil
}

// checkCanonicalPKCS8 requires der to be exactly the encoding
// x509.MarshalPKCS8PrivateKey produces for key (which is also what OpenSSL
// writes for P-256). x509.ParsePKCS8PrivateKey is lenient: it ignores the
// PKCS#8 version, trailing data, and the embedded public key (deriving the
// public key from the scalar instead), so a corrupted file could otherwise
// load as a different, valid key. der holds the secret scalar, hence the
// constant-time comparison.
func checkCanonicalPKCS8(der []byte, key *ecdsa.PrivateKey) error {
	canonical, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("re-encode PKCS#8: %w", err)
	}
	if subtle.ConstantTimeCompare(der, canonical) != 1 {
		return errors.New("PKCS#8 encoding is not canonical (corrupted, or a version, trailing data or embedded public key that does not match the private key)")
	}
	return nil
}

// WriteCertFile writes certs to path as a sequence of "CERTIFICATE" PEM
// blocks (leaf first, as given) with mode 0644, atomically like
// WriteKeyFile. At least one certificate is required.
func WriteCertFile(path string, certs ...*x509.Certificate) error {
	if len(certs) == 0 {
		return fmt.Errorf("pki: write certificate file %s: no certificates", path)
	}
	var buf bytes.Buffer
	for i, c := range certs {
		if c == nil || len(c.Raw) == 0 {
			return fmt.Errorf("pki: write certificate file %s: certificate %d is nil or has no DER encoding", path, i)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: pemTypeCertificate, Bytes: c.Raw}); err != nil {
			return fmt.Errorf("pki: write certificate file %s: %w", path, err)
		}
	}
	if err := fsutil.WriteFileAtomic(path, buf.Bytes(), CertFileMode); err != nil {
		return fmt.Errorf("pki: write certificate file: %w", err)
	}
	return nil
}

// ReadCertFile reads a file of one or more "CERTIFICATE" PEM blocks.
// Parsing is strict: only CERTIFICATE blocks without headers, separated
// and surrounded by nothing but whitespace, each a valid DER certificate;
// otherwise the error wraps ErrMalformedPEM. The certificates are returned
// in file order and are not verified.
func ReadCertFile(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read certificate file: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f, path)
	if err != nil {
		return nil, fmt.Errorf("pki: read certificate file: %w", err)
	}
	certs, err := parseCertsPEM(data, path)
	if err != nil {
		return nil, fmt.Errorf("pki: read certificate file: %w", err)
	}
	return certs, nil
}

// parseCertsPEM parses data strictly as CERTIFICATE PEM blocks.
func parseCertsPEM(data []byte, what string) ([]*x509.Certificate, error) {
	blocks, err := decodePEMStrict(data, what)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != pemTypeCertificate {
			return nil, fmt.Errorf("%w: %s: PEM block %d has type %q, want %q", ErrMalformedPEM, what, i, b.Type, pemTypeCertificate)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: certificate %d: %w", ErrMalformedPEM, what, i, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// LoadKeyPair reads a certificate file (leaf first, then any
// intermediates) and a key file with ReadCertFile and ReadKeyFile, and
// returns them as a tls.Certificate with Leaf set. The leaf's public key
// must be ECDSA P-256 (ErrUnsupportedKey) and belong to the private key
// (ErrKeyMismatch).
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certs, err := ReadCertFile(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ReadKeyFile(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := certs[0]
	if err := checkP256Public(leaf.PublicKey); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load key pair: certificate %s: %w", certPath, err)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("pki: load key pair: key %s vs certificate %s: %w", keyPath, certPath, ErrKeyMismatch)
	}
	out := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// CertPool returns a new pool holding exactly certs (nil entries are
// skipped). It never includes system roots.
func CertPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		if c != nil {
			p.AddCert(c)
		}
	}
	return p
}

// readLimited reads all of r, failing if it exceeds maxPEMFileSize.
func readLimited(r io.Reader, path string) ([]byte, error) {
	return readLimitedN(r, path, maxPEMFileSize)
}

// readLimitedN reads all of r, failing if it exceeds limit bytes.
func readLimitedN(r io.Reader, path string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrMalformedPEM, path, limit)
	}
	return data, nil
}
