// Package devtest starts dev networks for tests and gives them mTLS clients
// with the identities of the network's participants.
package devtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/pki"
)

// Start lays out a dev network in a temporary directory and starts it in
// this process; it is stopped when the test ends.
func Start(t testing.TB) *devnet.Network {
	t.Helper()
	return StartWith(t, devnet.Options{})
}

// StartWith is Start with opts: opts.Prepare changes the network's files
// before it starts.
func StartWith(t testing.TB, opts devnet.Options) *devnet.Network {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nw, err := devnet.InitAndStart(ctx, t.TempDir(), opts, log)
	if err != nil {
		cancel()
		t.Fatalf("dev network: %v", err)
	}
	t.Cleanup(func() {
		nw.Stop()
		cancel()
	})
	return nw
}

// Buffer is a bytes.Buffer that a test reads while a network or a command
// writes it (logs, output).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Client returns an HTTP client presenting the TLS identity of node nodeID
// and expecting the peer want (e.g. the hub).
func Client(t testing.TB, nw *devnet.Network, nodeID string, want pki.Identity) *http.Client {
	t.Helper()
	cert := Cert(t, nw, nodeID)
	cas, err := pki.ReadCertFile(filepath.Join(nw.Layout.Dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ClientConfig(cert, pki.CertPool(cas...), want)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true},
		Timeout:   time.Minute,
	}
}

// Cert returns the TLS certificate of a participant's process.
func Cert(t testing.TB, nw *devnet.Network, id string) tls.Certificate {
	t.Helper()
	cfgDir := filepath.Dir(nw.Layout.HubConfig)
	if id != devnet.HubID {
		n, ok := nw.Layout.Node(id)
		if !ok {
			t.Fatalf("no node %s", id)
		}
		cfgDir = filepath.Dir(n.Config)
	}
	cert, err := devnet.TLSCert(nw.Layout, cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// NextDirectory returns the directory in force at the hub, with its version
// increased and mutate applied, signed with the dev directory key.
func NextDirectory(t testing.TB, nw *devnet.Network, mutate func(d *directory.Directory)) []byte {
	t.Helper()
	var s directory.Signed
	if err := json.Unmarshal(nw.Hub.Dir.Signed(), &s); err != nil {
		t.Fatal(err)
	}
	var d directory.Directory
	if err := json.Unmarshal(s.Body, &d); err != nil {
		t.Fatal(err)
	}
	d.Version++
	mutate(&d)
	key, err := devnet.ReadKey(nw.Layout, filepath.Join(filepath.Dir(nw.Layout.HubConfig), "directory-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := directory.Sign(&d, key)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// IssueCert issues a client certificate from the dev network's CA for id,
// valid from notBefore for validity: for testing what the network refuses.
func IssueCert(t testing.TB, nw *devnet.Network, id pki.Identity, notBefore time.Time, validity time.Duration) tls.Certificate {
	t.Helper()
	cert, err := devnet.IssueCert(nw.Layout, id, notBefore, validity)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// ClientWith returns an HTTP client presenting cert with a plain TLS 1.3
// configuration, as an attacker would (taxlink's own client configuration
// refuses to present a certificate of the wrong environment).
func ClientWith(t testing.TB, nw *devnet.Network, cert tls.Certificate) *http.Client {
	t.Helper()
	cas, err := pki.ReadCertFile(filepath.Join(nw.Layout.Dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pki.CertPool(cas...)}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: time.Minute}
}
