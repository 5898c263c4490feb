package faultproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests; it is a failure deadline, not
// an expected duration.
const waitLimit = 10 * time.Second

// testServer is a TCP server on 127.0.0.1 that runs handle for each
// connection and counts the connections it accepted.
type testServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startServer(t *testing.T, handle func(net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if handle == nil {
				continue // silent: hold the connection, never read or write
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// stop closes the listener and every connection and waits for the handlers.
func (s *testServer) stop() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func echo(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(c, c)
}

func startEcho(t *testing.T) *testServer { return startServer(t, echo) }

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New("127.0.0.1:0", target, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// testLogger logs Warn and above to the test log, so unexpected failures
// show up, while expected closes (Debug) stay quiet.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg to c and reads the echo back, failing on any error.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := roundTripErr(c, msg, waitLimit); err != nil {
		t.Fatalf("round trip %q: %v", msg, err)
	}
}

func roundTripErr(c net.Conn, msg string, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo mismatch: got " + string(got))
	}
	return nil
}

// readErr reads from c (with a deadline) and returns the read error; data
// read is a failure since every caller expects the connection to be dead.
func readErr(t *testing.T, c net.Conn, timeout time.Duration) error {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n > 0 {
		t.Fatalf("read %q, want no data", buf[:n])
	}
	if err == nil {
		t.Fatal("read returned no data and no error")
	}
	return err
}

func TestPassThrough10MiB(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	if err := c.SetDeadline(time.Now().Add(4 * waitLimit)); err != nil {
		t.Fatal(err)
	}

	const size = 10 << 20
	want := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(want)

	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite() // half-close must travel through the proxy
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(want))
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	st := p.Stats() // final after Close
	if st.BytesUp != size || st.BytesDown != size || st.Accepted != 1 {
		t.Fatalf("stats = %+v, want %d bytes each way and 1 accepted", st, size)
	}
}

func TestDelay(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm-up")

	const d = 50 * time.Millisecond
	p.SetDelay(d) // applies to the already open connection
	start := time.Now()
	roundTrip(t, c, "slow")
	// The delay applies once up and once down; assert only the lower bound.
	if got := time.Since(start); got < 2*d {
		t.Fatalf("round trip took %v, want at least %v", got, 2*d)
	}

	p.SetDelay(0)
	roundTrip(t, c, "fast again")
}

func TestRefuse(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.addr())
	open := dial(t, p.Addr())
	roundTrip(t, open, "before")

	p.SetRefuse(true)
	// The kernel completes the handshake and the proxy resets the
	// connection at once; depending on timing the client sees the reset
	// already in connect, or in its first read.
	refused, err := net.DialTimeout("tcp", p.Addr(), waitLimit)
	if err == nil {
		defer refused.Close()
		err = readErr(t, refused, waitLimit)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("refused connection: %v, want EOF or connection reset", err)
	}
	roundTrip(t, open, "existing connection unaffected")

	p.SetRefuse(false)
	roundTrip(t, dial(t, p.Addr()), "after")

	if st := p.Stats(); st.Refused != 1 || st.Accepted != 2 {
		t.Fatalf("stats = %+v, want 1 refused, 2 accepted", st)
	}
}

func TestBlackhole(t *testing.T) {
	srv := startEcho(t)
	p := newProxy(t, srv.addr())
	existing := dial(t, p.Addr())
	roundTrip(t, existing, "before")

	p.SetBlackhole(true)
	const short = 200 * time.Millisecond
	for name, c := range map[string]net.Conn{
		"existing": existing,
		"new":      dial(t, p.Addr()),
	} {
		if _, err := io.WriteString(c, "into the void"); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		if err := readErr(t, c, short); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: read under blackhole: %v, want a timeout", name, err)
		}
	}

	p.SetBlackhole(false)
	roundTrip(t, dial(t, p.Addr()), "after")
	// The blackholed new connection was never forwarded: the server saw
	// only the first and the last connection.
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
}

// TestKillAll covers the faults that kill every open connection at once.
func TestKillAll(t *testing.T) {
	tests := []struct {
		name    string
		kill    func(*Proxy) int
		wantErr error
		stat    func(Stats) int64
	}{
		{"CutAll", (*Proxy).CutAll, io.EOF, func(s Stats) int64 { return s.Cut }},
		{"ResetAll", (*Proxy).ResetAll, syscall.ECONNRESET, func(s Stats) int64 { return s.Reset }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startEcho(t)
			p := newProxy(t, srv.addr())
			conns := []net.Conn{dial(t, p.Addr()), dial(t, p.Addr())}
			for _, c := range conns {
				roundTrip(t, c, "alive") // both fully connected before the fault
			}

			if n := tt.kill(p); n != len(conns) {
				t.Fatalf("%s() = %d, want %d", tt.name, n, len(conns))
			}
			for i, c := range conns {
				if err := readErr(t, c, waitLimit); !errors.Is(err, tt.wantErr) {
					t.Fatalf("conn %d: read after %s: %v, want %v", i, tt.name, err, tt.wantErr)
				}
			}
			if got := tt.stat(p.Stats()); got != int64(len(conns)) {
				t.Fatalf("stat after %s = %d, want %d", tt.name, got, len(conns))
			}

			// New connections still work, and nothing is left to kill twice.
			roundTrip(t, dial(t, p.Addr()), "new connection")
			if n := tt.kill(p); n != 1 {
				t.Fatalf("second %s() = %d, want 1", tt.name, n)
			}
		})
	}
}

func TestSetTarget(t *testing.T) {
	a, b := startEcho(t), startEcho(t)
	p := newProxy(t, a.addr())
	toA := dial(t, p.Addr())
	roundTrip(t, toA, "to a")

	p.SetTarget(b.addr())
	roundTrip(t, dial(t, p.Addr()), "to b")
	roundTrip(t, toA, "still to a") // open connections keep their target

	if na, nb := a.accepted.Load(), b.accepted.Load(); na != 1 || nb != 1 {
		t.Fatalf("accepted: a=%d b=%d, want 1 each", na, nb)
	}
}

func TestTLSThroughProxy(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello through "+r.Host)
	}))
	defer ts.Close()
	p := newProxy(t, ts.Listener.Addr().String())

	// Trust the server's certificate, but dial the proxy. The name the
	// test certificate is issued for travels as SNI end to end.
	tlsCfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.ServerName = "example.com"
	tlsCfg.MinVersion = tls.VersionTLS13
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitLimit}

	resp, err := client.Get("https://" + p.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello through " + p.Addr(); string(body) != want {
		t.Fatalf("body = %q, want %q", body, want)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("TLS state = %+v, want TLS 1.3", resp.TLS)
	}
	if st := p.Stats(); st.Accepted != 1 || st.BytesUp == 0 || st.BytesDown == 0 {
		t.Fatalf("stats = %+v, want one connection carrying bytes both ways", st)
	}
}

func TestDialFailureClosesClient(t *testing.T) {
	// A port with nothing listening: take one and release it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()

	p, err := New("127.0.0.1:0", dead) // default logger: discards
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = readErr(t, dial(t, p.Addr()), waitLimit)
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read with dead target: %v, want EOF or connection reset", err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct{ name, listen, target string }{
		{"bad target", "127.0.0.1:0", "no-port"},
		{"bad listen", "127.0.0.1:-1", "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := New(tt.listen, tt.target); err == nil {
				p.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

// TestCloseNoLeak puts connections in every awkward state (idle, half-open,
// blocked mid-delay with a writer that never gets flow control, blackholed)
// and checks that Close returns promptly and leaves no goroutine behind.
func TestCloseNoLeak(t *testing.T) {
	silent := startServer(t, nil) // accepts, never reads, never closes
	echoSrv := startEcho(t)
	base := runtime.NumGoroutine()

	p, err := New("127.0.0.1:0", silent.addr(), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}

	idle := dial(t, p.Addr())
	halfOpen := dial(t, p.Addr())
	if err := halfOpen.CloseWrite(); err != nil {
		t.Fatal(err)
	}

	// A writer stuck behind a long delay and a server that never reads.
	p.SetDelay(time.Hour)
	stuck := dial(t, p.Addr())
	writerDone := make(chan error, 1)
	go func() {
		// Write until the proxy goes away; kernel buffers absorb megabytes.
		chunk := make([]byte, 1<<20)
		for {
			if _, err := stuck.Write(chunk); err != nil {
				writerDone <- err
				return
			}
		}
	}()

	p.SetTarget(echoSrv.addr())
	p.SetDelay(0)
	delayedEcho := dial(t, p.Addr())
	roundTrip(t, delayedEcho, "ok")
	p.SetDelay(time.Hour)
	if _, err := io.WriteString(delayedEcho, "parked in a delay"); err != nil {
		t.Fatal(err)
	}

	p.SetBlackhole(true)
	sink := dial(t, p.Addr())
	if _, err := io.WriteString(sink, "dropped"); err != nil {
		t.Fatal(err)
	}

	// Everything is in place once the proxy has accepted all five.
	deadline := time.Now().Add(waitLimit)
	for p.Stats().Accepted < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d, want 5", p.Stats().Accepted)
		}
		time.Sleep(time.Millisecond) // polling against a deadline, not a timed wait
	}

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), waitLimit); err == nil {
		t.Fatal("dial after Close succeeded")
	}

	// The client side sees the proxy gone.
	select {
	case <-writerDone:
	case <-time.After(waitLimit):
		t.Fatal("stuck writer still blocked after Close")
	}
	for _, c := range []net.Conn{idle, halfOpen, delayedEcho, sink} {
		_ = c.Close()
	}
	silent.stop()
	echoSrv.stop()

	// The proxy's goroutines ended in Close; give the runtime's own
	// bookkeeping (and the test's writer) until the deadline to settle.
	deadline = time.Now().Add(waitLimit)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, base, buf)
		}
		time.Sleep(time.Millisecond) // polling against a deadline, not a timed wait
	}
}
