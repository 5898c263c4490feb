package queue

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"taxlink/internal/pki"
)

// TestExternalJetStream runs the queue on a JetStream server apart from
// it, reached over mutual TLS: an envelope enqueued there is consumed, a
// second hub on the same server shares the streams, and closing a hub
// leaves the server running.
func TestExternalJetStream(t *testing.T) {
	ext, srv := startExternal(t)
	ctx := t.Context()
	a, err := Open(ctx, Options{External: ext()})
	if err != nil {
		t.Fatalf("open on the external server: %v", err)
	}
	if _, _, err := a.Enqueue(ctx, "lg:011002", "01EXTERNAL", []byte("PRE"), bytes.NewReader([]byte("body")), 4); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !srv.Running() {
		t.Fatal("closing the hub's queue stopped the external server")
	}
	b, err := Open(ctx, Options{External: ext()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := readFirst(t, ctx, b, "lg:011002"); string(got) != "PREbody" {
		t.Fatalf("another hub read %q from the shared server", got)
	}
	noCert := ext()
	noCert.TLS.Certificates = nil
	if q, err := Open(ctx, Options{External: noCert}); err == nil {
		q.Close()
		t.Fatal("connected without a client certificate")
	}
}

// startExternal starts a JetStream server for the test that takes mutual
// TLS, and returns a function making an External for it (a new TLS
// configuration each time) and the server.
func startExternal(t *testing.T) (func() *External, *server.Server) {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test CA", now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id string, server bool) tls.Certificate {
		k, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(pki.IssueRequest{Identity: pki.Identity{Env: "test", ID: id}, Public: &k.PublicKey,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: server, Client: !server, NotBefore: now.Add(-time.Minute), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"), SyncAlways: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{issue("hub:nats", true)},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the external server did not start")
	}
	url := fmt.Sprintf("tls://%s", srv.Addr())
	hubCert := issue("hub:test", false)
	ext := func() *External {
		return &External{URL: url, Replicas: 1, TLS: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{hubCert}}}
	}
	return ext, srv
}
