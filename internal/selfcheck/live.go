package selfcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runState is the state of one Run shared by its checks.
type runState struct {
	env *Env

	runOnce sync.Once
	isUp    bool
}

// serviceAddr returns the address the service listens on.
func (r *runState) serviceAddr() string {
	return dialable(firstNonEmpty(r.env.Live.Service, r.env.Common.Listen))
}

// consoleAddr returns the address the console listens on ("" without a
// console).
func (r *runState) consoleAddr() string {
	if r.env.Common.Console == nil {
		return ""
	}
	return dialable(firstNonEmpty(r.env.Live.Console, r.env.Common.Console.Listen))
}

// running reports whether the service listener accepts connections (the
// process runs); always false with Live.Off.
func (r *runState) running(ctx context.Context) bool {
	r.runOnce.Do(func() {
		if r.env.Live.Off {
			return
		}
		d := net.Dialer{Timeout: r.env.Live.timeout()}
		c, err := d.DialContext(ctx, "tcp", r.serviceAddr())
		if err == nil {
			c.Close()
			r.isUp = true
		}
	})
	return r.isUp
}

// dialable turns a listen address into one to dial: an unspecified host
// becomes the loopback address.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if unspecifiedHost(host) {
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// probeHealth gets http://addr/healthz and wants 200.
func probeHealth(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dialable(addr)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// errNotListening is returned by probeNoTLS12 when nothing accepts
// connections at the address.
var errNotListening = errors.New("not listening")

// probeNoTLS12 offers a TLS 1.2 (at most) handshake to addr, verifying the
// server with roots (never skipping verification), and returns nil only
// when the server refuses it with a protocol_version alert. A completed
// handshake, a server that asks for a client certificate or sends one of
// its own (it negotiated TLS 1.2 or older to do so), or any other
// outcome is an error saying what happened.
func probeNoTLS12(ctx context.Context, addr string, roots *x509.CertPool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotListening, err)
	}
	defer raw.Close()
	host, _, _ := net.SplitHostPort(addr)
	reached := ""
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS10,
		MaxVersion: tls.VersionTLS12,
		RootCAs:    roots,
		ServerName: host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			reached = "asked for a client certificate"
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			reached = "presented a verified certificate"
			return nil
		},
	}
	c := tls.Client(raw, cfg)
	err = c.HandshakeContext(ctx)
	if err == nil {
		c.Close()
		return fmt.Errorf("a TLS %s handshake succeeded", tls.VersionName(c.ConnectionState().Version))
	}
	if reached != "" {
		return fmt.Errorf("accepted TLS 1.2 or older: the server %s (%v)", reached, err)
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fmt.Errorf("accepted TLS 1.2 or older: the server sent its certificate (%v)", err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), "protocol version") {
		return nil
	}
	return fmt.Errorf("TLS 1.2 offer not refused with a protocol_version alert: %v", err)
}

// ---------------------------------------------------------------------------
// Listening sockets, from /proc (Linux).

// sockAddr is a listening TCP socket.
type sockAddr struct {
	addr  netip.AddrPort
	inode uint64
}

// String returns the socket's address as HOST:PORT.
func (s sockAddr) String() string { return s.addr.String() }

// procAvailable reports whether /proc/self/net/tcp can be read.
func procAvailable() bool {
	_, err := os.Stat("/proc/self/net/tcp")
	return err == nil
}

// readListening returns the listening TCP sockets in the network namespace
// of pid ("self" for this process).
func readListening(pid string) ([]sockAddr, error) {
	var out []sockAddr
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(filepath.Join("/proc", pid, "net", f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		first := true
		for sc.Scan() {
			if first {
				first = false
				continue
			}
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // TCP_LISTEN
				continue
			}
			ap, err := parseProcAddr(fs[1])
			if err != nil {
				continue
			}
			ino, err := strconv.ParseUint(fs[9], 10, 64)
			if err != nil {
				continue
			}
			out = append(out, sockAddr{ap, ino})
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or the 32-digit IPv6 form:
// the address in 32-bit words of host (little-endian) byte order, the port
// in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// socketInodes returns the inodes of the sockets process pid has open.
func socketInodes(pid string) (map[uint64]bool, error) {
	dir := filepath.Join("/proc", pid, "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64); err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// listeningSockets returns the listening TCP sockets of process pid.
func listeningSockets(pid int) ([]sockAddr, error) {
	p := strconv.Itoa(pid)
	all, err := readListening(p)
	if err != nil {
		return nil, err
	}
	mine, err := socketInodes(p)
	if err != nil {
		return nil, err
	}
	var out []sockAddr
	for _, s := range all {
		if mine[s.inode] {
			out = append(out, s)
		}
	}
	return out, nil
}

// ownerOf returns the process that owns the listening socket at addr, if
// this user can see it.
func ownerOf(ctx context.Context, addr string) (int, bool) {
	want, err := resolveAll(ctx, addr)
	if err != nil {
		return 0, false
	}
	socks, err := readListening("self")
	if err != nil {
		return 0, false
	}
	var inode uint64
	for _, s := range socks {
		for _, w := range want {
			if s.addr.Port() == w.Port() && (s.addr.Addr() == w.Addr() || s.addr.Addr().IsUnspecified()) {
				inode = s.inode
			}
		}
	}
	if inode == 0 {
		return 0, false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if ino, err := socketInodes(p.Name()); err == nil && ino[inode] {
			return pid, true
		}
	}
	return 0, false
}

// resolveAll resolves HOST:PORT to its addresses.
func resolveAll(ctx context.Context, addr string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%s: bad port", addr)
	}
	if host == "" {
		return []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(pn))}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(pn))}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", addr, err)
	}
	var out []netip.AddrPort
	for _, a := range as {
		out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(pn)))
	}
	return out, nil
}

// allowMatcher returns a test of whether a listening socket is at one of
// the allowed addresses (an allowed port 0 allows any port of its host).
func allowMatcher(ctx context.Context, allowed []string) (func(sockAddr) bool, error) {
	var aps []netip.AddrPort
	for _, a := range allowed {
		rs, err := resolveAll(ctx, a)
		if err != nil {
			return nil, err
		}
		aps = append(aps, rs...)
	}
	return func(s sockAddr) bool {
		for _, a := range aps {
			if s.addr.Addr() == a.Addr() && (a.Port() == 0 || a.Port() == s.addr.Port()) {
				return true
			}
		}
		return false
	}, nil
}
