package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for the code under test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond every millisecond until it holds, failing the
// test if it does not within a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// writeCRL issues a CRL of ca at now listing revoked and writes it (PEM)
// to dir/name, returning the path.
func writeCRL(t *testing.T, dir, name string, ca *CA, now time.Time, next time.Duration, revoked ...*x509.Certificate) string {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now, ReasonCode: 1})
	}
	der, err := ca.CRL(entries, now, next)
	if err != nil {
		t.Fatalf("CA.CRL: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := WriteCRLFile(path, der); err != nil {
		t.Fatalf("WriteCRLFile: %v", err)
	}
	return path
}

// mustRevocation builds a Revocation over files for ca's issuers.
func mustRevocation(t *testing.T, clock func() time.Time, grace time.Duration, issuers []*x509.Certificate, files ...string) *Revocation {
	t.Helper()
	r, err := NewRevocation(RevocationOptions{Files: files, Issuers: issuers, Now: clock, Grace: grace})
	if err != nil {
		t.Fatalf("NewRevocation: %v", err)
	}
	return r
}

// startServerMapped is startServer whose handler reports the client
// identity as mapped by m (nil: the default).
func startServerMapped(t *testing.T, cfg *tls.Config, m Mapper) (string, serverLogs) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := make(serverLogs, 16)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := PeerIdentityWith(r.TLS, m)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			io.WriteString(w, id.String())
		}),
		TLSConfig:         cfg,
		ErrorLog:          log.New(logs, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server stopped with %v", err)
		}
	})
	return "https://" + ln.Addr().String(), logs
}

// lgpkiName returns the subject of the fake external CA.
func lgpkiName() pkix.Name {
	return pkix.Name{
		Country:            []string{"JP"},
		Organization:       []string{"Japanese Government"},
		OrganizationalUnit: []string{"LGPKI"},
		CommonName:         "Application CA2 (fake, for tests)",
	}
}

// mustExternalCA creates a fake external CA ("LGPKI") with a full DN.
func mustExternalCA(t *testing.T, name pkix.Name, now time.Time) *CA {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               name,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(testValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key}
}

// externalLeaf issues, from an external CA, a client+server certificate
// for 127.0.0.1 with the given subject and optional URI SANs (normally
// none: external CAs know nothing of taxlink).
func externalLeaf(t *testing.T, ca *CA, subject pkix.Name, now time.Time, uris ...string) tls.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	serial, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// leafValid issues a taxlink leaf with explicit validity.
func leafValid(t *testing.T, ca *CA, id Identity, server, client bool, notBefore time.Time, validity time.Duration) tls.Certificate {
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
		NotBefore:   notBefore,
		Validity:    validity,
	})
	if err != nil {
		t.Fatalf("Issue(%s): %v", id, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// assertNoSubjectLeak fails if err's text contains any of the personal
// subject values.
func assertNoSubjectLeak(t *testing.T, err error, values ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range values {
		if v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("error %q reveals subject value %q", err, v)
		}
	}
}
