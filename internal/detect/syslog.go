package detect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// SyslogTimeout bounds connecting and writing one syslog message.
const SyslogTimeout = 10 * time.Second

// facilityLocal0 is the syslog facility of every message.
const facilityLocal0 = 16

// Syslog is a Sink that writes each alert as one RFC 5424 message,
// facility local0, to a collector:
//
//	<132>1 2026-03-15T09:00:00.000000Z host taxlink 4242 detect.off-hours - severity=warning rule=detect.off-hours process="hub-01" subject="op:tanaka" detail="…"
//
// (PRI 130 for critical, 132 for warning, 134 for info; MSGID the rule;
// no structured data; the message starts with a UTF-8 BOM when it is not
// ASCII). Network "udp" sends one datagram per message; "tcp" (over TLS,
// RFC 5425, when TLSConfig is set) and "unix" stream sockets frame them by
// octet counting (RFC 6587: "LEN SP MSG"); "unix" tries a datagram socket
// first, as /dev/log usually is; "unixgram" is datagrams only. Use a
// *Syslog: it keeps its connection between messages.
type Syslog struct {
	Network   string // "udp" (default), "tcp", "unix" or "unixgram"
	Addr      string // host:port, or a socket path
	AppName   string // default "taxlink"
	Hostname  string // default os.Hostname()
	TLSConfig *tls.Config

	mu     sync.Mutex
	conn   net.Conn
	stream bool // octet-counting framing
}

// Name returns "syslog", the network and the address.
func (s *Syslog) Name() string { return "syslog " + orElse(s.Network, "udp") + " " + s.Addr }

// Check reports whether Network and Addr are usable.
func (s *Syslog) Check() error {
	switch orElse(s.Network, "udp") {
	case "udp", "tcp":
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return fmt.Errorf("syslog: address %q: expected host:port", clip(s.Addr, 80))
		}
	case "unix", "unixgram":
		if s.Addr == "" {
			return errors.New("syslog: no socket path")
		}
	default:
		return fmt.Errorf("syslog: network %q: expected udp, tcp, unix or unixgram", clip(s.Network, 20))
	}
	if s.TLSConfig != nil && s.Network != "tcp" {
		return errors.New("syslog: TLS needs network tcp")
	}
	return nil
}

func syslogSeverity(sev string) int {
	switch sev {
	case SeverityCritical:
		return 2
	case SeverityWarning:
		return 4
	}
	return 6
}

// header field: 1..max printable US-ASCII characters, else "-".
func sysField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// Format returns the RFC 5424 message for a (without framing).
func (s *Syslog) Format(a Alert) []byte {
	host := s.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	pri := facilityLocal0*8 + syslogSeverity(a.Severity)
	ts := "-"
	if !a.Time.IsZero() {
		ts = a.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}
	msg := "severity=" + sysField(a.Severity, 16) + " rule=" + sysField(a.Rule, 64) +
		" process=" + strconv.Quote(a.Process) + " subject=" + strconv.Quote(a.Subject) + " detail=" + strconv.Quote(a.Detail)
	if !isASCII(msg) {
		msg = "\uFEFF" + msg
	}
	line := fmt.Sprintf("<%d>1 %s %s %s %d %s - %s", pri, ts, sysField(host, 255), sysField(orElse(s.AppName, "taxlink"), 48),
		os.Getpid(), sysField(a.Rule, 32), msg)
	return []byte(line)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Send writes a to the collector, connecting first if need be; after a
// failed write the connection is dropped and the next Send reconnects.
func (s *Syslog) Send(ctx context.Context, a Alert) error {
	if err := s.Check(); err != nil {
		return err
	}
	msg := s.Format(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, SyslogTimeout)
	defer cancel()
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	out := msg
	if s.stream {
		out = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
	}
	deadline, _ := ctx.Deadline()
	_ = s.conn.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := s.conn.Write(out)
	stop()
	if err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}

func (s *Syslog) dial(ctx context.Context) error {
	var d net.Dialer
	switch orElse(s.Network, "udp") {
	case "udp":
		c, err := d.DialContext(ctx, "udp", s.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, false
	case "tcp":
		if s.TLSConfig != nil {
			tc := s.TLSConfig.Clone()
			if tc.ServerName == "" {
				tc.ServerName, _, _ = net.SplitHostPort(s.Addr)
			}
			c, err := (&tls.Dialer{NetDialer: &d, Config: tc}).DialContext(ctx, "tcp", s.Addr)
			if err != nil {
				return err
			}
			s.conn, s.stream = c, true
			return nil
		}
		c, err := d.DialContext(ctx, "tcp", s.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, true
	case "unixgram":
		c, err := d.DialContext(ctx, "unixgram", s.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, false
	case "unix":
		if c, err := d.DialContext(ctx, "unixgram", s.Addr); err == nil {
			s.conn, s.stream = c, false
			return nil
		}
		c, err := d.DialContext(ctx, "unix", s.Addr)
		if err != nil {
			return err
		}
		s.conn, s.stream = c, true
	}
	return nil
}

// Close closes the connection to the collector, if any; a later Send
// reconnects.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
