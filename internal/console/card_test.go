package console_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/console"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/operator"
	"taxlink/internal/pki"
)

// cardClient is a browser stand-in over real TLS 1.3 that presents a
// smart-card certificate (or none) and keeps cookies.
type cardClient struct {
	t      *testing.T
	c      *http.Client
	origin string
}

func newCardClient(t *testing.T, nw *devnet.Network, origin string, cert *tls.Certificate) *cardClient {
	t.Helper()
	cas, err := pki.ReadCertFile(filepath.Join(nw.Layout.Dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pki.CertPool(cas...)}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	jar, _ := cookiejar.New(nil)
	return &cardClient{t: t, origin: origin, c: &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tc},
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// post submits a form as the console's own page would (same Origin).
func (c *cardClient) post(path string, form url.Values) (int, string, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.origin)
	return c.do(req)
}

func (c *cardClient) get(path string) (int, string, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.origin+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

func (c *cardClient) do(req *http.Request) (int, string, string) {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestSmartCardAndPIN signs in with a client certificate and a PIN over
// real TLS: enrolment with the PIN policy, wrong PINs counted to a
// lockout, unlock, PIN expiry with a forced change that refuses reuse.
func TestSmartCardAndPIN(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	nw := devtest.Start(t)
	con := consoleURL(t, nw, devnet.SapporoID)
	n, _ := nw.Layout.Node(devnet.SapporoID)
	ops, err := operator.Open(operator.Config{Path: filepath.Join(filepath.Dir(n.Config), "data", "console.db"), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	ctx := context.Background()
	code, err := ops.Invite(ctx, console.SystemActor, operator.Operator{ID: "card-admin", Name: "札幌 管理", Role: operator.RoleAdmin,
		Grant: operator.Grant{Tenants: []string{"*"}, Types: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	card, err := devnet.IssueCert(nw.Layout, pki.Identity{Env: "dev", ID: devnet.SapporoID}, time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	noCard := newCardClient(t, nw, con.URL, nil)
	cl := newCardClient(t, nw, con.URL, &card)
	const pin = "Sapporo-2026"

	enrol := url.Values{"operator": {"card-admin"}, "code": {code}, "pin": {pin}, "pin2": {pin}}
	if st, _, body := noCard.post("/card/enrol", enrol); st != http.StatusForbidden || !strings.Contains(body, "スマートカード") {
		t.Fatalf("enrolment without a card: %d", st)
	}
	weak := url.Values{"operator": {"card-admin"}, "code": {code}, "pin": {"1234"}, "pin2": {"1234"}}
	if st, _, body := cl.post("/card/enrol", weak); st != http.StatusBadRequest || !strings.Contains(body, "at least") || strings.Contains(body, `value="1234"`) {
		t.Fatalf("a PIN against the policy: status %d", st)
	}
	if st, loc, _ := cl.post("/card/enrol", enrol); st != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("enrolment: %d → %q, want 303 → /login (first administrator)", st, loc)
	}

	signIn := func(p string) (int, string, string) { return cl.post("/card/login", url.Values{"pin": {p}}) }
	if st, loc, _ := signIn(pin); st != http.StatusSeeOther || loc != "/" {
		t.Fatalf("sign-in with card and PIN: %d → %q", st, loc)
	}
	if st, _, body := cl.get("/"); st != http.StatusOK || !strings.Contains(body, "card-admin") {
		t.Fatalf("dashboard after sign-in: %d", st)
	}
	if st, _, _ := noCard.post("/card/login", url.Values{"pin": {pin}}); st != http.StatusForbidden {
		t.Errorf("sign-in without a card: %d", st)
	}

	// Cross-site requests and forms without the session's CSRF token change nothing.
	if st, _, _ := cl.post("/logout/all", url.Values{}); st != http.StatusForbidden {
		t.Errorf("sign-out-everywhere without the CSRF token: %d, want 403", st)
	}
	req, _ := http.NewRequest(http.MethodPost, con.URL+"/logout/all", strings.NewReader(""))
	req.Header.Set("Origin", "https://evil.example")
	if st, _, _ := cl.do(req); st != http.StatusForbidden {
		t.Errorf("a post from another origin: %d, want 403", st)
	}
	if st, _, _ := cl.get("/"); st != http.StatusOK {
		t.Errorf("the session did not survive refused requests: %d", st)
	}
	resp, err := cl.c.Get(con.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Error("the console is not on TLS 1.3")
	}

	var last string
	for range 5 {
		_, _, last = signIn("wrong-PIN-0")
	}
	if !strings.Contains(last, "ロック") {
		t.Fatal("five wrong PINs did not lock the operator out")
	}
	if st, loc, _ := cl.get("/"); st != http.StatusSeeOther || loc != "/login" {
		t.Errorf("the locked operator's session goes on: %d → %q", st, loc)
	}
	if st, _, body := signIn(pin); st != http.StatusForbidden || !strings.Contains(body, "ロック") {
		t.Errorf("the right PIN while locked: %d", st)
	}
	if err := ops.Unlock(ctx, "another-admin", "card-admin"); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := signIn(pin); st != http.StatusSeeOther {
		t.Fatalf("sign-in after unlock: %d", st)
	}

	nw.Nodes[devnet.SapporoID].ConsoleClock.Advance(91 * 24 * time.Hour)
	st, _, body := signIn(pin)
	if st != http.StatusOK || !strings.Contains(body, `action="/card/pin"`) {
		t.Fatalf("an expired PIN did not lead to the PIN change: %d", st)
	}
	if st, _, body := cl.post("/card/pin", url.Values{"pin": {pin}, "new": {pin}, "new2": {pin}}); st != http.StatusBadRequest || !strings.Contains(body, "最近使用") {
		t.Errorf("reusing the expired PIN: %d", st)
	}
	const newPIN = "Kita-Ku-2027"
	if st, loc, _ := cl.post("/card/pin", url.Values{"pin": {pin}, "new": {newPIN}, "new2": {newPIN}}); st != http.StatusSeeOther || loc != "/" {
		t.Fatalf("PIN change: %d → %q", st, loc)
	}
	if st, _, _ := signIn(newPIN); st != http.StatusSeeOther {
		t.Errorf("sign-in with the new PIN: %d", st)
	}
}
