package selfcheck

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"taxlink/internal/standard"
	"testing"

	"taxlink/internal/config"
	"taxlink/internal/devnet"
)

// tlsServer serves TLS handshakes on 127.0.0.1 with cfg until the test ends
// and returns its address.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// fakeClamd answers PING with PONG on a unix socket.
func fakeClamd(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clamd.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				var got []byte
				for !bytes.Contains(got, []byte{0}) {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						return
					}
				}
				if string(got) == "zPING\x00" {
					c.Write([]byte("PONG\x00"))
				}
			}()
		}
	}()
	return "unix:" + p
}

// TestLiveChecks runs the checks of a running process against listeners
// started here: TLS 1.3 only or not, /healthz, the process's sockets, and
// clamd.
func TestLiveChecks(t *testing.T) {
	f := newFixture(t, true)
	cert, err := devnet.TLSCert(f.lay, filepath.Dir(f.lay.HubConfig))
	if err != nil {
		t.Fatal(err)
	}
	other := newFixture(t, false)
	untrusted, err := devnet.TLSCert(other.lay, filepath.Dir(other.lay.HubConfig))
	if err != nil {
		t.Fatal(err)
	}
	tls13 := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert})
	console13 := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	tls12mtls := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAnyClientCert})
	tls12 := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	tls12untrusted := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{untrusted}, MinVersion: tls.VersionTLS12})
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(healthy.Close)
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(sick.Close)
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()
	clamd := fakeClamd(t)
	ours := []string{tls13, console13, tls12mtls, tls12, tls12untrusted, healthy.Listener.Addr().String(), sick.Listener.Addr().String()}

	live := func(svc, con, met string) func(t *testing.T, f *fixture, e *Env) {
		return func(t *testing.T, f *fixture, e *Env) {
			e.Live = Live{Service: svc, Console: con, Metrics: met, PID: os.Getpid(), Shared: ours}
		}
	}
	up := live(tls13, console13, healthy.Listener.Addr().String())
	cases := []checkCase{
		{"refused", standard.ChkTLS13, hubCfg, up, true, "refuses TLS 1.2; console " + console13 + " refuses TLS 1.2"},
		{"console down", standard.ChkTLS13, hubCfg, live(tls13, closed, ""), true, "not answering"},
		{"not running", standard.ChkTLS13, hubCfg, live(closed, closed, ""), true, "not running"},
		{"service asks for a certificate in TLS 1.2", standard.ChkTLS13, hubCfg, live(tls12mtls, console13, ""), false, "asked for a client certificate"},
		{"service completes TLS 1.2", standard.ChkTLS13, hubCfg, live(tls12, console13, ""), false, "TLS 1.2"},
		{"console in TLS 1.2 with a certificate we do not trust", standard.ChkTLS13, hubCfg, live(tls13, tls12untrusted, ""), false, "console listener"},

		{"answers", standard.ChkMonitoring, hubCfg, up, true, "answers /healthz"},
		{"503", standard.ChkMonitoring, hubCfg, live(tls13, console13, sick.Listener.Addr().String()), false, "status 503"},
		{"down", standard.ChkMonitoring, hubCfg, live(tls13, console13, closed), false, "does not answer"},
		{"not running", standard.ChkMonitoring, hubCfg, live(closed, closed, closed), true, "not probed"},

		{"only ours", standard.ChkStray, hubCfg, up, true, "all on configured addresses"},
		{"one more", standard.ChkStray, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			up(t, f, e)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			e.Live.Shared = ours // not ln
		}, false, "outside the admin and service addresses"},
		{"not running", standard.ChkStray, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			live(closed, closed, "")(t, f, e)
			e.Live.PID = 0
		}, true, "not inspected"},
		{"owner found by its listener", standard.ChkStray, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			up(t, f, e)
			e.Live.PID = 0
		}, true, "all on configured addresses"},

		{"clamd answers", standard.ChkScanner, sapporo, func(t *testing.T, f *fixture, e *Env) {
			up(t, f, e)
			e.Node.Scanner = &config.Scanner{Clamd: clamd}
		}, true, "answers"},
		{"clamd down", standard.ChkScanner, sapporo, func(t *testing.T, f *fixture, e *Env) {
			up(t, f, e)
			e.Node.Scanner = &config.Scanner{Clamd: "unix:" + filepath.Join(t.TempDir(), "none.sock")}
		}, false, "does not answer PING"},
	}
	if !procAvailable() {
		t.Log("no /proc: the listener inventory cases only see 'not inspected'")
	}
	runCases(t, f, cases, nil)
}

func TestParseProcAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0050", "0.0.0.0:80"},
		{"00000000000000000000000001000000:1F90", "[::1]:8080"},
		{"0000000000000000FFFF00000100007F:01BB", "127.0.0.1:443"},
	} {
		got, err := parseProcAddr(tc.in)
		if err != nil || got != netip.MustParseAddrPort(tc.want) {
			t.Errorf("parseProcAddr(%s) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseProcAddr("zz:1"); err == nil {
		t.Error("bad address parsed")
	}
	if !strings.HasPrefix(dialable("0.0.0.0:1"), "127.0.0.1:") || dialable("[::]:1") != "[::1]:1" {
		t.Error("dialable")
	}
}
