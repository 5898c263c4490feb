package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// CA is a certificate authority: a CA certificate and its signing key.
// Key may be any crypto.Signer (for example a future PKCS#11 key) whose
// public key is ECDSA P-256 and matches Cert.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key signs the certificates issued by this CA.
	Key crypto.Signer
}

// NewKey generates a new ECDSA P-256 private key from crypto/rand.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate P-256 key: %w", err)
	}
	return k, nil
}

// NewCA creates a self-signed root CA with a fresh ECDSA P-256 key. The
// certificate is valid from now (truncated to the second, as X.509 encodes
// it) for validity, has MaxPathLen 0 (it may sign only leaf certificates)
// and key usage CertSign|CRLSign. commonName must not be empty and validity
// must be positive; errors then wrap ErrInvalidIssueRequest.
func NewCA(commonName string, now time.Time, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, fmt.Errorf("%w: CA common name is empty", ErrInvalidIssueRequest)
	}
	if now.IsZero() {
		return nil, fmt.Errorf("%w: CA start time is the zero time", ErrInvalidIssueRequest)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("%w: CA validity %v is not positive", ErrInvalidIssueRequest, validity)
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate %q: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IssueRequest describes a leaf certificate to issue.
type IssueRequest struct {
	// Identity is placed in the certificate as its only taxlink URI SAN
	// (and as the subject common name). It must be valid.
	Identity Identity
	// Public is the subject's public key; it must be an *ecdsa.PublicKey on
	// P-256.
	Public crypto.PublicKey
	// DNSNames and IPAddresses are added as SANs so that standard TLS
	// hostname verification works; they are optional.
	DNSNames    []string
	IPAddresses []net.IP
	// Server and Client select the extended key usages ServerAuth and
	// ClientAuth; at least one must be set.
	Server, Client bool
	// NotBefore is the start of validity (the caller's clock); it must not
	// be the zero time.
	NotBefore time.Time
	// Validity is the certificate lifetime; it must be positive and the
	// certificate must not outlive the CA certificate.
	Validity time.Duration
}

// Issue signs a leaf certificate for req. The certificate has a random
// positive 128-bit serial number, key usage DigitalSignature, the
// requested extended key usages, and the identity URI SAN. Invalid requests
// yield errors wrapping ErrInvalidIssueRequest, or ErrUnsupportedKey for a
// public key that is not ECDSA P-256, or ErrKeyMismatch if the CA key does
// not belong to the CA certificate.
func (ca *CA) Issue(req IssueRequest) (*x509.Certificate, error) {
	if err := ca.check(); err != nil {
		return nil, err
	}
	if err := req.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIssueRequest, err)
	}
	if err := checkP256Public(req.Public); err != nil {
		return nil, fmt.Errorf("pki: issue %s: subject %w", req.Identity, err)
	}
	pub := req.Public.(*ecdsa.PublicKey)
	if !req.Server && !req.Client {
		return nil, fmt.Errorf("%w: %s: neither Server nor Client usage requested", ErrInvalidIssueRequest, req.Identity)
	}
	if req.NotBefore.IsZero() {
		return nil, fmt.Errorf("%w: %s: NotBefore is the zero time", ErrInvalidIssueRequest, req.Identity)
	}
	if req.Validity <= 0 {
		return nil, fmt.Errorf("%w: %s: validity %v is not positive", ErrInvalidIssueRequest, req.Identity, req.Validity)
	}
	for _, name := range req.DNSNames {
		if name == "" {
			return nil, fmt.Errorf("%w: %s: empty DNS name", ErrInvalidIssueRequest, req.Identity)
		}
	}
	for _, ip := range req.IPAddresses {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("%w: %s: invalid IP address %v", ErrInvalidIssueRequest, req.Identity, ip)
		}
	}
	notBefore := req.NotBefore.UTC().Truncate(time.Second)
	notAfter := notBefore.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%w: %s: certificate would expire %s, after its CA (%s)",
			ErrInvalidIssueRequest, req.Identity, notAfter.Format(time.RFC3339), ca.Cert.NotAfter.Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	var eku []x509.ExtKeyUsage
	if req.Server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Identity.String()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{req.Identity.URI()},
		DNSNames:              append([]string(nil), req.DNSNames...),
		IPAddresses:           append([]net.IP(nil), req.IPAddresses...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue certificate for %s: %w", req.Identity, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse issued certificate for %s: %w", req.Identity, err)
	}
	return cert, nil
}

// check verifies that ca is usable for issuing.
func (ca *CA) check() error {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return fmt.Errorf("%w: CA certificate or key missing", ErrInvalidIssueRequest)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: certificate %q is not a CA certificate with CertSign usage", ErrInvalidIssueRequest, ca.Cert.Subject.CommonName)
	}
	if err := checkP256Public(ca.Key.Public()); err != nil {
		return fmt.Errorf("pki: CA key: %w", err)
	}
	certPub, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !certPub.Equal(ca.Key.Public()) {
		return fmt.Errorf("pki: CA %q: %w", ca.Cert.Subject.CommonName, ErrKeyMismatch)
	}
	return nil
}

// checkP256Public returns nil if pub is an *ecdsa.PublicKey on P-256, else
// an error wrapping ErrUnsupportedKey.
func checkP256Public(pub crypto.PublicKey) error {
	p, ok := pub.(*ecdsa.PublicKey)
	if !ok || p == nil {
		return fmt.Errorf("public key type %T: %w", pub, ErrUnsupportedKey)
	}
	if p.Curve == nil {
		return fmt.Errorf("ECDSA public key without curve: %w", ErrUnsupportedKey)
	}
	if p.Curve != elliptic.P256() {
		return fmt.Errorf("curve %s: %w", p.Curve.Params().Name, ErrUnsupportedKey)
	}
	return nil
}

// randomSerial returns a uniformly random positive serial number of at most
// 128 bits.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("pki: generate serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}
