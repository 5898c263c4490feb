package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"

	"taxlink/internal/fsutil"
)

// pemTypeCRL is the PEM block type of certificate revocation lists.
const pemTypeCRL = "X509 CRL"

// maxCRLFileSize bounds the CRL files read; the CRLs of large public CAs
// run to a few megabytes.
const maxCRLFileSize = 32 << 20

// CRL issues a certificate revocation list listing revoked, signed by ca,
// and returns its DER encoding. ThisUpdate is now (truncated to the
// second, as X.509 encodes it), NextUpdate is ThisUpdate plus nextUpdate,
// and the CRL number is now in nanoseconds since the Unix epoch, so that a
// later CRL from the same CA has a higher number. Each entry needs a
// positive SerialNumber and a non-zero RevocationTime; ReasonCode is
// optional. An empty revoked list yields a valid empty CRL. Invalid
// arguments yield errors wrapping ErrInvalidIssueRequest; a CA whose
// certificate lacks the CRLSign key usage or a subject key identifier
// cannot issue CRLs.
func (ca *CA) CRL(revoked []x509.RevocationListEntry, now time.Time, nextUpdate time.Duration) ([]byte, error) {
	if err := ca.check(); err != nil {
		return nil, err
	}
	name := ca.Cert.Subject.CommonName
	if ca.Cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, fmt.Errorf("%w: CA %q lacks the CRLSign key usage", ErrInvalidIssueRequest, name)
	}
	if len(ca.Cert.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("%w: CA %q has no subject key identifier", ErrInvalidIssueRequest, name)
	}
	if now.IsZero() || now.UnixNano() <= 0 {
		return nil, fmt.Errorf("%w: CRL of %q: invalid issue time %v", ErrInvalidIssueRequest, name, now)
	}
	if nextUpdate <= 0 {
		return nil, fmt.Errorf("%w: CRL of %q: next update %v is not positive", ErrInvalidIssueRequest, name, nextUpdate)
	}
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for i, e := range revoked {
		if e.SerialNumber == nil || e.SerialNumber.Sign() <= 0 {
			return nil, fmt.Errorf("%w: CRL of %q: entry %d has no positive serial number", ErrInvalidIssueRequest, name, i)
		}
		if e.RevocationTime.IsZero() {
			return nil, fmt.Errorf("%w: CRL of %q: entry %d (serial %s) has no revocation time", ErrInvalidIssueRequest, name, i, e.SerialNumber.Text(16))
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   new(big.Int).Set(e.SerialNumber),
			RevocationTime: e.RevocationTime.UTC().Truncate(time.Second),
			ReasonCode:     e.ReasonCode,
		})
	}
	thisUpdate := now.UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(nextUpdate),
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CRL of %q: %w", name, err)
	}
	return der, nil
}

// WriteCRLFile writes a DER-encoded CRL (as returned by CA.CRL) to path as
// one "X509 CRL" PEM block with mode 0644, atomically like WriteKeyFile.
// der must parse as a CRL; its signature is not checked.
func WriteCRLFile(path string, der []byte) error {
	if _, err := parseCRLDER(der, path); err != nil {
		return fmt.Errorf("pki: write CRL file: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemTypeCRL, Bytes: der})
	if err := fsutil.WriteFileAtomic(path, data, CertFileMode); err != nil {
		return fmt.Errorf("pki: write CRL file: %w", err)
	}
	return nil
}

// ReadCRLFile reads a CRL file: either exactly one "X509 CRL" PEM block
// (strictly, like ReadCertFile) or the raw DER encoding. Errors wrap
// ErrInvalidCRL (and ErrMalformedPEM for PEM defects). The CRL's
// signature and dates are not checked; Revocation does that.
func ReadCRLFile(path string) (*x509.RevocationList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read CRL file: %w", err)
	}
	defer f.Close()
	data, err := readLimitedN(f, path, maxCRLFileSize)
	if err != nil {
		return nil, fmt.Errorf("pki: read CRL file: %w: %w", ErrInvalidCRL, err)
	}
	rl, err := parseCRL(data, path)
	if err != nil {
		return nil, fmt.Errorf("pki: read CRL file: %w", err)
	}
	return rl, nil
}

// parseCRL parses data as a PEM "X509 CRL" block or as DER. what names the
// data in errors.
func parseCRL(data []byte, what string) (*x509.RevocationList, error) {
	if bytes.HasPrefix(bytes.TrimLeft(data, pemInterBlockSpace), []byte(pemBeginMarker)) {
		blocks, err := decodePEMStrict(data, what)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCRL, err)
		}
		if len(blocks) != 1 || blocks[0].Type != pemTypeCRL {
			return nil, fmt.Errorf("%w: %w: %s: want exactly one %q PEM block, got %d block(s), first %q",
				ErrInvalidCRL, ErrMalformedPEM, what, pemTypeCRL, len(blocks), blocks[0].Type)
		}
		data = blocks[0].Bytes
	}
	return parseCRLDER(data, what)
}

// parseCRLDER parses exactly one DER-encoded CRL, refusing trailing data.
func parseCRLDER(der []byte, what string) (*x509.RevocationList, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCRL, what, err)
	}
	if len(rl.Raw) != len(der) {
		return nil, fmt.Errorf("%w: %s: %d bytes of trailing data after the CRL", ErrInvalidCRL, what, len(der)-len(rl.Raw))
	}
	return rl, nil
}
