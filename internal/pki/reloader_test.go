package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes cert and its key to dir/node.pem and dir/node.key.
func writePair(t *testing.T, dir string, cert tls.Certificate) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, "node.pem"), filepath.Join(dir, "node.key")
	writeKey(t, keyPath, cert)
	writeCert(t, certPath, cert)
	return certPath, keyPath
}

func writeKey(t *testing.T, path string, cert tls.Certificate) {
	t.Helper()
	if err := WriteKeyFile(path, cert.PrivateKey.(*ecdsa.PrivateKey)); err != nil {
		t.Fatal(err)
	}
}

func writeCert(t *testing.T, path string, cert tls.Certificate) {
	t.Helper()
	if err := WriteCertFile(path, cert.Leaf); err != nil {
		t.Fatal(err)
	}
}

// servedSerial returns the serial of the server certificate seen by a
// request over tr, and whether the request reused a connection.
func servedSerial(t *testing.T, tr *http.Transport, url string) (*big.Int, bool, error) {
	t.Helper()
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url+"/whoami", nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, errors.New(resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, reused, nil
}

func TestReloaderRotation(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	first := mustLeaf(t, ca, hubID, true, false, now)
	second := mustLeaf(t, ca, hubID, true, false, now)
	dir := t.TempDir()
	certPath, keyPath := writePair(t, dir, first)
	var logs logBuffer
	r, err := NewReloader(certPath, keyPath, time.Now, ReloaderLogger(logs.logger()))
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	srvCfg, err := ServerConfigWith(tls.Certificate{}, pool, EnvTest, WithCertificateSource(r))
	if err != nil {
		t.Fatalf("ServerConfigWith: %v", err)
	}
	url, _ := startServer(t, srvCfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v", err)
		}
	}()

	cliCfg, err := ClientConfig(mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now), pool, hubID)
	if err != nil {
		t.Fatal(err)
	}
	// A long-lived connection established before the rotation.
	oldConn := &http.Transport{TLSClientConfig: cliCfg, ForceAttemptHTTP2: true}
	defer oldConn.CloseIdleConnections()
	serial, _, err := servedSerial(t, oldConn, url)
	if err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if serial.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatalf("served serial %x, want the first certificate's %x", serial, first.Leaf.SerialNumber)
	}

	// Rotate: the key first, then the certificate, as an operator would
	// (in between, the files do not match and must not be used).
	writeKey(t, keyPath, second)
	writeCert(t, certPath, second)

	// New handshakes, each on a fresh connection, keep succeeding and soon
	// see the new certificate.
	eventually(t, "new handshakes to see the new certificate", func() bool {
		tr := &http.Transport{TLSClientConfig: cliCfg, ForceAttemptHTTP2: true, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		serial, _, err := servedSerial(t, tr, url)
		if err != nil {
			t.Fatalf("handshake failed during rotation: %v", err)
		}
		switch {
		case serial.Cmp(second.Leaf.SerialNumber) == 0:
			return true
		case serial.Cmp(first.Leaf.SerialNumber) == 0:
			return false
		}
		t.Fatalf("served serial %x is neither certificate's", serial)
		return false
	})

	// The old connection is still up and still speaks for the old
	// certificate.
	serial, reused, err := servedSerial(t, oldConn, url)
	if err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
	if !reused {
		t.Error("the request after rotation did not reuse the old connection")
	}
	if serial.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Errorf("old connection shows serial %x, want %x", serial, first.Leaf.SerialNumber)
	}
	if got := r.Certificate().Leaf.SerialNumber; got.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Errorf("Reloader holds serial %x, want %x", got, second.Leaf.SerialNumber)
	}
	eventually(t, "the swap to be logged", func() bool { return strings.Contains(logs.String(), "certificate reloaded") })
}

func TestReloaderRefusesBadReplacement(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	orig := mustLeaf(t, ca, hubID, true, true, now)
	dir := t.TempDir()
	certPath, keyPath := writePair(t, dir, orig)
	r, err := NewReloader(certPath, keyPath, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity() != hubID {
		t.Errorf("Identity() = %v, want %v", r.Identity(), hubID)
	}

	tests := []struct {
		name    string
		cert    tls.Certificate
		prepare func(t *testing.T) // overrides the default write of cert
		wantErr error
	}{
		{name: "other identity", cert: mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:other"}, true, true, now), wantErr: ErrIdentityChanged},
		{name: "other environment", cert: mustLeaf(t, ca, Identity{Env: EnvProduction, ID: "hub:kiko"}, true, true, now), wantErr: ErrIdentityChanged},
		{name: "lost ClientAuth usage", cert: mustLeaf(t, ca, hubID, true, false, now), wantErr: ErrIdentityChanged},
		{name: "expired", cert: leafValid(t, ca, hubID, true, true, now.Add(-2*time.Hour), time.Hour), wantErr: ErrCertificateExpired},
		{name: "not yet valid", cert: leafValid(t, ca, hubID, true, true, now.Add(time.Hour), time.Hour), wantErr: ErrCertificateNotYetValid},
		{name: "no identity", cert: rawLeaf(t, ca, now, "https://example.jp/"), wantErr: ErrNoIdentity},
		{name: "key of another certificate", prepare: func(t *testing.T) {
			writeCert(t, certPath, mustLeaf(t, ca, hubID, true, true, now))
			writeKey(t, keyPath, orig)
		}, wantErr: ErrKeyMismatch},
		{name: "key readable by others", prepare: func(t *testing.T) {
			writePair(t, dir, mustLeaf(t, ca, hubID, true, true, now))
			if err := os.Chmod(keyPath, 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrKeyFilePermissions},
		{name: "garbage certificate file", prepare: func(t *testing.T) {
			writeKey(t, keyPath, orig)
			if err := os.WriteFile(certPath, []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrMalformedPEM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			} else {
				writePair(t, dir, tc.cert)
			}
			if err := r.Reload(); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Reload = %v, want %v", err, tc.wantErr)
			}
			got, err := r.GetCertificate(nil)
			if err != nil || got.Leaf.SerialNumber.Cmp(orig.Leaf.SerialNumber) != 0 {
				t.Errorf("after a refused reload GetCertificate = serial %x, %v; want the original %x", got.Leaf.SerialNumber, err, orig.Leaf.SerialNumber)
			}
		})
	}

	// A good replacement is taken, by both getters; reloading it again is
	// a no-op.
	next := mustLeaf(t, ca, hubID, true, true, now)
	writePair(t, dir, next)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload(good) = %v", err)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload(unchanged) = %v", err)
	}
	for name, get := range map[string]func() (*tls.Certificate, error){
		"GetCertificate":       func() (*tls.Certificate, error) { return r.GetCertificate(nil) },
		"GetClientCertificate": func() (*tls.Certificate, error) { return r.GetClientCertificate(nil) },
	} {
		if c, err := get(); err != nil || c.Leaf.SerialNumber.Cmp(next.Leaf.SerialNumber) != 0 {
			t.Errorf("%s after reload: %v; want serial %x", name, err, next.Leaf.SerialNumber)
		}
	}

	// Time passes: the same files are refused once expired.
	clock.Set(now.Add(2 * time.Hour))
	writePair(t, dir, mustLeaf(t, ca, hubID, true, true, now))
	if err := r.Reload(); !errors.Is(err, ErrCertificateExpired) {
		t.Errorf("Reload of a certificate expired by the clock = %v, want ErrCertificateExpired", err)
	}
}

func TestNewReloaderErrors(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	good := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now)
	certPath, keyPath := writePair(t, dir, good)
	expiredDir := t.TempDir()
	expiredCert, expiredKey := writePair(t, expiredDir, leafValid(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now.Add(-2*time.Hour), time.Hour))
	anonDir := t.TempDir()
	anonCert, anonKey := writePair(t, anonDir, rawLeaf(t, ca, now))
	clock := func() time.Time { return now }

	tests := []struct {
		name      string
		cert, key string
		now       func() time.Time
		wantErr   error
	}{
		{"nil clock", certPath, keyPath, nil, ErrInvalidTLSConfig},
		{"missing certificate", filepath.Join(dir, "nope.pem"), keyPath, clock, os.ErrNotExist},
		{"missing key", certPath, filepath.Join(dir, "nope.key"), clock, os.ErrNotExist},
		{"expired", expiredCert, expiredKey, clock, ErrCertificateExpired},
		{"no identity", anonCert, anonKey, clock, ErrNoIdentity},
	}
	for _, tc := range tests {
		if _, err := NewReloader(tc.cert, tc.key, tc.now); !errors.Is(err, tc.wantErr) {
			t.Errorf("NewReloader with %s = %v, want %v", tc.name, err, tc.wantErr)
		}
	}

	r, err := NewReloader(certPath, keyPath, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Watch(context.Background(), 0); !errors.Is(err, ErrInvalidTLSConfig) {
		t.Errorf("Watch(0) = %v, want ErrInvalidTLSConfig", err)
	}
	pool := CertPool(ca.Cert)
	for name, build := range map[string]func() error{
		"certificate and source": func() error {
			_, err := ServerConfigWith(good, pool, EnvTest, WithCertificateSource(r))
			return err
		},
		"server-only source used by a client": func() error {
			_, err := ClientConfigWith(tls.Certificate{}, pool, Identity{Env: EnvTest, ID: "lg:011002"}, WithCertificateSource(r))
			return err
		},
		"source from another environment": func() error {
			_, err := ServerConfigWith(tls.Certificate{}, pool, EnvProduction, WithCertificateSource(r))
			return err
		},
	} {
		if err := build(); !errors.Is(err, ErrInvalidTLSConfig) {
			t.Errorf("%s: %v, want ErrInvalidTLSConfig", name, err)
		}
	}
}

func TestReloaderAsClientSource(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	clientID := Identity{Env: EnvTest, ID: "lg:011002"}
	certPath, keyPath := writePair(t, t.TempDir(), mustLeaf(t, ca, clientID, false, true, now))
	r, err := NewReloader(certPath, keyPath, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ServerConfig(mustLeaf(t, ca, hubID, true, false, now), pool, EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := startServer(t, srvCfg)
	cliCfg, err := ClientConfigWith(tls.Certificate{}, pool, hubID, WithCertificateSource(r))
	if err != nil {
		t.Fatalf("ClientConfigWith: %v", err)
	}
	if cliCfg.GetClientCertificate == nil || len(cliCfg.Certificates) != 0 {
		t.Error("client configuration does not take its certificate from the source")
	}
	if _, body, err := get(t, cliCfg, url); err != nil || body != clientID.String() {
		t.Fatalf("client with a certificate source: %v, server saw %q", err, body)
	}
}
