package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestValidityRefusedAtHandshake(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	clientID := Identity{Env: EnvTest, ID: "lg:011002"}
	hub := mustLeaf(t, ca, hubID, true, false, now)
	client := mustLeaf(t, ca, clientID, false, true, now)
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }

	t.Run("server side", func(t *testing.T) {
		tests := []struct {
			name   string
			client tls.Certificate
			clock  func() time.Time // nil: the wall clock
		}{
			{"client certificate expired by the server's clock", client, at(now.Add(2 * time.Hour))},
			{"client certificate not yet valid by the server's clock", client, at(now.Add(-time.Hour))},
			{"client certificate issued already expired", leafValid(t, ca, clientID, false, true, now.Add(-3*time.Hour), time.Hour), nil},
			{"client certificate issued for the future", leafValid(t, ca, clientID, false, true, now.Add(2*time.Hour), time.Hour), nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var opts []Option
				if tc.clock != nil {
					opts = append(opts, WithClock(tc.clock))
				}
				srvCfg, err := ServerConfigWith(hub, pool, EnvTest, opts...)
				if err != nil {
					t.Fatal(err)
				}
				url, logs := startServer(t, srvCfg)
				cliCfg, err := ClientConfig(tc.client, pool, hubID)
				if err != nil {
					t.Fatal(err)
				}
				if resp, body, err := get(t, cliCfg, url); err == nil {
					t.Fatalf("accepted (status %d, body %q)", resp.StatusCode, body)
				}
				logs.await(t, "expired or is not yet valid")
			})
		}
	})

	t.Run("client side", func(t *testing.T) {
		tests := []struct {
			name   string
			server tls.Certificate
			clock  func() time.Time
		}{
			{"server certificate expired by the client's clock", hub, at(now.Add(2 * time.Hour))},
			{"server certificate not yet valid by the client's clock", hub, at(now.Add(-time.Hour))},
			{"server certificate issued already expired", leafValid(t, ca, hubID, true, false, now.Add(-3*time.Hour), time.Hour), nil},
			{"server certificate issued for the future", leafValid(t, ca, hubID, true, false, now.Add(2*time.Hour), time.Hour), nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				srvCfg := &tls.Config{
					MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13,
					Certificates: []tls.Certificate{tc.server},
					ClientAuth:   tls.RequireAndVerifyClientCert,
					ClientCAs:    pool,
					Time:         at(now), // the server accepts the client in every case
				}
				url, _ := startServer(t, srvCfg)
				var opts []Option
				if tc.clock != nil {
					opts = append(opts, WithClock(tc.clock))
				}
				cliCfg, err := ClientConfigWith(client, pool, hubID, opts...)
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = get(t, cliCfg, url)
				var invalid x509.CertificateInvalidError
				if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
					t.Fatalf("client error %v, want x509.CertificateInvalidError (Expired: expired or not yet valid)", err)
				}
			})
		}
	})

	t.Run("the clock also keeps a valid pair working", func(t *testing.T) {
		srvCfg, err := ServerConfigWith(hub, pool, EnvTest, WithClock(at(now.Add(30*time.Minute))))
		if err != nil {
			t.Fatal(err)
		}
		url, _ := startServer(t, srvCfg)
		cliCfg, err := ClientConfigWith(client, pool, hubID, WithClock(at(now.Add(30*time.Minute))))
		if err != nil {
			t.Fatal(err)
		}
		if _, body, err := get(t, cliCfg, url); err != nil || body != clientID.String() {
			t.Fatalf("valid pair refused: %v (body %q)", err, body)
		}
	})
}

func TestOptionErrors(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	hub := mustLeaf(t, ca, hubID, true, false, now)
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	clock := WithClock(time.Now)

	tests := []struct {
		name string
		opts []Option
	}{
		{"zero option", []Option{{}}},
		{"nil revocation", []Option{WithRevocation(nil)}},
		{"nil mapper", []Option{WithIdentityMapper(nil)}},
		{"nil clock", []Option{WithClock(nil)}},
		{"nil certificate source", []Option{WithCertificateSource(nil)}},
		{"clock twice", []Option{clock, clock}},
		{"mapper twice", []Option{WithIdentityMapper(URIMapper{}), WithIdentityMapper(URIMapper{})}},
	}
	for _, tc := range tests {
		if _, err := ServerConfigWith(hub, pool, EnvTest, tc.opts...); !errors.Is(err, ErrInvalidTLSConfig) {
			t.Errorf("ServerConfigWith with %s = %v, want ErrInvalidTLSConfig", tc.name, err)
		}
		if _, err := ClientConfigWith(client, pool, hubID, tc.opts...); !errors.Is(err, ErrInvalidTLSConfig) {
			t.Errorf("ClientConfigWith with %s = %v, want ErrInvalidTLSConfig", tc.name, err)
		}
	}
}

func TestConfigWithFields(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pool := CertPool(ca.Cert)
	hubID := Identity{Env: EnvTest, ID: "hub:kiko"}
	hub := mustLeaf(t, ca, hubID, true, false, now)
	client := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "lg:011002"}, false, true, now)
	fixed := now.Add(time.Minute)
	clock := func() time.Time { return fixed }

	plainSrv, err := ServerConfig(hub, pool, EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	plainCli, err := ClientConfig(client, pool, hubID)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ServerConfigWith(hub, pool, EnvTest, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfigWith(client, pool, hubID, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{"ServerConfig": plainSrv, "ClientConfig": plainCli} {
		if cfg.Time != nil {
			t.Errorf("%s sets Time; it must stay nil for callers", name)
		}
	}
	for name, cfg := range map[string]*tls.Config{"ServerConfigWith": srv, "ClientConfigWith": cli} {
		if cfg.Time == nil || !cfg.Time().Equal(fixed) {
			t.Errorf("%s(WithClock) does not install the clock", name)
		}
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 || cfg.VerifyConnection == nil || cfg.InsecureSkipVerify {
			t.Errorf("%s lost a base setting", name)
		}
	}
}
