package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// socketDir returns a directory short enough for a unix socket path.
func socketDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("", "scan")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// instream is what a fake server received for one INSTREAM command.
type instream struct {
	chunks []int // lengths of the non-terminator chunks, in order
	data   []byte
	err    error // framing error, if any
}

// fakeClamd is an in-process clamd stand-in on a unix socket.
type fakeClamd struct {
	addr string
	mu   sync.Mutex
	got  []instream
}

// handler serves one connection after its command was read.
type handler func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn)

// startFake serves every connection with h, answering VERSION itself
// with version unless version is empty.
func startFake(t *testing.T, version string, h handler) *fakeClamd {
	t.Helper()
	path := filepath.Join(socketDir(t), "clamd.ctl")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{addr: "unix:" + path}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(conn)
				cmd, err := br.ReadString(0)
				if err != nil {
					return
				}
				if cmd == "zVERSION\x00" && version != "" {
					_, _ = conn.Write([]byte(version + "\x00"))
					return
				}
				h(f, cmd, br, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return f
}

// readInstream reads INSTREAM chunks up to the terminator and records them.
func (f *fakeClamd) readInstream(br *bufio.Reader) instream {
	var in instream
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			in.err = fmt.Errorf("chunk header: %w", err)
			break
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			break
		}
		if n > MaxChunkSize {
			in.err = fmt.Errorf("chunk of %d bytes exceeds 64 KiB", n)
			break
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			in.err = fmt.Errorf("chunk body: %w", err)
			break
		}
		in.chunks = append(in.chunks, int(n))
		in.data = append(in.data, buf...)
	}
	f.mu.Lock()
	f.got = append(f.got, in)
	f.mu.Unlock()
	return in
}

func (f *fakeClamd) received(t *testing.T) []instream {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]instream(nil), f.got...)
}

// replyAfterInstream reads a whole INSTREAM, then writes reply verbatim.
func replyAfterInstream(reply string) handler {
	return func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
		if cmd != "zINSTREAM\x00" {
			_, _ = conn.Write([]byte("UNKNOWN COMMAND\x00"))
			return
		}
		if in := f.readInstream(br); in.err != nil {
			return
		}
		_, _ = conn.Write([]byte(reply))
	}
}

const fakeVersion = "ClamAV 1.4.6/27000/Fake"

func newClamd(t *testing.T, addr string, opts ...Option) *Clamd {
	t.Helper()
	c, err := NewClamd(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewClamdAddress(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"unix:/var/run/clamav/clamd.ctl", true},
		{"tcp:127.0.0.1:3310", true},
		{"tcp:localhost:3310", true},
		{"tcp:[::1]:3310", true},
		{"", false},
		{"unix:", false},
		{"unix:relative/clamd.ctl", false},
		{"unix:/" + strings.Repeat("a", 200), false},
		{"tcp:", false},
		{"tcp:127.0.0.1", false},
		{"tcp::3310", false},
		{"tcp:127.0.0.1:0", false},
		{"tcp:127.0.0.1:65536", false},
		{"tcp:127.0.0.1:http", false},
		{"tcp:127.0.0.1:+3310", false},
		{"udp:127.0.0.1:3310", false},
		{"/var/run/clamav/clamd.ctl", false},
		{"unix:/tmp/clamd\x00.ctl", false},
		{"tcp:ホスト:3310", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.addr), func(t *testing.T) {
			c, err := NewClamd(tc.addr)
			if tc.ok && (err != nil || c == nil) {
				t.Fatalf("NewClamd(%q) = %v, want ok", tc.addr, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("NewClamd(%q) succeeded, want error", tc.addr)
			}
		})
	}
}

func TestNewClamdOptions(t *testing.T) {
	for _, o := range []Option{WithTimeout(0), WithTimeout(-time.Second), WithChunkSize(0), WithChunkSize(MaxChunkSize + 1)} {
		if _, err := NewClamd("tcp:127.0.0.1:3310", o); err == nil {
			t.Error("NewClamd accepted an invalid option")
		}
	}
	if _, err := NewClamd("tcp:127.0.0.1:3310", WithTimeout(time.Second), WithChunkSize(1), nil); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}

func TestScanFraming(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	tests := []struct {
		name  string
		size  int
		chunk int // 0: default
		wrap  func(io.Reader) io.Reader
	}{
		{"empty", 0, 0, nil},
		{"one byte", 1, 0, nil},
		{"just under a chunk", MaxChunkSize - 1, 0, nil},
		{"exactly a chunk", MaxChunkSize, 0, nil},
		{"just over a chunk", MaxChunkSize + 1, 0, nil},
		{"several chunks", 3*MaxChunkSize + 17, 0, nil},
		{"short reads", 2*MaxChunkSize + 5, 0, iotest.HalfReader},
		{"one-byte reads", 3000, 0, iotest.OneByteReader},
		{"small chunks", 10_000, 1000, nil},
		{"chunk size 1", 7, 1, nil},
		{"data with EOF", MaxChunkSize + 3, 0, iotest.DataErrReader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakeVersion, replyAfterInstream("stream: OK\x00"))
			var opts []Option
			chunk := MaxChunkSize
			if tc.chunk > 0 {
				opts = append(opts, WithChunkSize(tc.chunk))
				chunk = tc.chunk
			}
			c := newClamd(t, f.addr, opts...)
			want := payload(tc.size)
			var r io.Reader = bytes.NewReader(want)
			if tc.wrap != nil {
				r = tc.wrap(r)
			}
			v, err := c.Scan(testCtx(t, 20*time.Second), r)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if v != (Verdict{Clean: true, Scanner: fakeVersion}) {
				t.Fatalf("verdict = %+v", v)
			}
			got := f.received(t)
			if len(got) != 1 {
				t.Fatalf("server saw %d INSTREAMs, want 1", len(got))
			}
			in := got[0]
			if in.err != nil {
				t.Fatalf("framing: %v", in.err)
			}
			if !bytes.Equal(in.data, want) {
				t.Fatalf("reassembled %d bytes differ from the %d sent", len(in.data), len(want))
			}
			wantChunks := (tc.size + chunk - 1) / chunk
			if len(in.chunks) != wantChunks {
				t.Errorf("%d chunks, want %d", len(in.chunks), wantChunks)
			}
			for i, n := range in.chunks {
				if n > chunk || (i < len(in.chunks)-1 && n != chunk) {
					t.Errorf("chunk %d has %d bytes (chunk size %d)", i, n, chunk)
				}
			}
		})
	}
}

func TestScanReplies(t *testing.T) {
	garbage := append([]byte("\x01\x02binary"), bytes.Repeat([]byte{0xff, 'A'}, 300)...)
	tests := []struct {
		name    string
		reply   string
		want    Verdict
		wantErr error
	}{
		{"ok", "stream: OK\x00", Verdict{Clean: true, Scanner: fakeVersion}, nil},
		{"found", "stream: Eicar-Test-Signature FOUND\x00", Verdict{Signature: "Eicar-Test-Signature", Scanner: fakeVersion}, nil},
		{"found extended info", "stream: Win.Test(0123abcd:68) FOUND\x00", Verdict{Signature: "Win.Test(0123abcd:68)", Scanner: fakeVersion}, nil},
		{"size limit", "INSTREAM size limit exceeded. ERROR\x00", Verdict{}, ErrTooLarge},
		{"garbage", "hello\x00", Verdict{}, ErrProtocol},
		{"binary garbage", string(garbage) + "\x00", Verdict{}, ErrProtocol},
		{"newline terminated", "stream: OK\n", Verdict{}, ErrProtocol},
		{"trailing newline", "stream: OK\n\x00", Verdict{}, ErrProtocol},
		{"no terminator then close", "stream: OK", Verdict{}, ErrProtocol},
		{"lowercase ok", "stream: ok\x00", Verdict{}, ErrProtocol},
		{"empty name", "stream:  FOUND\x00", Verdict{}, ErrProtocol},
		{"missing name", "stream: FOUND\x00", Verdict{}, ErrProtocol},
		{"control in name", "stream: Bad\x01Name FOUND\x00", Verdict{}, ErrProtocol},
		{"name too long", "stream: " + strings.Repeat("N", 201) + " FOUND\x00", Verdict{}, ErrProtocol},
		{"other error", "stream: Can't allocate memory ERROR\x00", Verdict{}, ErrProtocol},
		{"empty reply", "\x00", Verdict{}, ErrProtocol},
		{"huge reply", strings.Repeat("x", 10_000) + "\x00", Verdict{}, ErrProtocol},
		{"closed without reply", "", Verdict{}, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakeVersion, replyAfterInstream(tc.reply))
			c := newClamd(t, f.addr)
			v, err := c.Scan(testCtx(t, 20*time.Second), strings.NewReader("payload"))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if v != (Verdict{}) {
					t.Errorf("verdict = %+v on error, want zero", v)
				}
				checkQuoted(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if v != tc.want {
				t.Fatalf("verdict = %+v, want %+v", v, tc.want)
			}
		})
	}
}

// checkQuoted checks that an ErrProtocol message quotes at most 100 bytes
// of the reply, printable ASCII only.
func checkQuoted(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !isPrintableASCII(msg) {
		t.Errorf("error message not printable ASCII: %q", msg)
	}
	if !errors.Is(err, ErrProtocol) {
		return
	}
	i := strings.IndexByte(msg, '"')
	j := strings.LastIndexByte(msg, '"')
	if i < 0 || j <= i {
		t.Fatalf("no quoted reply in %q", msg)
	}
	if q := msg[i+1 : j]; len(q) > maxQuoteLen {
		t.Errorf("quoted %d bytes of the reply, want at most %d: %q", len(q), maxQuoteLen, msg)
	}
}

func TestQuoteReply(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("abc"), `"abc"`},
		{[]byte("a\x00b\xffc\n"), `"a?b?c?"`},
		{bytes.Repeat([]byte("z"), 150), `"` + strings.Repeat("z", 100) + `" (first 100 of 150 bytes)`},
	}
	for _, tc := range tests {
		if got := quoteReply(tc.in); got != tc.want {
			t.Errorf("quoteReply(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScanUnavailable(t *testing.T) {
	t.Run("no listener", func(t *testing.T) {
		c := newClamd(t, "unix:"+filepath.Join(socketDir(t), "missing.ctl"))
		called := false
		r := readerFunc(func(p []byte) (int, error) { called = true; return 0, io.EOF })
		_, err := c.Scan(testCtx(t, 10*time.Second), r)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if called {
			t.Error("payload was read although clamd was unreachable")
		}
		if err := c.Ping(testCtx(t, 10*time.Second)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ping err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("closed connection", func(t *testing.T) {
		f := startFake(t, "", func(*fakeClamd, string, *bufio.Reader, net.Conn) {})
		c := newClamd(t, f.addr)
		if _, err := c.Scan(testCtx(t, 10*time.Second), strings.NewReader("x")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("closed during instream", func(t *testing.T) {
		f := startFake(t, fakeVersion, func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
			_, _ = io.CopyN(io.Discard, br, 100_000)
		})
		c := newClamd(t, f.addr)
		_, err := c.Scan(testCtx(t, 10*time.Second), bytes.NewReader(make([]byte, 16<<20)))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("early OK is not clean", func(t *testing.T) {
		// A server that answers OK before it has the whole payload and
		// hangs up must not produce a clean verdict.
		f := startFake(t, fakeVersion, func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
			_, _ = io.CopyN(io.Discard, br, 100_000)
			_, _ = conn.Write([]byte("stream: OK\x00"))
		})
		c := newClamd(t, f.addr)
		v, err := c.Scan(testCtx(t, 10*time.Second), bytes.NewReader(make([]byte, 16<<20)))
		if !errors.Is(err, ErrUnavailable) || v.Clean {
			t.Fatalf("Scan = %+v, %v; want ErrUnavailable", v, err)
		}
	})
	t.Run("size limit before end", func(t *testing.T) {
		// clamd answers the size limit and closes while the client still
		// writes: the write fails, and the reply must still be reported.
		f := startFake(t, fakeVersion, func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
			_, _ = io.CopyN(io.Discard, br, 100_000)
			_, _ = conn.Write([]byte("INSTREAM size limit exceeded. ERROR\x00"))
		})
		c := newClamd(t, f.addr)
		_, err := c.Scan(testCtx(t, 10*time.Second), bytes.NewReader(make([]byte, 16<<20)))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestScanReaderError(t *testing.T) {
	f := startFake(t, fakeVersion, replyAfterInstream("stream: OK\x00"))
	c := newClamd(t, f.addr)
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(make([]byte, 100_000)), iotest.ErrReader(boom))
	v, err := c.Scan(testCtx(t, 10*time.Second), r)
	if !errors.Is(err, boom) || errors.Is(err, ErrUnavailable) || v.Clean {
		t.Fatalf("Scan = %+v, %v; want the reader's error", v, err)
	}
	if _, err := c.Scan(testCtx(t, 10*time.Second), nil); err == nil {
		t.Error("Scan(nil) succeeded")
	}
}

// stallServer accepts commands and never answers; it signals each command
// on the returned channel.
func stallServer(t *testing.T) (*fakeClamd, <-chan string) {
	t.Helper()
	cmds := make(chan string, 16)
	done := make(chan struct{})
	f := startFake(t, "", func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
		select {
		case cmds <- cmd:
		default:
		}
		// Drain until the client gives up (closes) or the test ends.
		go func() { _, _ = io.Copy(io.Discard, br) }()
		<-done
	})
	// Registered after startFake's cleanup, so it runs first.
	t.Cleanup(func() { close(done) })
	return f, cmds
}

func TestScanSlowServer(t *testing.T) {
	t.Run("ctx deadline", func(t *testing.T) {
		f, _ := stallServer(t)
		c := newClamd(t, f.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Scan(ctx, strings.NewReader("x"))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Scan took %v with a 300ms deadline", el)
		}
	})
	t.Run("default timeout", func(t *testing.T) {
		f, _ := stallServer(t)
		c := newClamd(t, f.addr, WithTimeout(300*time.Millisecond))
		start := time.Now()
		_, err := c.Version(context.Background())
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and a deadline error", err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Version took %v with a 300ms timeout", el)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		f, cmds := stallServer(t)
		c := newClamd(t, f.addr) // 60 s default: only cancellation can end it in time
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- c.Ping(ctx) }()
		select {
		case <-cmds:
		case <-time.After(10 * time.Second):
			t.Fatal("server never saw the command")
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want ErrUnavailable and Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Ping did not return after cancel")
		}
	})
}

func TestPingVersion(t *testing.T) {
	reply := func(s string) handler {
		return func(f *fakeClamd, cmd string, br *bufio.Reader, conn net.Conn) {
			_, _ = conn.Write([]byte(s))
		}
	}
	t.Run("ping", func(t *testing.T) {
		tests := []struct {
			reply   string
			wantErr error
		}{
			{"PONG\x00", nil},
			{"PANG\x00", ErrProtocol},
			{"PONG\n", ErrProtocol},
			{"", ErrUnavailable},
		}
		for _, tc := range tests {
			f := startFake(t, "", reply(tc.reply))
			err := newClamd(t, f.addr).Ping(testCtx(t, 10*time.Second))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Ping with reply %q = %v, want %v", tc.reply, err, tc.wantErr)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		tests := []struct {
			reply   string
			want    string
			wantErr error
		}{
			{"ClamAV 1.4.6/27000/Mon Jan  1 08:00:00 2026\x00", "ClamAV 1.4.6/27000/Mon Jan  1 08:00:00 2026", nil},
			{"\x00", "", ErrProtocol},
			{"ClamAV\x01\x00", "", ErrProtocol},
			{strings.Repeat("v", 257) + "\x00", "", ErrProtocol},
		}
		for _, tc := range tests {
			f := startFake(t, "", reply(tc.reply))
			got, err := newClamd(t, f.addr).Version(testCtx(t, 10*time.Second))
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Version with reply %q = %q, %v; want %q, %v", tc.reply, got, err, tc.want, tc.wantErr)
			}
		}
	})
}
