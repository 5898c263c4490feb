package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Clamd. Test with errors.Is.
var (
	// ErrUnavailable wraps dial and I/O failures (including deadlines and
	// cancellation): no verdict was reached, the caller keeps the payload
	// unscanned (not clean) and retries later.
	ErrUnavailable = errors.New("scan: scanner unavailable")
	// ErrProtocol reports a reply that is not one the protocol allows. The
	// error message quotes at most 100 bytes of the reply, printable ASCII
	// only.
	ErrProtocol = errors.New("scan: scanner protocol error")
	// ErrTooLarge reports that the payload exceeds the scanner's stream limit
	// (clamd's StreamMaxLength). No verdict was reached.
	ErrTooLarge = errors.New("scan: payload exceeds the scanner's stream size limit")
)

const (
	// DefaultTimeout is the per-call deadline used when the context has none.
	DefaultTimeout = 60 * time.Second
	// MaxChunkSize is the largest INSTREAM chunk Clamd sends (64 KiB).
	MaxChunkSize = 64 << 10

	maxReplyLen   = 4096 // longest reply accepted before the NUL terminator
	maxQuoteLen   = 100  // bytes of a bad reply quoted in an error
	maxAddressLen = 4096
	maxUnixPath   = 107 // sun_path is 108 bytes including the NUL

	replyOK        = "stream: OK"
	replyTooLarge  = "INSTREAM size limit exceeded. ERROR"
	replyPong      = "PONG"
	replyPrefix    = "stream: "
	replyFoundTail = " FOUND"
)

// Clamd is a Scanner that talks to a ClamAV clamd daemon over
// "unix:/path/to/clamd.ctl" or "tcp:host:port".
//
// Scan uses the INSTREAM command (zINSTREAM\0, then chunks each prefixed by
// its 4-byte big-endian length, at most 64 KiB each, then a zero-length
// terminator) and parses the reply strictly: "stream: OK" is clean,
// "stream: <NAME> FOUND" is infected with NAME, "INSTREAM size limit
// exceeded. ERROR" is ErrTooLarge, and anything else is ErrProtocol.
//
// Every call opens its own connection and runs under one deadline: the
// context's deadline, or DefaultTimeout (see WithTimeout) when the context
// has none. Cancelling the context aborts the call's network I/O. A Clamd is
// safe for concurrent use.
type Clamd struct {
	address string // as given, for messages
	network string // "unix" or "tcp"
	addr    string // path or host:port
	timeout time.Duration
	chunk   int
}

var _ Scanner = (*Clamd)(nil)

// Option configures a Clamd in NewClamd.
type Option func(*Clamd) error

// WithTimeout sets the per-call deadline used when the context has none
// (default DefaultTimeout). d must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *Clamd) error {
		if d <= 0 {
			return fmt.Errorf("scan: timeout must be positive, got %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithChunkSize sets the INSTREAM chunk size in bytes (default and maximum
// MaxChunkSize). n must be in 1..MaxChunkSize.
func WithChunkSize(n int) Option {
	return func(c *Clamd) error {
		if n < 1 || n > MaxChunkSize {
			return fmt.Errorf("scan: chunk size must be in 1..%d, got %d", MaxChunkSize, n)
		}
		c.chunk = n
		return nil
	}
}

// NewClamd returns a Clamd for address, which must be "unix:<absolute path>"
// or "tcp:<host>:<port>" (IPv6 hosts in brackets, port 1..65535). It
// validates the address form and the options but does not connect; use
// Ping to check reachability.
func NewClamd(address string, opts ...Option) (*Clamd, error) {
	network, addr, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	c := &Clamd{address: address, network: network, addr: addr, timeout: DefaultTimeout, chunk: MaxChunkSize}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseAddress validates a clamd address and splits it into a net network
// and address.
func parseAddress(address string) (network, addr string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("scan: invalid clamd address %q: %s (want unix:/path or tcp:host:port)", truncate(address, 200), why)
	}
	if len(address) > maxAddressLen || !isPrintableASCII(address) {
		return "", "", bad("not printable ASCII or too long")
	}
	switch {
	case strings.HasPrefix(address, "unix:"):
		p := strings.TrimPrefix(address, "unix:")
		switch {
		case p == "":
			return "", "", bad("empty socket path")
		case !strings.HasPrefix(p, "/"):
			return "", "", bad("socket path must be absolute")
		case len(p) > maxUnixPath:
			return "", "", bad("socket path longer than " + strconv.Itoa(maxUnixPath) + " bytes")
		}
		return "unix", p, nil
	case strings.HasPrefix(address, "tcp:"):
		hp := strings.TrimPrefix(address, "tcp:")
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return "", "", bad(err.Error())
		}
		if host == "" || strings.ContainsAny(host, " /") {
			return "", "", bad("bad host")
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", "", bad("bad port")
		}
		return "tcp", hp, nil
	default:
		return "", "", bad("unknown scheme")
	}
}

// Address returns the address the Clamd was created with.
func (c *Clamd) Address() string { return c.address }

// call is one connection to clamd under one deadline.
type call struct {
	c    *Clamd
	ctx  context.Context
	conn net.Conn
	stop func() bool
}

// deadline returns the deadline for a call started now.
func (c *Clamd) deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(c.timeout)
}

// dial opens a connection that is bounded by dl and aborted when ctx is
// cancelled.
func (c *Clamd) dial(ctx context.Context, dl time.Time) (*call, error) {
	dctx, cancel := context.WithDeadline(ctx, dl)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, c.network, c.addr)
	if err != nil {
		return nil, c.unavailable(ctx, "dial", err)
	}
	if err := conn.SetDeadline(dl); err != nil {
		conn.Close()
		return nil, c.unavailable(ctx, "set deadline", err)
	}
	stop := context.AfterFunc(ctx, func() {
		// Unblock any pending I/O; the error is reported by that I/O.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	return &call{c: c, ctx: ctx, conn: conn, stop: stop}, nil
}

// close releases the connection.
func (k *call) close() {
	k.stop()
	k.conn.Close()
}

// unavailable wraps an I/O failure in ErrUnavailable, adding the context's
// error when the context is done (or its deadline has passed).
func (c *Clamd) unavailable(ctx context.Context, op string, err error) error {
	cerr := ctx.Err()
	if cerr == nil {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: clamd %s: %s: %w: %w", ErrUnavailable, c.address, op, cerr, err)
	}
	return fmt.Errorf("%w: clamd %s: %s: %w", ErrUnavailable, c.address, op, err)
}

// protocol returns an ErrProtocol error quoting a bounded, printable part of
// reply.
func (c *Clamd) protocol(what string, reply []byte) error {
	return fmt.Errorf("%w: clamd %s: %s: %s", ErrProtocol, c.address, what, quoteReply(reply))
}

// quoteReply renders at most maxQuoteLen bytes of b in double quotes with
// every non-printable byte replaced by '?'.
func quoteReply(b []byte) string {
	n := min(len(b), maxQuoteLen)
	var sb strings.Builder
	sb.Grow(n + 40)
	sb.WriteByte('"')
	for _, ch := range b[:n] {
		if ch < 0x20 || ch > 0x7e {
			ch = '?'
		}
		sb.WriteByte(ch)
	}
	sb.WriteByte('"')
	if len(b) > n {
		fmt.Fprintf(&sb, " (first %d of %d bytes)", n, len(b))
	}
	return sb.String()
}

// truncate shortens s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// write sends b, reporting failures as ErrUnavailable.
func (k *call) write(op string, b []byte) error {
	if _, err := k.conn.Write(b); err != nil {
		return k.c.unavailable(k.ctx, op, err)
	}
	return nil
}

// readReply reads one NUL-terminated reply and returns it without the NUL.
// A connection closed before any byte, and any other read failure, is
// ErrUnavailable; a reply closed without its terminator or longer than
// maxReplyLen is ErrProtocol.
func (k *call) readReply() ([]byte, error) {
	var (
		reply []byte
		buf   [512]byte
	)
	for {
		n, err := k.conn.Read(buf[:])
		reply = append(reply, buf[:n]...)
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			if i > maxReplyLen {
				return nil, k.c.protocol("reply too long", reply)
			}
			return reply[:i], nil
		}
		if len(reply) > maxReplyLen {
			return nil, k.c.protocol("reply too long", reply)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(reply) == 0 {
					return nil, k.c.unavailable(k.ctx, "read reply", io.ErrUnexpectedEOF)
				}
				return nil, k.c.protocol("reply not NUL-terminated", reply)
			}
			return nil, k.c.unavailable(k.ctx, "read reply", err)
		}
	}
}

// command sends a bare z-command and returns its reply.
func (c *Clamd) command(ctx context.Context, dl time.Time, cmd string) ([]byte, error) {
	k, err := c.dial(ctx, dl)
	if err != nil {
		return nil, err
	}
	defer k.close()
	if err := k.write(cmd, []byte("z"+cmd+"\x00")); err != nil {
		return nil, err
	}
	return k.readReply()
}

// Ping sends PING and succeeds when clamd answers "PONG". Errors wrap
// ErrUnavailable or ErrProtocol.
func (c *Clamd) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, c.deadline(ctx), "PING")
	if err != nil {
		return err
	}
	if string(reply) != replyPong {
		return c.protocol("unexpected PING reply", reply)
	}
	return nil
}

// Version sends VERSION and returns clamd's version string (for example
// "ClamAV 1.4.6/27000/Mon Jan 1 08:00:00 2026"). The reply must be
// non-empty printable ASCII of at most 256 bytes, else the error wraps
// ErrProtocol; I/O failures wrap ErrUnavailable.
func (c *Clamd) Version(ctx context.Context) (string, error) {
	return c.version(ctx, c.deadline(ctx))
}

func (c *Clamd) version(ctx context.Context, dl time.Time) (string, error) {
	reply, err := c.command(ctx, dl, "VERSION")
	if err != nil {
		return "", err
	}
	s := string(reply)
	if s == "" || !validScanner(s) {
		return "", c.protocol("bad VERSION reply", reply)
	}
	return s, nil
}

// Scan asks clamd for the version (Verdict.Scanner), then streams r to it
// with INSTREAM and returns the verdict. Both steps share one deadline. The
// version is fetched first, so when clamd is unreachable r has not been
// read.
//
// Errors: ErrUnavailable (dial or I/O failure, deadline, cancellation; also
// when clamd stops reading before the whole payload was sent, unless it
// reported the size limit), ErrTooLarge, ErrProtocol, or an error wrapping
// r's own read error. On any error the Verdict is the zero value and the
// payload is not clean. Cancelling ctx does not interrupt a blocked
// r.Read.
func (c *Clamd) Scan(ctx context.Context, r io.Reader) (Verdict, error) {
	if r == nil {
		return Verdict{}, errors.New("scan: nil reader")
	}
	dl := c.deadline(ctx)
	ver, err := c.version(ctx, dl)
	if err != nil {
		return Verdict{}, err
	}
	k, err := c.dial(ctx, dl)
	if err != nil {
		return Verdict{}, err
	}
	defer k.close()

	if err := k.write("INSTREAM", []byte("zINSTREAM\x00")); err != nil {
		return Verdict{}, err
	}
	if err := k.stream(r); err != nil {
		var rerr *readerError
		if errors.As(err, &rerr) {
			return Verdict{}, err
		}
		// clamd may have refused the stream and closed the connection
		// (size limit). Look for its reply, but never accept a verdict
		// for a payload that was not sent in full.
		if reply, rerr := k.readReply(); rerr == nil && string(reply) == replyTooLarge {
			return Verdict{}, fmt.Errorf("%w: clamd %s", ErrTooLarge, c.address)
		}
		return Verdict{}, err
	}
	reply, err := k.readReply()
	if err != nil {
		return Verdict{}, err
	}
	return c.parseScanReply(reply, ver)
}

// readerError marks a failure of the caller's reader, as opposed to I/O
// with clamd.
type readerError struct{ err error }

func (e *readerError) Error() string { return "scan: reading payload: " + e.err.Error() }
func (e *readerError) Unwrap() error { return e.err }

// stream sends r as INSTREAM chunks followed by the zero-length terminator.
func (k *call) stream(r io.Reader) error {
	frame := make([]byte, 4+k.c.chunk)
	for {
		n, err := io.ReadFull(r, frame[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(frame[:4], uint32(n))
			if werr := k.write("INSTREAM chunk", frame[:4+n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return k.write("INSTREAM terminator", []byte{0, 0, 0, 0})
		default:
			return &readerError{err: err}
		}
	}
}

// parseScanReply maps an INSTREAM reply to a verdict.
func (c *Clamd) parseScanReply(reply []byte, ver string) (Verdict, error) {
	s := string(reply)
	switch {
	case s == replyOK:
		return Verdict{Clean: true, Scanner: ver}, nil
	case s == replyTooLarge:
		return Verdict{}, fmt.Errorf("%w: clamd %s", ErrTooLarge, c.address)
	case strings.HasPrefix(s, replyPrefix) && strings.HasSuffix(s, replyFoundTail) &&
		len(s) > len(replyPrefix)+len(replyFoundTail):
		name := s[len(replyPrefix) : len(s)-len(replyFoundTail)]
		if !validSignature(name) {
			return Verdict{}, c.protocol("bad signature name in reply", reply)
		}
		return Verdict{Clean: false, Signature: name, Scanner: ver}, nil
	default:
		return Verdict{}, c.protocol("unexpected INSTREAM reply", reply)
	}
}
