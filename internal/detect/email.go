package detect

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"
)

// EmailTimeout bounds one e-mail delivery (connection to QUIT).
const EmailTimeout = 30 * time.Second

// Email is a Sink that mails each alert through the SMTP server at Addr
// ("host:port") from From to every address of To, with the subject
// "[taxlink] <severity> <rule> <subject>" (MIME-encoded when not ASCII)
// and a UTF-8 plain text body (quoted-printable).
//
// The connection is upgraded with STARTTLS, which the server must offer
// unless it is on a loopback address; TLSConfig, if set, configures it
// (roots, server name; the default verifies the host of Addr). With
// Username, it authenticates with PLAIN (only over TLS or to loopback).
// Errors and Name never reveal Password.
type Email struct {
	Addr      string
	From      string
	To        []string
	Username  string
	Password  string
	TLSConfig *tls.Config
	// Hello is the name given in EHLO; empty: "localhost".
	Hello string
}

// Name returns "email" and the server's address.
func (e Email) Name() string { return "email " + e.Addr }

// Check reports whether the addresses are well formed.
func (e Email) Check() error {
	if _, _, err := net.SplitHostPort(e.Addr); err != nil {
		return fmt.Errorf("email: server address %q: expected host:port", clip(e.Addr, 80))
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		return fmt.Errorf("email: from %q: not an address", clip(e.From, 80))
	}
	if len(e.To) == 0 {
		return errors.New("email: no recipient")
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("email: to %q: not an address", clip(to, 80))
		}
	}
	if e.Password != "" && e.Username == "" {
		return errors.New("email: a password without a username")
	}
	return nil
}

// EmailSubject returns the subject line of a's message, before MIME
// encoding.
func EmailSubject(a Alert) string {
	return clip(clean("[taxlink] "+a.Severity+" "+a.Rule+" "+a.Subject, 200), 200)
}

// Message returns the whole message (headers and body, CRLF line ends)
// that Send transmits for a.
func (e Email) Message(a Alert) ([]byte, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	from, _ := mail.ParseAddress(e.From)
	var to []string
	for _, x := range e.To {
		addr, _ := mail.ParseAddress(x)
		to = append(to, addr.String())
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "taxlink.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", strings.Join(to, ", "))
	header("Subject", foldWords("Subject: ", mime.QEncoding.Encode("utf-8", EmailSubject(a))))
	header("Date", a.Time.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	process := orElse(a.Process, "-")
	fmt.Fprintf(qp, "taxlink の検知アラート / taxlink alert\n\n"+
		"重要度 Severity: %s\n規則 Rule: %s\n対象 Subject: %s\n時刻 Time: %s\nプロセス Process: %s\n\n%s\n",
		a.Severity, a.Rule, a.Subject, a.Time.UTC().Format(time.RFC3339), process, a.Detail)
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// foldWords folds a header value of encoded words (at most 75
// characters each, separated by spaces) so that no line passes 78
// characters, the first one counting its name.
func foldWords(name, v string) string {
	var b strings.Builder
	line := len(name)
	for i, w := range strings.Split(v, " ") {
		switch {
		case i == 0 && line+len(w) > 78 && strings.HasPrefix(w, "=?"):
			b.WriteString("\r\n ") // fold right after the name
			line = 1
		case i > 0 && line+1+len(w) > 78:
			b.WriteString("\r\n ")
			line = 1
		case i > 0:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// Send mails a.
func (e Email) Send(ctx context.Context, a Alert) error {
	msg, err := e.Message(a)
	if err != nil {
		return err
	}
	if err := e.send(ctx, msg); err != nil {
		return fmt.Errorf("email %s: %s", e.Addr, redact(err.Error(), e.Password, plainBlob(e.Username, e.Password)))
	}
	return nil
}

func plainBlob(user, pass string) string {
	if pass == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func (e Email) send(ctx context.Context, msg []byte) error {
	host, _, _ := net.SplitHostPort(e.Addr)
	ctx, cancel := context.WithTimeout(ctx, EmailTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(orElse(e.Hello, "localhost")); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS13}
		if e.TLSConfig != nil {
			tc = e.TLSConfig.Clone()
			if tc.ServerName == "" {
				tc.ServerName = host
			}
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	} else if !loopback(host) {
		return errors.New("the server does not offer STARTTLS, required off loopback")
	}
	if e.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server does not offer AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	from, _ := mail.ParseAddress(e.From)
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, x := range e.To {
		to, _ := mail.ParseAddress(x)
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("RCPT TO: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	return c.Quit()
}
