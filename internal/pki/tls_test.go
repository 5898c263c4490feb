package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serverLogs collects the net/http server's error log lines (TLS handshake
// failures land there) so tests can assert why the server refused.
type serverLogs chan string

func (l serverLogs) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // never block the server; tests read only the first lines
	}
	return len(p), nil
}

// await returns the first logged line containing substr, failing the test
// if none arrives within a generous deadline (a deadline, not a sleep: it
// returns as soon as the line arrives).
func (l serverLogs) await(t *testing.T, substr string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var seen []string
	for {
		select {
		case line := <-l:
			if strings.Contains(line, substr) {
				return
			}
			seen = append(seen, line)
		case <-deadline:
			t.Fatalf("server never logged a handshake error containing %q; it logged %q", substr, seen)
		}
	}
}

// startServer runs an HTTPS server with cfg on 127.0.0.1:0 whose handler
// replies with the client's identity. It returns the base URL.
func startServer(t *testing.T, cfg *tls.Config) (string, serverLogs) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := make(serverLogs, 16)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := PeerIdentity(r.TLS)
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

// get performs a GET with a fresh transport using cfg.
func get(t *testing.T, cfg *tls.Config, url string) (*http.Response, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/whoami")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// tlsFixture is a test-environment hub server and a test-environment client
// from the same CA.
type tlsFixture struct {
	now       time.Time
	ca        *CA
	hubID     Identity
	clientID  Identity
	serverCfg *tls.Config
	clientCfg *tls.Config
	url       string
	logs      serverLogs
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{
		now:      time.Now(),
		hubID:    Identity{Env: EnvTest, ID: "hub:kiko"},
		clientID: Identity{Env: EnvTest, ID: "lg:011002"},
	}
	f.ca = mustCA(t, "taxlink test CA", f.now)
	var err error
	f.serverCfg, err = ServerConfig(mustLeaf(t, f.ca, f.hubID, true, false, f.now), CertPool(f.ca.Cert), EnvTest)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	f.clientCfg, err = ClientConfig(mustLeaf(t, f.ca, f.clientID, false, true, f.now), CertPool(f.ca.Cert), f.hubID)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	f.url, f.logs = startServer(t, f.serverCfg)
	return f
}

func TestMutualTLSAccepted(t *testing.T) {
	f := newTLSFixture(t)
	resp, body, err := get(t, f.clientCfg, f.url)
	if err != nil {
		t.Fatalf("right client against right server failed: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q; want 200", resp.StatusCode, body)
	}
	if body != f.clientID.String() {
		t.Errorf("server saw client identity %q, want %q", body, f.clientID)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("connection state %+v, want TLS 1.3", resp.TLS)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2 via ALPN h2", resp.Proto)
	}
	if id, err := PeerIdentity(resp.TLS); err != nil || id != f.hubID {
		t.Errorf("client saw server identity %+v, %v; want %+v", id, err, f.hubID)
	}
}

func TestMutualTLSServerRejectsClient(t *testing.T) {
	f := newTLSFixture(t)

	otherCA := mustCA(t, "rogue CA", f.now)
	prodClient := mustLeaf(t, f.ca, Identity{Env: EnvProduction, ID: "lg:011002"}, false, true, f.now)

	tests := []struct {
		name string
		// mutate turns the good client config into a bad one.
		mutate func(c *tls.Config)
		// serverLog is a fragment of the reason the server must log.
		serverLog string
	}{
		{
			name:      "client without certificate",
			mutate:    func(c *tls.Config) { c.Certificates = nil },
			serverLog: "didn't provide a certificate",
		},
		{
			name: "client certificate from another CA",
			mutate: func(c *tls.Config) {
				// Forced: crypto/tls would otherwise withhold a certificate
				// the server's CertificateRequest does not ask for.
				rogue := mustLeaf(t, otherCA, f.clientID, false, true, f.now)
				c.Certificates = nil
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogue, nil }
			},
			serverLog: "unknown authority",
		},
		{
			name:      "production client against test server",
			mutate:    func(c *tls.Config) { c.Certificates = []tls.Certificate{prodClient} },
			serverLog: ErrWrongEnvironment.Error(),
		},
		{
			name: "client certificate without identity",
			mutate: func(c *tls.Config) {
				c.Certificates = []tls.Certificate{rawLeaf(t, f.ca, f.now, "https://example.jp/")}
			},
			serverLog: ErrNoIdentity.Error(),
		},
		{
			name: "client certificate with two identities",
			mutate: func(c *tls.Config) {
				c.Certificates = []tls.Certificate{rawLeaf(t, f.ca, f.now, "taxlink://test/lg:011002", "taxlink://test/hub:kiko")}
			},
			serverLog: ErrAmbiguousIdentity.Error(),
		},
		{
			name: "server-only certificate used as client",
			mutate: func(c *tls.Config) {
				c.Certificates = []tls.Certificate{mustLeaf(t, f.ca, f.clientID, true, false, f.now)}
			},
			serverLog: "incompatible key usage",
		},
		{
			name: "TLS 1.2-only client",
			mutate: func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			},
			serverLog: "unsupported versions",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.clientCfg.Clone()
			tc.mutate(cfg)
			resp, body, err := get(t, cfg, f.url)
			if err == nil {
				t.Fatalf("server accepted the request (status %d, body %q); want the TLS handshake refused", resp.StatusCode, body)
			}
			f.logs.await(t, tc.serverLog)
		})
	}
}

func TestMutualTLSClientRejectsServer(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	otherCA := mustCA(t, "rogue CA", now)
	clientCert := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	prodClient := mustLeaf(t, ca, Identity{Env: EnvProduction, ID: "lg:011002"}, false, true, now)

	tests := []struct {
		name       string
		clientCert *tls.Certificate // nil: the test-environment client
		serverCert tls.Certificate
		serverCAs  *x509.CertPool
		want       Identity
		wantErr    error  // sentinel the client error must wrap, if any
		wantMsg    string // fragment of the client error otherwise
	}{
		{
			name:       "server has another participant's identity",
			serverCert: mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:impostor"}, true, false, now),
			want:       Identity{Env: EnvTest, ID: "hub:kiko"},
			wantErr:    ErrIdentityMismatch,
		},
		{
			name:       "server identity differs only in kind",
			serverCert: mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:kiko"}, true, false, now),
			want:       Identity{Env: EnvTest, ID: "hub:kiko"},
			wantErr:    ErrIdentityMismatch,
		},
		{
			name:       "production client reaching a test server",
			clientCert: &prodClient,
			serverCert: mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now),
			want:       Identity{Env: EnvProduction, ID: "hub:kiko"},
			wantErr:    ErrWrongEnvironment,
		},
		{
			name:       "server certificate without identity",
			serverCert: rawLeaf(t, ca, now, "https://example.jp/"),
			want:       Identity{Env: EnvTest, ID: "hub:kiko"},
			wantErr:    ErrNoIdentity,
		},
		{
			name:       "server from another CA",
			serverCert: mustLeaf(t, otherCA, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now),
			want:       Identity{Env: EnvTest, ID: "hub:kiko"},
			wantMsg:    "unknown authority",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The server itself is built by hand: ServerConfig would refuse
			// some of these certificates.
			srvCfg := &tls.Config{
				MinVersion:   tls.VersionTLS13,
				MaxVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{tc.serverCert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    CertPool(ca.Cert),
			}
			url, _ := startServer(t, srvCfg)
			cc := clientCert
			if tc.clientCert != nil {
				cc = *tc.clientCert
			}
			cfg, err := ClientConfig(cc, CertPool(ca.Cert), tc.want)
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			resp, body, err := get(t, cfg, url)
			if err == nil {
				t.Fatalf("client accepted the server (status %d, body %q); want refusal", resp.StatusCode, body)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("client error %q does not wrap %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("client error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestTLSConfigFields(t *testing.T) {
	f := newTLSFixture(t)
	for name, cfg := range map[string]*tls.Config{"server": f.serverCfg, "client": f.clientCfg} {
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 {
			t.Errorf("%s: versions %#x..%#x, want TLS 1.3 only", name, cfg.MinVersion, cfg.MaxVersion)
		}
		if cfg.InsecureSkipVerify {
			t.Errorf("%s: InsecureSkipVerify set", name)
		}
		if cfg.VerifyConnection == nil {
			t.Errorf("%s: no VerifyConnection hook", name)
		}
		if len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf == nil {
			t.Errorf("%s: certificates %v, want one with Leaf set", name, cfg.Certificates)
		}
	}
	if f.serverCfg.ClientAuth != tls.RequireAndVerifyClientCert || f.serverCfg.ClientCAs == nil {
		t.Errorf("server: ClientAuth %v ClientCAs %v, want RequireAndVerifyClientCert with a pool", f.serverCfg.ClientAuth, f.serverCfg.ClientCAs)
	}
	if got := strings.Join(f.serverCfg.NextProtos, ","); got != "h2,http/1.1" {
		t.Errorf("server NextProtos %q, want h2,http/1.1", got)
	}
	if f.clientCfg.RootCAs == nil {
		t.Error("client: RootCAs nil (would trust system roots)")
	}
}

func TestTLSConfigRejectsBadArguments(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hub := Identity{Env: EnvTest, ID: "hub:kiko"}
	serverCert := mustLeaf(t, ca, hub, true, false, now)
	clientCert := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	prodServer := mustLeaf(t, ca, Identity{Env: EnvProduction, ID: "hub:kiko"}, true, false, now)
	mismatched := serverCert
	mismatched.PrivateKey = clientCert.PrivateKey

	servers := []struct {
		name    string
		cert    tls.Certificate
		pool    *x509.CertPool
		env     string
		wantErr error
	}{
		{"unknown environment", serverCert, pool, "staging", ErrInvalidIdentity},
		{"nil client CA pool", serverCert, nil, EnvTest, ErrInvalidTLSConfig},
		{"empty certificate", tls.Certificate{}, pool, EnvTest, ErrInvalidTLSConfig},
		{"certificate from another environment", prodServer, pool, EnvTest, ErrWrongEnvironment},
		{"certificate without ServerAuth", clientCert, pool, EnvTest, ErrInvalidTLSConfig},
		{"certificate without identity", rawLeaf(t, ca, now), pool, EnvTest, ErrNoIdentity},
		{"key does not match certificate", mismatched, pool, EnvTest, ErrKeyMismatch},
	}
	for _, tc := range servers {
		if _, err := ServerConfig(tc.cert, tc.pool, tc.env); !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalidTLSConfig) {
			t.Errorf("ServerConfig with %s: error %v, want ErrInvalidTLSConfig wrapping %v", tc.name, err, tc.wantErr)
		}
	}

	clients := []struct {
		name    string
		cert    tls.Certificate
		pool    *x509.CertPool
		want    Identity
		wantErr error
	}{
		{"invalid wanted identity", clientCert, pool, Identity{Env: EnvTest}, ErrInvalidIdentity},
		{"nil root pool", clientCert, nil, hub, ErrInvalidTLSConfig},
		{"certificate without ClientAuth", serverCert, pool, hub, ErrInvalidTLSConfig},
		{"certificate from another environment", clientCert, pool, Identity{Env: EnvProduction, ID: "hub:kiko"}, ErrWrongEnvironment},
	}
	for _, tc := range clients {
		if _, err := ClientConfig(tc.cert, tc.pool, tc.want); !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalidTLSConfig) {
			t.Errorf("ClientConfig with %s: error %v, want ErrInvalidTLSConfig wrapping %v", tc.name, err, tc.wantErr)
		}
	}
}
