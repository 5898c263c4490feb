// Package faultproxy is a TCP fault-injection proxy for taxlink's chaos drill.
//
// The drill runs real processes (a hub and its nodes) that talk mTLS over
// loopback. On a single machine the network never misbehaves on its own, so
// the drill places a Proxy between a client and a server and uses it to
// inject the faults it needs: cutting connections (FIN), resetting them
// (RST), delaying bytes, blackholing traffic as a partitioned network would,
// refusing new connections as a down server would, and redirecting new
// connections to a restarted server on another port.
//
// The proxy is TLS-agnostic: it forwards raw bytes, so TLS (including the
// handshake, SNI and client certificates) runs end to end through it.
//
// Every fault setter is safe for concurrent use and takes effect immediately.
// Close shuts the listener and every connection down and waits for all of the
// proxy's goroutines to exit.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// bufSize is the size of the copy buffer of each direction of a connection.
	bufSize = 32 << 10
	// dialTimeout bounds how long connecting to the target may take.
	dialTimeout = 10 * time.Second
	// halfCloseTimeout bounds how long a connection may stay half-closed (one
	// direction finished, the other still open) before it is closed entirely,
	// so that a half-open peer cannot hold the connection's goroutines forever.
	halfCloseTimeout = time.Minute
)

// Stats is a snapshot of a Proxy's counters, for the drill's report.
type Stats struct {
	// Accepted counts connections accepted for forwarding (including those
	// accepted while the blackhole was on). Refused connections are not
	// included.
	Accepted int64
	// Refused counts connections closed at once because SetRefuse was on.
	Refused int64
	// Cut counts connections closed by CutAll.
	Cut int64
	// Reset counts connections closed by ResetAll.
	Reset int64
	// BytesUp counts bytes forwarded from clients to the target.
	BytesUp int64
	// BytesDown counts bytes forwarded from the target to clients.
	BytesDown int64
}

// Option configures a Proxy in New.
type Option func(*Proxy)

// WithLogger makes the proxy log to l. Connection life-cycle events and
// connections ending because they were closed (by a peer, a fault or Close)
// are logged at Debug; only unexpected failures (a failed dial, a transient
// accept error, an unusual I/O error) are logged at Warn. A nil l keeps the
// default, which discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(p *Proxy) {
		if l != nil {
			p.log = l
		}
	}
}

// Proxy forwards TCP connections from its listener to a target address,
// applying the faults in force. Create it with New and release it with Close.
// All methods are safe for concurrent use.
type Proxy struct {
	ln   net.Listener
	log  *slog.Logger
	done chan struct{} // closed by Close

	delay     atomic.Int64 // nanoseconds
	refuse    atomic.Bool
	blackhole atomic.Bool

	accepted, refused, cut, reset, bytesUp, bytesDown atomic.Int64

	mu     sync.Mutex
	target string
	links  map[*link]struct{}
	closed bool

	wg sync.WaitGroup // the accept loop and every connection handler
}

// New listens on listen (for example "127.0.0.1:0") and forwards every
// accepted connection to target (host:port). The target is dialed once per
// connection, when it is accepted; it need not be up when New is called.
// New returns an error if target is not a host:port pair or listening fails.
func New(listen, target string, opts ...Option) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: bad target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		ln:     ln,
		log:    slog.New(slog.DiscardHandler),
		done:   make(chan struct{}),
		target: target,
		links:  make(map[*link]struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address the proxy listens on, as host:port; clients
// connect here instead of to the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close closes the listener and every open connection, then waits until all
// of the proxy's goroutines have exited. It is idempotent: later calls also
// wait for shutdown to finish and return nil. The first call returns the
// error from closing the listener, if any.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := p.snapshotLocked()
	p.mu.Unlock()

	close(p.done)
	err := p.ln.Close()
	for _, l := range links {
		l.close(modeNormal)
	}
	p.wg.Wait()
	return err
}

// SetDelay makes the proxy wait d before forwarding each chunk it reads, in
// both directions, on new and existing connections. A round trip through the
// proxy therefore takes at least 2*d longer. d <= 0 removes the delay.
func (p *Proxy) SetDelay(d time.Duration) {
	p.delay.Store(int64(max(d, 0)))
}

// SetRefuse turns refusing on or off. While on, every new connection is
// closed at once with a reset, as if the server were down; connections
// already open are not affected.
func (p *Proxy) SetRefuse(on bool) { p.refuse.Store(on) }

// SetBlackhole turns the blackhole on or off. While on, the proxy behaves like
// a partitioned network: on existing connections, bytes are read and dropped
// in both directions and nothing (not even a FIN) is forwarded; new
// connections are accepted but never connected to the target. Turning the
// blackhole off resumes forwarding on existing connections (the bytes dropped
// meanwhile are lost for good, so a TLS stream will usually fail) and makes
// new connections work normally; connections accepted while the blackhole was
// on stay silent until they are closed.
func (p *Proxy) SetBlackhole(on bool) { p.blackhole.Store(on) }

// CutAll closes every open connection now, on both sides, with an orderly
// shutdown (FIN), so each peer reads EOF. It returns how many connections it
// closed. New connections are not affected.
func (p *Proxy) CutAll() int {
	n := p.closeAll(modeCut)
	p.cut.Add(int64(n))
	return n
}

// ResetAll closes every open connection now, on both sides, with a reset
// (SO_LINGER 0, so an RST is sent), so each peer's next read or write fails
// with ECONNRESET. It returns how many connections it closed. New
// connections are not affected.
func (p *Proxy) ResetAll() int {
	n := p.closeAll(modeReset)
	p.reset.Add(int64(n))
	return n
}

// SetTarget makes connections accepted from now on go to target (host:port),
// for example a server restarted on another port. Open connections keep
// their current target. An unusable target makes later dials fail, which
// closes the client connections concerned.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Stats returns a snapshot of the proxy's counters. After Close returns, the
// counters are final.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted:  p.accepted.Load(),
		Refused:   p.refused.Load(),
		Cut:       p.cut.Load(),
		Reset:     p.reset.Load(),
		BytesUp:   p.bytesUp.Load(),
		BytesDown: p.bytesDown.Load(),
	}
}

func (p *Proxy) currentTarget() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

func (p *Proxy) snapshotLocked() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) closeAll(m closeMode) int {
	p.mu.Lock()
	links := p.snapshotLocked()
	p.mu.Unlock()
	n := 0
	for _, l := range links {
		if l.close(m) {
			n++
		}
	}
	return n
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure such as EMFILE: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("faultproxy: accept failed", "addr", p.Addr(), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.done:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if p.refuse.Load() {
			p.refused.Add(1)
			p.log.Debug("faultproxy: refused connection", "client", c.RemoteAddr().String())
			shut(c, modeReset)
			continue
		}
		p.admit(c)
	}
}

func (p *Proxy) admit(c net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{client: c, ctx: ctx, cancel: cancel}
	sink := p.blackhole.Load()

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cancel()
		_ = c.Close()
		return
	}
	p.links[l] = struct{}{}
	p.wg.Add(1)
	p.mu.Unlock()

	p.accepted.Add(1)
	go p.serve(l, sink)
}

// serve runs one connection: it dials the target and copies both ways until
// both directions are done or the connection is closed. It closes both sides
// and forgets the link before returning.
func (p *Proxy) serve(l *link, sink bool) {
	defer p.wg.Done()
	defer func() {
		l.close(modeNormal)
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	client := l.client.RemoteAddr().String()

	if sink {
		// Accepted during a blackhole: never connect, read and drop.
		p.log.Debug("faultproxy: blackholed new connection", "client", client)
		err := p.pipe(l, nil, l.client, nil)
		p.logEnd(l, "blackhole", err)
		return
	}

	target := p.currentTarget()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(l.ctx, "tcp", target)
	if err != nil {
		if l.ctx.Err() == nil {
			p.log.Warn("faultproxy: dial target failed", "client", client, "target", target, "err", err)
		}
		return
	}
	if !l.setServer(server) {
		_ = server.Close() // closed by a fault or Close while dialing
		return
	}
	p.log.Debug("faultproxy: connection open", "client", client, "target", target)

	downDone := make(chan struct{})
	go func() {
		defer close(downDone)
		err := p.pipe(l, l.client, server, &p.bytesDown)
		p.endDirection(l, "down", l.client, l.client, err)
	}()
	err = p.pipe(l, server, l.client, &p.bytesUp)
	p.endDirection(l, "up", server, server, err)
	<-downDone
	p.log.Debug("faultproxy: connection closed", "client", client, "target", target)
}

// pipe copies src to dst chunk by chunk, applying the delay and blackhole in
// force to each chunk, until reading src fails. A nil dst drops everything.
// It returns nil when src ended with EOF.
func (p *Proxy) pipe(l *link, dst, src net.Conn, counter *atomic.Int64) error {
	buf := make([]byte, bufSize)
	for {
		n, rerr := src.Read(buf)
		if n > 0 && dst != nil && !p.blackhole.Load() {
			if d := time.Duration(p.delay.Load()); d > 0 && !l.sleep(d) {
				return net.ErrClosed
			}
			// Re-check: the blackhole may have come on during the delay.
			if !p.blackhole.Load() {
				w, werr := dst.Write(buf[:n])
				counter.Add(int64(w))
				if werr != nil {
					return werr
				}
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}

// endDirection handles the end of one direction. On EOF it forwards the
// half-close to dst (unless blackholed) and bounds how long the other
// direction, reading from otherSrc, may still run; on an error it closes the
// whole connection so that the other direction ends too.
func (p *Proxy) endDirection(l *link, dir string, dst, otherSrc net.Conn, err error) {
	if err != nil {
		p.logEnd(l, dir, err)
		l.close(modeNormal)
		return
	}
	if !p.blackhole.Load() {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	_ = otherSrc.SetReadDeadline(time.Now().Add(halfCloseTimeout))
}

func (p *Proxy) logEnd(l *link, dir string, err error) {
	if err == nil {
		return
	}
	client := l.client.RemoteAddr().String()
	if l.closedBy() != modeNone || expectedErr(err) {
		p.log.Debug("faultproxy: connection ended", "client", client, "dir", dir, "err", err)
		return
	}
	p.log.Warn("faultproxy: connection failed", "client", client, "dir", dir, "err", err)
}

// expectedErr reports whether err is the ordinary result of a connection
// being closed or timing out, rather than a failure worth a warning.
func expectedErr(err error) bool {
	return errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.Canceled)
}

type closeMode int

const (
	modeNone   closeMode = iota
	modeNormal           // Close, end of connection
	modeCut              // CutAll: FIN
	modeReset            // ResetAll: RST
)

// link is one proxied connection: the client side and, once dialed, the
// server side.
type link struct {
	client net.Conn
	ctx    context.Context // cancelled when the link is closed
	cancel context.CancelFunc

	mu     sync.Mutex
	server net.Conn
	mode   closeMode // how it was closed; modeNone while open
}

// setServer records the dialed server side; it reports false if the link was
// closed meanwhile, in which case the caller must close server.
func (l *link) setServer(server net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mode != modeNone {
		return false
	}
	l.server = server
	return true
}

func (l *link) closedBy() closeMode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// close closes both sides of the link the way m says. Only the first call
// has an effect; it reports whether this call closed the link.
func (l *link) close(m closeMode) bool {
	l.mu.Lock()
	if l.mode != modeNone {
		l.mu.Unlock()
		return false
	}
	l.mode = m
	server := l.server
	l.mu.Unlock()

	l.cancel()
	shut(l.client, m)
	if server != nil {
		shut(server, m)
	}
	return true
}

// sleep waits d, or less if the link is closed meanwhile; it reports whether
// the link is still open.
func (l *link) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// shut closes c: after sending a FIN for modeCut, with an RST for modeReset.
func shut(c net.Conn, m closeMode) {
	switch m {
	case modeCut:
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	case modeReset:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = c.Close()
}
