package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRevocationHandshake(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	clientID := Identity{Env: EnvTest, ID: "lg:011002"}
	hub := mustLeaf(t, ca, hubID, true, false, now)
	revokedHub := mustLeaf(t, ca, hubID, true, false, now)
	good := mustLeaf(t, ca, clientID, false, true, now)
	revoked := mustLeaf(t, ca, clientID, false, true, now)
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour, revoked.Leaf, revokedHub.Leaf)
	rev := mustRevocation(t, clock.Now, 0, []*x509.Certificate{ca.Cert}, crl)
	pool := CertPool(ca.Cert)

	t.Run("server refuses a revoked client", func(t *testing.T) {
		srvCfg, err := ServerConfigWith(hub, pool, EnvTest, WithRevocation(rev))
		if err != nil {
			t.Fatalf("ServerConfigWith: %v", err)
		}
		url, logs := startServer(t, srvCfg)
		goodCfg, err := ClientConfig(good, pool, hubID)
		if err != nil {
			t.Fatal(err)
		}
		if resp, body, err := get(t, goodCfg, url); err != nil || resp.StatusCode != http.StatusOK || body != clientID.String() {
			t.Fatalf("good client: %v (body %q); want 200 %s", err, body, clientID)
		}
		badCfg, err := ClientConfig(revoked, pool, hubID)
		if err != nil {
			t.Fatal(err)
		}
		if resp, body, err := get(t, badCfg, url); err == nil {
			t.Fatalf("revoked client accepted (status %d, body %q)", resp.StatusCode, body)
		}
		logs.await(t, ErrRevoked.Error()+": serial "+revoked.Leaf.SerialNumber.Text(16))
	})

	t.Run("client refuses a revoked server", func(t *testing.T) {
		srvCfg, err := ServerConfig(revokedHub, pool, EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		url, _ := startServer(t, srvCfg)
		cfg, err := ClientConfigWith(good, pool, hubID, WithRevocation(rev))
		if err != nil {
			t.Fatalf("ClientConfigWith: %v", err)
		}
		_, _, err = get(t, cfg, url)
		if !errors.Is(err, ErrRevoked) {
			t.Fatalf("client error %v, want ErrRevoked", err)
		}
		if !strings.Contains(err.Error(), revokedHub.Leaf.SerialNumber.Text(16)) || !strings.Contains(err.Error(), "CN=taxlink test CA") {
			t.Errorf("error %q does not name serial and issuer", err)
		}

		// The same client reaches the unrevoked server.
		srvCfg, err = ServerConfig(hub, pool, EnvTest)
		if err != nil {
			t.Fatal(err)
		}
		url, _ = startServer(t, srvCfg)
		if _, _, err := get(t, cfg, url); err != nil {
			t.Fatalf("client with revocation refused an unrevoked server: %v", err)
		}
	})
}

func TestRevocationRefreshPicksUpNewRevocation(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour)
	var logs logBuffer
	rev, err := NewRevocation(RevocationOptions{
		Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert}, Now: clock.Now, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := CertPool(ca.Cert)
	srvCfg, err := ServerConfigWith(mustLeaf(t, ca, hubID, true, false, now), pool, EnvTest, WithRevocation(rev))
	if err != nil {
		t.Fatal(err)
	}
	url, srvLogs := startServer(t, srvCfg)
	cliCfg, err := ClientConfig(client, pool, hubID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, cliCfg, url); err != nil {
		t.Fatalf("client refused before revocation: %v", err)
	}

	// The CA revokes the client; the node refreshes without a restart.
	clock.Set(now.Add(time.Minute))
	writeCRL(t, dir, "ca.crl", ca, now.Add(time.Minute), time.Hour, client.Leaf)
	if err := rev.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if _, _, err := get(t, cliCfg, url); err == nil {
		t.Fatal("revoked client still accepted after Refresh")
	}
	srvLogs.await(t, ErrRevoked.Error())
	if !strings.Contains(logs.String(), "CRL loaded") {
		t.Errorf("refresh with a new CRL not logged; log: %s", logs.String())
	}
}

func TestRevocationRun(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	chain := []*x509.Certificate{client.Leaf, ca.Cert}
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour)
	rev, err := NewRevocation(RevocationOptions{
		Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert}, Now: clock.Now, Refresh: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rev.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	}()
	if err := rev.Check(chain); err != nil {
		t.Fatalf("Check before revocation: %v", err)
	}
	writeCRL(t, dir, "ca.crl", ca, now.Add(time.Second), time.Hour, client.Leaf)
	eventually(t, "Run to pick up the new CRL", func() bool { return errors.Is(rev.Check(chain), ErrRevoked) })

	// Run without a period refuses to start.
	rev0 := mustRevocation(t, clock.Now, 0, []*x509.Certificate{ca.Cert}, crl)
	if err := rev0.Run(context.Background()); !errors.Is(err, ErrInvalidRevocationConfig) {
		t.Errorf("Run with zero Refresh = %v, want ErrInvalidRevocationConfig", err)
	}
}

// crlWith signs a CRL from an explicit template (for CRLs CA.CRL would not
// produce).
func crlWith(t *testing.T, ca *CA, tmpl *x509.RevocationList) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestRevocationLoadRefused(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	impostor := mustCA(t, "taxlink test CA", now) // same name, other key
	other := mustCA(t, "other CA", now)
	dir := t.TempDir()
	good, err := ca.CRL(nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-1] ^= 0x01 // last byte of the signature
	fromImpostor, err := impostor.CRL(nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fromOther, err := other.CRL(nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.CRL(nil, now.Add(-3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	future, err := ca.CRL(nil, now.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	critical := crlWith(t, ca, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		// A delta CRL indicator, critical as RFC 5280 requires.
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{0x02, 0x01, 0x01}}},
	})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})

	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{"tampered signature", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: tampered}), ErrInvalidCRL, "signature does not verify"},
		{"signed by an impostor with the same name", fromImpostor, ErrInvalidCRL, "is not a configured issuer"},
		{"from an unconfigured CA", fromOther, ErrInvalidCRL, "is not a configured issuer"},
		{"expired", expired, ErrCRLExpired, "was due for update"},
		{"issued in the future", future, ErrInvalidCRL, "issued in the future"},
		{"critical extension", critical, ErrInvalidCRL, "unsupported critical extension"},
		{"garbage", []byte("not a CRL"), ErrInvalidCRL, ""},
		{"trailing data after DER", append(append([]byte(nil), good...), 0), ErrInvalidCRL, "trailing data"},
		{"certificate instead of CRL", certPEM, ErrMalformedPEM, "X509 CRL"},
		{"two CRL blocks", append(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: good}), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: good})...), ErrMalformedPEM, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "crl"+string(rune('a'+i)))
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := NewRevocation(RevocationOptions{Files: []string{path}, Issuers: []*x509.Certificate{ca.Cert}, Now: func() time.Time { return now }})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("NewRevocation = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}

	// A DER file loads as well as a PEM one.
	derPath := filepath.Join(dir, "good.der")
	if err := os.WriteFile(derPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRevocation(t, func() time.Time { return now }, 0, []*x509.Certificate{ca.Cert}, derPath)
}

func TestNewRevocationOptions(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ca := mustCA(t, "taxlink test CA", now)
	other := mustCA(t, "other CA", now)
	leaf := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	dir := t.TempDir()
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour)
	crl2 := writeCRL(t, dir, "ca2.crl", ca, now, time.Hour)
	issuers := []*x509.Certificate{ca.Cert}

	tests := []struct {
		name    string
		opts    RevocationOptions
		wantErr error
	}{
		{"no files", RevocationOptions{Issuers: issuers, Now: clock}, ErrInvalidRevocationConfig},
		{"empty path", RevocationOptions{Files: []string{""}, Issuers: issuers, Now: clock}, ErrInvalidRevocationConfig},
		{"file twice", RevocationOptions{Files: []string{crl, crl}, Issuers: issuers, Now: clock}, ErrInvalidRevocationConfig},
		{"no issuers", RevocationOptions{Files: []string{crl}, Now: clock}, ErrInvalidRevocationConfig},
		{"nil issuer", RevocationOptions{Files: []string{crl}, Issuers: []*x509.Certificate{nil}, Now: clock}, ErrInvalidRevocationConfig},
		{"leaf as issuer", RevocationOptions{Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert, leaf.Leaf}, Now: clock}, ErrInvalidRevocationConfig},
		{"nil clock", RevocationOptions{Files: []string{crl}, Issuers: issuers}, ErrInvalidRevocationConfig},
		{"negative refresh", RevocationOptions{Files: []string{crl}, Issuers: issuers, Now: clock, Refresh: -1}, ErrInvalidRevocationConfig},
		{"negative grace", RevocationOptions{Files: []string{crl}, Issuers: issuers, Now: clock, Grace: -1}, ErrInvalidRevocationConfig},
		{"issuer without CRL", RevocationOptions{Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert, other.Cert}, Now: clock}, ErrInvalidCRL},
		{"two CRLs of one issuer", RevocationOptions{Files: []string{crl, crl2}, Issuers: issuers, Now: clock}, ErrInvalidCRL},
		{"missing file", RevocationOptions{Files: []string{filepath.Join(dir, "nope.crl")}, Issuers: issuers, Now: clock}, os.ErrNotExist},
	}
	for _, tc := range tests {
		if _, err := NewRevocation(tc.opts); !errors.Is(err, tc.wantErr) {
			t.Errorf("NewRevocation with %s = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestRevocationExpiredCRLFailsClosed(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	chain := []*x509.Certificate{client.Leaf, ca.Cert}
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour)
	var logs logBuffer
	rev, err := NewRevocation(RevocationOptions{
		Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert}, Now: clock.Now, Grace: 10 * time.Minute, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		at      time.Time
		wantErr error
	}{
		{"fresh", now.Add(30 * time.Minute), nil},
		{"at NextUpdate", now.Truncate(time.Second).Add(time.Hour), nil},
		{"within grace", now.Add(65 * time.Minute), nil},
		{"past grace", now.Add(71 * time.Minute), ErrCRLExpired},
	} {
		clock.Set(tc.at)
		err := rev.Check(chain)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.wantErr)
		}
		if tc.wantErr != nil && !errors.Is(err, ErrRevocationUnknown) {
			t.Errorf("%s: Check = %v, want it to wrap ErrRevocationUnknown too", tc.name, err)
		}
	}

	// The handshake fails closed.
	pool := CertPool(ca.Cert)
	srvCfg, err := ServerConfigWith(mustLeaf(t, ca, hubID, true, false, now), pool, EnvTest, WithRevocation(rev))
	if err != nil {
		t.Fatal(err)
	}
	url, srvLogs := startServer(t, srvCfg)
	cliCfg, err := ClientConfig(client, pool, hubID)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body, err := get(t, cliCfg, url); err == nil {
		t.Fatalf("client accepted with an expired CRL (status %d, body %q)", resp.StatusCode, body)
	}
	srvLogs.await(t, ErrCRLExpired.Error())

	// Refreshing with the same (expired) file fails, keeps failing closed,
	// and raises an alert.
	if err := rev.Refresh(context.Background()); !errors.Is(err, ErrCRLExpired) {
		t.Errorf("Refresh with an expired CRL = %v, want ErrCRLExpired", err)
	}
	if !strings.Contains(logs.String(), "ALERT") {
		t.Errorf("expired CRL in force not alerted; log: %s", logs.String())
	}
	// A fresh CRL restores service.
	writeCRL(t, dir, "ca.crl", ca, now.Add(70*time.Minute), time.Hour)
	if err := rev.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh with a fresh CRL: %v", err)
	}
	if err := rev.Check(chain); err != nil {
		t.Errorf("Check after a fresh CRL = %v, want nil", err)
	}
}

func TestRevocationRefreshKeepsLastGood(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	impostor := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	chain := []*x509.Certificate{client.Leaf, ca.Cert}
	crl := writeCRL(t, dir, "ca.crl", ca, now.Add(time.Minute), time.Hour, client.Leaf)
	var logs logBuffer
	rev, err := NewRevocation(RevocationOptions{
		Files: []string{crl}, Issuers: []*x509.Certificate{ca.Cert}, Now: clock.Now, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	older, err := ca.CRL(nil, now, time.Hour) // an older CRL not listing the client
	if err != nil {
		t.Fatal(err)
	}
	forged, err := impostor.CRL(nil, now.Add(2*time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		write   func(path string) error
		wantErr error
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("garbage"), 0o644) }, ErrInvalidCRL},
		{"rollback to an older CRL", func(p string) error { return WriteCRLFile(p, older) }, ErrInvalidCRL},
		{"forged CRL", func(p string) error { return WriteCRLFile(p, forged) }, ErrInvalidCRL},
		{"file removed", os.Remove, os.ErrNotExist},
	} {
		if err := tc.write(crl); err != nil {
			t.Fatal(err)
		}
		if err := rev.Refresh(context.Background()); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: Refresh = %v, want %v", tc.name, err, tc.wantErr)
		}
		if err := rev.Check(chain); !errors.Is(err, ErrRevoked) {
			t.Errorf("%s: the last good CRL is no longer in force: Check = %v", tc.name, err)
		}
	}
	if n := strings.Count(logs.String(), "CRL refresh failed"); n != 4 {
		t.Errorf("%d refresh failures logged, want 4; log: %s", n, logs.String())
	}

	// A cancelled context stops Refresh.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rev.Refresh(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh(cancelled) = %v, want context.Canceled", err)
	}
}

func TestRevocationCheck(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	other := mustCA(t, "other CA", now)
	dir := t.TempDir()
	revoked := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	good := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	foreign := mustLeaf(t, other, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	rev := mustRevocation(t, func() time.Time { return now }, 0, []*x509.Certificate{ca.Cert},
		writeCRL(t, dir, "ca.crl", ca, now, time.Hour, revoked.Leaf))

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		wantErr error
	}{
		{"good leaf", []*x509.Certificate{good.Leaf, ca.Cert}, nil},
		{"revoked leaf", []*x509.Certificate{revoked.Leaf, ca.Cert}, ErrRevoked},
		{"issuer without CRL", []*x509.Certificate{foreign.Leaf, other.Cert}, ErrRevocationUnknown},
		{"trust anchor alone", []*x509.Certificate{ca.Cert}, nil},
		{"empty chain", nil, ErrUnverifiedPeer},
	}
	for _, tc := range tests {
		err := rev.Check(tc.chain)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	// The revocation error names the serial and the issuer, and nothing of
	// the subject.
	err := rev.Check([]*x509.Certificate{revoked.Leaf, ca.Cert})
	want := ErrRevoked.Error() + ": serial " + revoked.Leaf.SerialNumber.Text(16) + `, issuer "CN=taxlink test CA"`
	if err == nil || err.Error() != want {
		t.Errorf("Check error %q, want exactly %q", err, want)
	}
}

func TestCACRL(t *testing.T) {
	now := time.Date(2026, 4, 1, 9, 30, 15, 500, time.UTC)
	ca := mustCA(t, "taxlink test CA", now)
	leaf := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	der, err := ca.CRL([]x509.RevocationListEntry{{SerialNumber: leaf.Leaf.SerialNumber, RevocationTime: now, ReasonCode: 1}}, now, 24*time.Hour)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	path := filepath.Join(t.TempDir(), "ca.crl")
	if err := WriteCRLFile(path, der); err != nil {
		t.Fatalf("WriteCRLFile: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != CertFileMode {
		t.Errorf("CRL file mode %v, %v; want %v", fi.Mode().Perm(), err, CertFileMode)
	}
	rl, err := ReadCRLFile(path)
	if err != nil {
		t.Fatalf("ReadCRLFile: %v", err)
	}
	if err := rl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if !rl.ThisUpdate.Equal(now.Truncate(time.Second)) || !rl.NextUpdate.Equal(now.Truncate(time.Second).Add(24*time.Hour)) {
		t.Errorf("CRL ThisUpdate %v NextUpdate %v", rl.ThisUpdate, rl.NextUpdate)
	}
	if rl.Number == nil || rl.Number.Int64() != now.UnixNano() {
		t.Errorf("CRL number %v, want %d", rl.Number, now.UnixNano())
	}
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.Leaf.SerialNumber) != 0 || rl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Errorf("CRL entries %+v", rl.RevokedCertificateEntries)
	}
	later, err := ca.CRL(nil, now.Add(time.Second), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rl2, err := x509.ParseRevocationList(later); err != nil || rl2.Number.Cmp(rl.Number) <= 0 {
		t.Errorf("later CRL number does not increase: %v", err)
	}

	for _, tc := range []struct {
		name    string
		entries []x509.RevocationListEntry
		now     time.Time
		next    time.Duration
	}{
		{"zero time", nil, time.Time{}, time.Hour},
		{"zero next update", nil, now, 0},
		{"negative next update", nil, now, -time.Hour},
		{"nil serial", []x509.RevocationListEntry{{RevocationTime: now}}, now, time.Hour},
		{"negative serial", []x509.RevocationListEntry{{SerialNumber: big.NewInt(-1), RevocationTime: now}}, now, time.Hour},
		{"no revocation time", []x509.RevocationListEntry{{SerialNumber: big.NewInt(1)}}, now, time.Hour},
	} {
		if _, err := ca.CRL(tc.entries, tc.now, tc.next); !errors.Is(err, ErrInvalidIssueRequest) {
			t.Errorf("CRL with %s = %v, want ErrInvalidIssueRequest", tc.name, err)
		}
	}
	if _, err := (&CA{}).CRL(nil, now, time.Hour); !errors.Is(err, ErrInvalidIssueRequest) {
		t.Errorf("CRL of an empty CA = %v, want ErrInvalidIssueRequest", err)
	}
	if err := WriteCRLFile(filepath.Join(t.TempDir(), "x.crl"), []byte("garbage")); !errors.Is(err, ErrInvalidCRL) {
		t.Errorf("WriteCRLFile(garbage) = %v, want ErrInvalidCRL", err)
	}
}

func TestRevocationAppliesToResumedSessions(t *testing.T) {
	now := time.Now()
	clock := newTestClock(now)
	ca := mustCA(t, "taxlink test CA", now)
	dir := t.TempDir()
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	crl := writeCRL(t, dir, "ca.crl", ca, now, time.Hour)
	rev := mustRevocation(t, clock.Now, 0, []*x509.Certificate{ca.Cert}, crl)
	pool := CertPool(ca.Cert)
	srvCfg, err := ServerConfigWith(mustLeaf(t, ca, hubID, true, false, now), pool, EnvTest, WithRevocation(rev))
	if err != nil {
		t.Fatal(err)
	}
	url, srvLogs := startServer(t, srvCfg)
	cliCfg, err := ClientConfig(client, pool, hubID)
	if err != nil {
		t.Fatal(err)
	}
	cliCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	// Each request on a fresh transport is a fresh connection; the shared
	// session cache makes the later ones resume.
	request := func() (*http.Response, error) {
		resp, _, err := get(t, cliCfg, url)
		return resp, err
	}
	if _, err := request(); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	eventually(t, "a resumed session", func() bool {
		resp, err := request()
		if err != nil {
			t.Fatalf("resumption refused before revocation: %v", err)
		}
		return resp.TLS.DidResume
	})

	clock.Set(now.Add(time.Minute))
	writeCRL(t, dir, "ca.crl", ca, now.Add(time.Minute), time.Hour, client.Leaf)
	if err := rev.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, err := request(); err == nil {
		t.Fatalf("revoked client accepted (resumed: %v)", resp.TLS.DidResume)
	}
	srvLogs.await(t, ErrRevoked.Error())
}
