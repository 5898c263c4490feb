package detect

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var sampleAlert = Alert{
	Time:     time.Date(2026, 3, 11, 10, 0, 0, 123456789, jst),
	Rule:     RuleMalware,
	Severity: SeverityCritical,
	Subject:  "港区",
	Detail:   "不審なファイルを検疫しました: Eicar-Test-Signature",
	Process:  "node-7",
}

// selfSigned returns a certificate for 127.0.0.1 and localhost and a pool
// that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// ---- Webhook ----

type hookRequest struct {
	body      []byte
	signature string
	ctype     string
	method    string
	path      string
}

func hookServer(t *testing.T, status int) (*httptest.Server, chan hookRequest) {
	t.Helper()
	reqs := make(chan hookRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- hookRequest{body: b, signature: r.Header.Get(SignatureHeader), ctype: r.Header.Get("Content-Type"), method: r.Method, path: r.URL.Path}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func TestWebhook(t *testing.T) {
	const secret = "whsec-3f9a"
	srv, reqs := hookServer(t, http.StatusNoContent)
	w := Webhook{URL: srv.URL + "/alerts", Secret: secret}
	if err := w.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.method != http.MethodPost || r.ctype != "application/json" || r.path != "/alerts" {
		t.Fatalf("request %+v", r)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(r.body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(r.signature), []byte(want)) {
		t.Fatalf("signature %q, want %q", r.signature, want)
	}
	var got map[string]string
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"time": "2026-03-11T01:00:00.123456789Z", "rule": RuleMalware, "severity": "critical",
		"subject": "港区", "detail": sampleAlert.Detail, "process": "node-7",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("body %s", r.body)
	}

	// Without a secret, no signature.
	if err := (Webhook{URL: srv.URL}).Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	if r := <-reqs; r.signature != "" {
		t.Fatalf("signature %q without a secret", r.signature)
	}
}

func TestWebhookFailuresRevealNoSecrets(t *testing.T) {
	const secret = "whsec-3f9a"
	failing, _ := hookServer(t, http.StatusInternalServerError)
	redirected := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirected++ }))
	defer target.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirecting.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()

	cases := []struct {
		name, url, want string
		timeout         time.Duration
	}{
		{"500", failing.URL, "status 500", 0},
		{"redirect", redirecting.URL, "status 302", 0},
		{"refused", gone.URL, "webhook http://127.0.0.1", 0},
		{"timeout", slow.URL, "deadline", 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := Webhook{URL: tc.url + "/hooks/T0SECRETPATH?token=tok-SECRET", Secret: secret}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			err := w.Send(ctx, sampleAlert)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			for _, s := range []string{err.Error(), w.Name()} {
				if strings.Contains(s, "SECRET") || strings.Contains(s, secret) {
					t.Fatalf("secret revealed: %q", s)
				}
			}
		})
	}
	if redirected != 0 {
		t.Fatal("redirect followed")
	}
}

func TestWebhookHTTPS(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(SignatureHeader)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	w := Webhook{URL: srv.URL, Secret: "k", Client: srv.Client()}
	if err := w.Check(); err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	if sig := <-got; !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("signature %q", sig)
	}
	// Without the test CA, the certificate is refused.
	if err := (Webhook{URL: srv.URL}).Send(context.Background(), sampleAlert); err == nil {
		t.Fatal("unknown CA accepted")
	}
}

// ---- Email ----

type smtpMsg struct {
	from string
	rcpt []string
	data string
	tls  bool
}

// smtpServer is just enough of RFC 5321 (and 3207 STARTTLS, 4954 AUTH
// PLAIN) to receive the detector's mail.
type smtpServer struct {
	ln     net.Listener
	tls    *tls.Config // offer STARTTLS when set
	auth   string      // offer AUTH PLAIN accepting this "\x00user\x00pass" when set
	msgs   chan smtpMsg
	events chan string // verbs received, in order
}

func startSMTP(t *testing.T, addr string, tc *tls.Config, auth string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	s := &smtpServer{ln: ln, tls: tc, auth: auth, msgs: make(chan smtpMsg, 10), events: make(chan string, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.handle(c)
		}
	}()
	return s
}

func (s *smtpServer) handle(conn net.Conn) {
	defer func() { conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	_ = tp.PrintfLine("220 mx.test.invalid ESMTP")
	var m smtpMsg
	secure := false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.events <- verb
		switch verb {
		case "EHLO":
			lines := []string{"mx.test.invalid"}
			if s.tls != nil && !secure {
				lines = append(lines, "STARTTLS")
			}
			if s.auth != "" {
				lines = append(lines, "AUTH PLAIN")
			}
			lines = append(lines, "8BITMIME")
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				_ = tp.PrintfLine("250%s%s", sep, l)
			}
		case "HELO", "RSET", "NOOP":
			_ = tp.PrintfLine("250 ok")
		case "STARTTLS":
			_ = tp.PrintfLine("220 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, tp, secure = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			got, _ := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || string(got) != s.auth {
				_ = tp.PrintfLine("535 5.7.8 authentication credentials invalid")
				continue
			}
			_ = tp.PrintfLine("235 2.7.0 authenticated")
		case "MAIL":
			m = smtpMsg{from: between(arg, "<", ">"), tls: secure}
			_ = tp.PrintfLine("250 ok")
		case "RCPT":
			m.rcpt = append(m.rcpt, between(arg, "<", ">"))
			_ = tp.PrintfLine("250 ok")
		case "DATA":
			_ = tp.PrintfLine("354 end with .")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m.data = string(b)
			s.msgs <- m
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("502 unknown")
		}
	}
}

// between returns the text of s between the first open and the next close.
func between(s, open, close string) string {
	_, s, _ = strings.Cut(s, open)
	s, _, _ = strings.Cut(s, close)
	return s
}

func TestEmail(t *testing.T) {
	srv := startSMTP(t, "127.0.0.1:0", nil, "")
	e := Email{Addr: srv.ln.Addr().String(), From: "検知 <taxlink@example.jp>", To: []string{"ops@example.jp", "Security <sec@example.jp>"}}
	if err := e.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	m := <-srv.msgs
	if m.from != "taxlink@example.jp" || strings.Join(m.rcpt, ",") != "ops@example.jp,sec@example.jp" || m.tls {
		t.Fatalf("envelope %+v", m)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	raw := msg.Header.Get("Subject")
	if !strings.Contains(strings.ToLower(raw), "=?utf-8?q?") {
		t.Fatalf("subject not encoded: %q", raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil || subject != "[taxlink] critical detect.malware 港区" {
		t.Fatalf("subject %q, %v", subject, err)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("content type %q", ct)
	}
	if msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" || msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Fatalf("headers %v", msg.Header)
	}
	if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 2 || to[1].Address != "sec@example.jp" {
		t.Fatalf("To %v, %v", to, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Severity: critical", "Rule: detect.malware", "Subject: 港区", "Process: node-7", "Time: 2026-03-11T01:00:00Z", sampleAlert.Detail} {
		if !strings.Contains(string(body), s) {
			t.Fatalf("body lacks %q:\n%s", s, body)
		}
	}
	for _, ev := range drain(srv.events) {
		if ev == "AUTH" || ev == "STARTTLS" {
			t.Fatalf("unexpected %s", ev)
		}
	}
}

func drain(c chan string) []string {
	var out []string
	for {
		select {
		case s := <-c:
			out = append(out, s)
		default:
			return out
		}
	}
}

func TestEmailLongSubjectIsFolded(t *testing.T) {
	e := Email{Addr: "127.0.0.1:25", From: "taxlink@example.jp", To: []string{"ops@example.jp"}}
	a := sampleAlert
	a.Subject = strings.Repeat("港", 100)
	b, err := e.Message(a)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) > 78 {
			t.Fatalf("header line of %d bytes: %q", len(l), l)
		}
	}
	msg, _ := mail.ReadMessage(strings.NewReader(string(b)))
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.HasPrefix(subject, "[taxlink] critical detect.malware 港港") || !strings.HasSuffix(subject, "…") || len(subject) > 200 {
		t.Fatalf("subject %q, %v", subject, err)
	}
}

func TestEmailStartTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	const pass = "pw-Zq81!x"
	srv := startSMTP(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, "\x00alerts\x00"+pass)
	e := Email{Addr: srv.ln.Addr().String(), From: "taxlink@example.jp", To: []string{"ops@example.jp"},
		Username: "alerts", Password: pass, TLSConfig: &tls.Config{RootCAs: pool}}
	if err := e.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	if m := <-srv.msgs; !m.tls {
		t.Fatal("mail sent without TLS")
	}
	evs := strings.Join(drain(srv.events), " ")
	if !strings.HasPrefix(evs, "EHLO STARTTLS EHLO AUTH MAIL") {
		t.Fatalf("dialogue %s", evs)
	}

	// A wrong password: the error names the step, never the password.
	e.Password = "wrong-" + pass
	err := e.Send(context.Background(), sampleAlert)
	if err == nil || !strings.Contains(err.Error(), "AUTH") || strings.Contains(err.Error(), pass) ||
		strings.Contains(err.Error(), plainBlob(e.Username, e.Password)) {
		t.Fatalf("err %v", err)
	}
	// An unknown CA is refused.
	e.Password, e.TLSConfig = pass, nil
	if err := e.Send(context.Background(), sampleAlert); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err %v", err)
	}
}

func TestEmailRequiresStartTLSOffLoopback(t *testing.T) {
	ip := ""
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP.String()
			break
		}
	}
	if ip == "" {
		t.Skip("no non-loopback IPv4 address")
	}
	srv := startSMTP(t, net.JoinHostPort(ip, "0"), nil, "\x00alerts\x00pw")
	const pass = "pw-Zq81!x"
	e := Email{Addr: srv.ln.Addr().String(), From: "taxlink@example.jp", To: []string{"ops@example.jp"}, Username: "alerts", Password: pass}
	err := e.Send(context.Background(), sampleAlert)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || strings.Contains(err.Error(), pass) {
		t.Fatalf("err %v", err)
	}
	for _, ev := range drain(srv.events) {
		if ev == "AUTH" || ev == "MAIL" {
			t.Fatalf("%s sent in the clear", ev)
		}
	}
}

func TestEmailHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, then says nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	e := Email{Addr: ln.Addr().String(), From: "taxlink@example.jp", To: []string{"ops@example.jp"}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Send(ctx, sampleAlert) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error from a silent server")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send ignored its context")
	}
}

// ---- Syslog ----

var re5424 = regexp.MustCompile(`(?s)^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$`)

type line5424 struct {
	pri                        int
	ts                         time.Time
	host, app, procid, msgid   string
	sd                         string
	bom                        bool
	severity, rule, proc, subj string
	detail                     string
}

// parse5424 parses one RFC 5424 message as Syslog formats it.
func parse5424(t *testing.T, b []byte) line5424 {
	t.Helper()
	m := re5424.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("not RFC 5424: %q", b)
	}
	var l line5424
	l.pri, _ = strconv.Atoi(m[1])
	ts, err := time.Parse(time.RFC3339Nano, m[2])
	if err != nil {
		t.Fatalf("timestamp %q: %v", m[2], err)
	}
	l.ts, l.host, l.app, l.procid, l.msgid, l.sd = ts, m[3], m[4], m[5], m[6], m[7]
	msg := m[8]
	msg, l.bom = strings.CutPrefix(msg, "\uFEFF")
	kv := map[string]string{}
	for msg != "" {
		k, rest, ok := strings.Cut(msg, "=")
		if !ok {
			t.Fatalf("message %q", m[8])
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("message %q: %v", m[8], err)
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		kv[k] = v
		msg = strings.TrimPrefix(rest, " ")
	}
	l.severity, l.rule, l.proc, l.subj, l.detail = kv["severity"], kv["rule"], kv["process"], kv["subject"], kv["detail"]
	return l
}

func checkLine(t *testing.T, l line5424, a Alert, pri int) {
	t.Helper()
	if l.pri != pri || !l.ts.Equal(a.Time.Truncate(time.Microsecond)) || l.host != "hub-01.example" || l.app != "taxlink" ||
		l.procid != strconv.Itoa(os.Getpid()) || l.msgid != a.Rule || l.sd != "-" {
		t.Fatalf("header %+v", l)
	}
	if l.severity != a.Severity || l.rule != a.Rule || l.proc != a.Process || l.subj != a.Subject || l.detail != a.Detail {
		t.Fatalf("message %+v", l)
	}
	if l.bom != !isASCII(a.Subject+a.Detail+a.Process) {
		t.Fatalf("BOM %v", l.bom)
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := &Syslog{Network: "udp", Addr: pc.LocalAddr().String(), Hostname: "hub-01.example"}
	defer s.Close()
	for _, tc := range []struct {
		a   Alert
		pri int
	}{
		{sampleAlert, 16*8 + 2},
		{Alert{Time: sampleAlert.Time, Rule: RuleOffHours, Severity: SeverityWarning, Subject: "op:tanaka", Detail: `view "at night"`}, 16*8 + 4},
		{Alert{Time: sampleAlert.Time, Rule: "detect.test", Severity: SeverityInfo, Subject: "x", Process: "hub-01"}, 16*8 + 6},
	} {
		if err := s.Send(context.Background(), tc.a); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8192)
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		checkLine(t, parse5424(t, buf[:n]), tc.a, tc.pri)
	}
}

// readFrames reads octet-counted messages (RFC 6587) from c.
func readFrames(c net.Conn, out chan<- []byte) {
	r := bufio.NewReader(c)
	for {
		n, err := r.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 || size > 1<<20 {
			out <- []byte("bad frame length " + n)
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		out <- b
	}
}

func serveFrames(t *testing.T, ln net.Listener) (chan []byte, chan struct{}) {
	frames, conns := make(chan []byte, 10), make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- struct{}{}
			go func() { defer c.Close(); readFrames(c, frames) }()
		}
	}()
	return frames, conns
}

func next(t *testing.T, c chan []byte) []byte {
	t.Helper()
	select {
	case b := <-c:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames, conns := serveFrames(t, ln)
	s := &Syslog{Network: "tcp", Addr: ln.Addr().String(), Hostname: "hub-01.example", AppName: "taxlink"}
	defer s.Close()
	second := Alert{Time: sampleAlert.Time.Add(time.Second), Rule: RuleBacklog, Severity: SeverityWarning, Subject: "p-1", Detail: "oldest 11m0s"}
	for _, a := range []Alert{sampleAlert, second} {
		if err := s.Send(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	checkLine(t, parse5424(t, next(t, frames)), sampleAlert, 130)
	checkLine(t, parse5424(t, next(t, frames)), second, 132)
	if len(conns) != 1 {
		t.Fatalf("%d connections for two messages", len(conns))
	}
	// After Close, the next Send reconnects.
	s.Close()
	if err := s.Send(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	checkLine(t, parse5424(t, next(t, frames)), second, 132)
	if len(conns) != 2 {
		t.Fatalf("%d connections", len(conns))
	}
}

func TestSyslogTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames, _ := serveFrames(t, ln)
	s := &Syslog{Network: "tcp", Addr: ln.Addr().String(), Hostname: "hub-01.example", TLSConfig: &tls.Config{RootCAs: pool}}
	defer s.Close()
	if err := s.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	checkLine(t, parse5424(t, next(t, frames)), sampleAlert, 130)
}

func TestSyslogUnix(t *testing.T) {
	dir, err := os.MkdirTemp("", "syslog") // short: socket paths are limited to ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "log")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Skipf("unixgram: %v", err)
	}
	defer pc.Close()
	s := &Syslog{Network: "unix", Addr: path, Hostname: "hub-01.example"}
	defer s.Close()
	if err := s.Send(context.Background(), sampleAlert); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkLine(t, parse5424(t, buf[:n]), sampleAlert, 130)
}

func TestSyslogHeaderFields(t *testing.T) {
	s := &Syslog{Hostname: "bad host\x00", AppName: strings.Repeat("a", 60)}
	a := Alert{Rule: "detect.a-very-long-rule-name-beyond-thirty-two", Severity: SeverityInfo, Subject: "x\ny"}
	l := string(s.Format(a))
	m := re5424.FindStringSubmatch(l)
	if m == nil || m[2] != "-" || m[3] != "bad_host_" || len(m[4]) != 48 || len(m[6]) != 32 || strings.Contains(l, "\n") {
		t.Fatalf("line %q", l)
	}
}
