package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	now := time.Date(2026, 4, 1, 9, 30, 15, 123456789, time.UTC)
	ca, err := NewCA("taxlink test root", now, 10*365*24*time.Hour)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("CA certificate IsCA=%v BasicConstraintsValid=%v, want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA MaxPathLen=%d MaxPathLenZero=%v, want 0/true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("CA KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if c.Subject.CommonName != "taxlink test root" {
		t.Errorf("CA CommonName = %q", c.Subject.CommonName)
	}
	if !c.NotBefore.Equal(now.Truncate(time.Second)) {
		t.Errorf("CA NotBefore = %v, want %v", c.NotBefore, now.Truncate(time.Second))
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA public key %T is not ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA certificate is not self-signed: %v", err)
	}

	for _, tc := range []struct {
		name     string
		cn       string
		now      time.Time
		validity time.Duration
	}{
		{"empty common name", "", now, time.Hour},
		{"zero time", "ca", time.Time{}, time.Hour},
		{"zero validity", "ca", now, 0},
		{"negative validity", "ca", now, -time.Hour},
	} {
		if _, err := NewCA(tc.cn, tc.now, tc.validity); !errors.Is(err, ErrInvalidIssueRequest) {
			t.Errorf("NewCA %s: error %v, want ErrInvalidIssueRequest", tc.name, err)
		}
	}
}

func TestIssue(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	id := Identity{Env: "test", ID: "corp:1234567890123"}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	req := IssueRequest{
		Identity:    id,
		Public:      &key.PublicKey,
		DNSNames:    []string{"node.example.jp"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1")},
		Server:      true,
		Client:      true,
		NotBefore:   now,
		Validity:    time.Hour,
	}
	cert, err := ca.Issue(req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	got, err := IdentityFromCert(cert)
	if err != nil || got != id {
		t.Fatalf("IdentityFromCert(issued) = %+v, %v; want %+v", got, err, id)
	}
	if len(cert.URIs) != 1 {
		t.Errorf("issued certificate has %d URI SANs, want 1", len(cert.URIs))
	}
	if cert.IsCA {
		t.Error("issued leaf is a CA")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature only", cert.KeyUsage)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(cert.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", cert.ExtKeyUsage, want)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", cert.SerialNumber)
	}
	if !slices.Equal(cert.DNSNames, req.DNSNames) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(req.IPAddresses[0]) {
		t.Errorf("SANs DNS=%v IP=%v, want %v %v", cert.DNSNames, cert.IPAddresses, req.DNSNames, req.IPAddresses)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("issued certificate does not carry the requested public key")
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:       CertPool(ca.Cert),
		CurrentTime: now.Add(time.Minute),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Errorf("issued certificate does not verify against its CA: %v", err)
	}

	// Serials must differ between certificates.
	cert2, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	if cert.SerialNumber.Cmp(cert2.SerialNumber) == 0 {
		t.Errorf("two issued certificates share serial %v", cert.SerialNumber)
	}

	// Usages are exactly the ones requested.
	for _, tc := range []struct {
		server, client bool
		want           []x509.ExtKeyUsage
	}{
		{true, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{false, true, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	} {
		r := req
		r.Server, r.Client = tc.server, tc.client
		c, err := ca.Issue(r)
		if err != nil {
			t.Fatalf("Issue(server=%v client=%v): %v", tc.server, tc.client, err)
		}
		if !slices.Equal(c.ExtKeyUsage, tc.want) {
			t.Errorf("Issue(server=%v client=%v) ExtKeyUsage = %v, want %v", tc.server, tc.client, c.ExtKeyUsage, tc.want)
		}
	}
}

func TestIssueRejects(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	otherCA := mustCA(t, "other CA", now)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := IssueRequest{
		Identity:  Identity{Env: "test", ID: "lg:011002"},
		Public:    &key.PublicKey,
		Client:    true,
		NotBefore: now,
		Validity:  time.Hour,
	}
	tests := []struct {
		name    string
		ca      *CA
		mutate  func(*IssueRequest)
		wantErr error
	}{
		{"invalid identity", ca, func(r *IssueRequest) { r.Identity.Env = "staging" }, ErrInvalidIdentity},
		{"zero identity", ca, func(r *IssueRequest) { r.Identity = Identity{} }, ErrInvalidIssueRequest},
		{"nil public key", ca, func(r *IssueRequest) { r.Public = nil }, ErrUnsupportedKey},
		{"P-384 key", ca, func(r *IssueRequest) { r.Public = &p384.PublicKey }, ErrUnsupportedKey},
		{"Ed25519 key", ca, func(r *IssueRequest) { r.Public = edPub }, ErrUnsupportedKey},
		{"no usage", ca, func(r *IssueRequest) { r.Client = false }, ErrInvalidIssueRequest},
		{"zero NotBefore", ca, func(r *IssueRequest) { r.NotBefore = time.Time{} }, ErrInvalidIssueRequest},
		{"zero validity", ca, func(r *IssueRequest) { r.Validity = 0 }, ErrInvalidIssueRequest},
		{"outlives CA", ca, func(r *IssueRequest) { r.Validity = 2 * testValidity }, ErrInvalidIssueRequest},
		{"empty DNS name", ca, func(r *IssueRequest) { r.DNSNames = []string{""} }, ErrInvalidIssueRequest},
		{"bad IP", ca, func(r *IssueRequest) { r.IPAddresses = []net.IP{{1, 2, 3}} }, ErrInvalidIssueRequest},
		{"nil CA", nil, func(*IssueRequest) {}, ErrInvalidIssueRequest},
		{"CA key from another CA", &CA{Cert: ca.Cert, Key: otherCA.Key}, func(*IssueRequest) {}, ErrKeyMismatch},
		{"leaf as CA", &CA{Cert: mustLeaf(t, ca, Identity{"test", "hub:kiko"}, true, false, now).Leaf, Key: key}, func(*IssueRequest) {}, ErrInvalidIssueRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid
			tc.mutate(&r)
			c, err := tc.ca.Issue(r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Issue(%s) = %v, %v; want error wrapping %v", tc.name, c, err, tc.wantErr)
			}
		})
	}
}
