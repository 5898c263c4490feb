package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// testValidity is the lifetime of test CAs; leaves get an hour.
const testValidity = 24 * time.Hour

// mustCA creates a test CA valid from now.
func mustCA(t *testing.T, name string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(name, now, testValidity)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", name, err)
	}
	return ca
}

// mustIdentity parses an identity URI or fails the test.
func mustIdentity(t *testing.T, s string) Identity {
	t.Helper()
	id, err := ParseIdentityURI(s)
	if err != nil {
		t.Fatalf("ParseIdentityURI(%q): %v", s, err)
	}
	return id
}

// mustLeaf issues a certificate for id (valid for 127.0.0.1 and localhost)
// and returns it as a tls.Certificate.
func mustLeaf(t *testing.T, ca *CA, id Identity, server, client bool, now time.Time) tls.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(IssueRequest{
		Identity:    id,
		Public:      &key.PublicKey,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Server:      server,
		Client:      client,
		NotBefore:   now,
		Validity:    time.Hour,
	})
	if err != nil {
		t.Fatalf("Issue(%s): %v", id, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// rawLeaf signs a leaf with arbitrary URI SANs, bypassing Issue's checks,
// to produce certificates Issue would refuse.
func rawLeaf(t *testing.T, ca *CA, now time.Time, uris ...string) tls.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "raw"},
		NotBefore:             now,
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}
