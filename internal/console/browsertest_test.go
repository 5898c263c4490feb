package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"taxlink/internal/devnet"
	"taxlink/internal/pki"
)

// chromiumPath finds the browser, skipping the test when none is installed
// (failing it under TAXLINK_TEST_STRICT=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TAXLINK_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	const why = "no Chromium found: install Debian's chromium (apt-get install chromium) or set TAXLINK_CHROMIUM"
	if os.Getenv("TAXLINK_TEST_STRICT") == "1" {
		t.Fatal(why + " (TAXLINK_TEST_STRICT=1)")
	}
	t.Skip(why)
	return ""
}

// startBrowser starts a headless Chromium that trusts the dev network's
// console certificates (by their public keys; no certificate error is
// ignored, so WebAuthn runs as in a trusted origin) and returns a running
// browser context.
func startBrowser(t *testing.T, nw *devnet.Network) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	var spkis []string
	for _, c := range nw.Layout.Consoles {
		dir := filepath.Dir(nw.Layout.HubConfig)
		if c.Process != devnet.HubID {
			n, _ := nw.Layout.Node(c.Process)
			dir = filepath.Dir(n.Config)
		}
		certs, err := pki.ReadCertFile(filepath.Join(dir, "console.pem"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(certs[0].RawSubjectPublicKeyInfo)
		spkis = append(spkis, base64.StdEncoding.EncodeToString(sum[:]))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spkis, ",")),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// operatorTab is one operator's browser: its own browser context (cookies)
// and its own virtual authenticator (a security key with a PIN).
type operatorTab struct {
	t    *testing.T
	ctx  context.Context
	base string
	auth webauthn.AuthenticatorID
}

func newTab(t *testing.T, browser context.Context, base string) *operatorTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &operatorTab{t: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/login")); err != nil {
		t.Fatalf("open %s/login: %v", base, err)
	}
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportUsb,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	tab.auth = res.AuthenticatorID
	return tab
}

// in returns the tab reporting failures to t (a subtest).
func (b *operatorTab) in(t *testing.T) *operatorTab {
	c := *b
	c.t = t
	return &c
}

// step runs actions with a deadline and fails the test naming what.
func (b *operatorTab) step(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v (page: %s)", what, err, b.pageText())
	}
}

func (b *operatorTab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + " | " + document.body.innerText.slice(0, 600)`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

func (b *operatorTab) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

func (b *operatorTab) open(path string) {
	b.t.Helper()
	b.step("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// waitFor evaluates the JavaScript condition until it is true, through
// navigations (an evaluation that a navigation interrupts is retried).
func (b *operatorTab) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %v (page: %s)", what, err, b.pageText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPath waits until the page at path has loaded.
func (b *operatorTab) waitPath(path string) {
	b.t.Helper()
	b.waitFor(path, fmt.Sprintf(`location.pathname === %q && document.readyState === "complete"`, path))
}

// waitMessage waits for the sign-in form's message and returns it.
func (b *operatorTab) waitMessage() string {
	b.t.Helper()
	b.waitFor("a message", `!!document.getElementById("message") && document.getElementById("message").textContent.length > 0`)
	return b.eval(`document.getElementById("message").textContent`)
}

func (b *operatorTab) enrol(id, code string) {
	b.t.Helper()
	b.open("/enrol")
	b.step("enrol "+id,
		chromedp.SendKeys(chromedp.ID("operator"), id),
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.ID("enrol")),
	)
}

// signIn signs in from the login page and waits for the dashboard.
func (b *operatorTab) signIn(id string) {
	b.t.Helper()
	b.open("/login")
	b.step("sign in "+id, chromedp.SendKeys(chromedp.ID("operator"), id), chromedp.Click(chromedp.ID("signin")))
	b.waitPath("/")
	if who := b.eval(`document.getElementById("who").textContent`); !strings.Contains(who, id) {
		b.t.Fatalf("signed in as %q, page says %q", id, who)
	}
}

// submit clicks sel (a submit button) and waits for the next page.
func (b *operatorTab) submit(sel string) {
	b.t.Helper()
	b.step("mark "+sel, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.__taxlinkBefore = true`)(ctx, t)
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	b.waitFor("the page after "+sel, `window.__taxlinkBefore === undefined && document.readyState === "complete"`)
}

// fill sets form fields by CSS selector.
func (b *operatorTab) fill(fields map[string]string) {
	b.t.Helper()
	for sel, v := range fields {
		b.step("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
	}
}

// screenshot saves the page as PNG in docs/console when
// TAXLINK_SCREENSHOTS names a directory.
func (b *operatorTab) screenshot(name string) {
	dir := os.Getenv("TAXLINK_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}
