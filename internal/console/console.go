// Package console is the web console of a taxlink hub or node: the
// operators' terminal (運用端末) and the data users' terminal (利用端末) of
// 総務省告示第151号 第4 3(1) and 第4 4, served on an admin listener apart from
// the service API.
//
// Sign-in needs a possession factor with a PIN or biometric: WebAuthn with
// user verification required (security keys, platform authenticators).
// Operators are invited by an administrator, register their authenticator
// with a one-time enrolment code and become active only once an
// administrator approves (a second administrator when the new operator is
// an administrator). A session is re-authenticated after idle time and ends
// after an absolute lifetime; repeated failures lock the operator out, end
// their sessions and raise an alert. Roles and grants (tenants,
// notification types) decide what each page shows: a tenant's records,
// backlog and history are invisible to an operator not granted that
// tenant, by any URL. Dangerous actions (erasure, suspension, directory
// changes) are requested by one operator and take effect only when a
// second, different operator of an approving role approves them. Every
// action, view, download and print is recorded in the process's
// tamper-evident audit log with who, what, which object, from where and
// the result; the history page reads it back.
//
// Pages are server-rendered Go templates, Japanese by default with English
// available (?lang=en); the only script is the console's own WebAuthn glue
// served from the console itself, under a strict Content-Security-Policy.
// Every state-changing request must come from the console's own origin
// (Origin header) and, once signed in, carry the session's CSRF token.
package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
	"taxlink/internal/svgchart"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Defaults.
const (
	DefaultIdle     = 15 * time.Minute
	DefaultLifetime = 12 * time.Hour
	// ceremonyTTL bounds a WebAuthn ceremony from its challenge to its answer.
	ceremonyTTL = 5 * time.Minute
	// maxForm bounds a form or JSON request body.
	maxForm = 64 << 10
	// maxUpload bounds an uploaded file (a signed directory).
	maxUpload = 4 << 20
	// historyPage is how many events the history page shows at most.
	historyPage = 200
	// sampleEvery is how often the dashboard samples the backend.
	sampleEvery = 10 * time.Second
)

// Cookie names. The __Host- prefix makes the browser refuse them unless
// Secure, host-only and Path=/.
const (
	sessionCookie  = "__Host-taxlink-session"
	ceremonyCookie = "__Host-taxlink-ceremony"
	langCookie     = "__Host-taxlink-lang"
)

// Config configures a Console.
type Config struct {
	// ID and Environment name the process (shown on every page).
	ID, Environment string
	// Origin is the console's URL as browsers reach it, e.g.
	// "https://localhost:20443"; RPID is the WebAuthn relying party ID, a
	// host name (e.g. "localhost" or "console.kiko.example.jp").
	Origin, RPID string
	// Operators holds accounts, sessions, approvals and alerts.
	Operators *operator.Store
	// Audit is the process's audit log; every console action lands there.
	Audit *audit.Log
	// Backend is the hub or node.
	Backend Backend
	// Records is set on a node: the data users' search and viewer.
	Records Records
	// Attestations keeps the self-check's attestations (nil: no page).
	Attestations AttestationStore
	// CardLogin enables the smart card + PIN sign-in: the listener must
	// ask for client certificates (Serve with clientCAs).
	CardLogin bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Idle is the idle time after which a session must re-authenticate
	// (default DefaultIdle); Lifetime ends a session however active
	// (default DefaultLifetime).
	Idle, Lifetime time.Duration
	// Logger receives operational messages (never personal data).
	Logger *slog.Logger
}

// Clock is an adjustable clock for a console and its operator store: the
// real time plus an offset that drills and tests move forward to reach idle
// and lifetime limits. The zero value is the real time.
type Clock struct{ off atomic.Int64 }

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// Console serves the web console.
type Console struct {
	cfg  Config
	wa   *webauthn.WebAuthn
	tmpl map[string]*template.Template
	mux  *http.ServeMux
	log  *slog.Logger
	now  func() time.Time

	mu         sync.Mutex
	ceremonies map[string]*ceremony

	samples *svgchart.Sampler
}

// New returns a Console for cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Operators == nil || cfg.Audit == nil || cfg.Backend == nil {
		return nil, errors.New("console: Operators, Audit and Backend are required")
	}
	u, err := url.Parse(cfg.Origin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return nil, fmt.Errorf("console: origin %q must be https://host[:port]", cfg.Origin)
	}
	if cfg.RPID == "" {
		cfg.RPID = u.Hostname()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: "taxlink " + cfg.ID,
		RPOrigins:     []string{cfg.Origin},
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationRequired,
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("console: webauthn: %w", err)
	}
	c := &Console{cfg: cfg, wa: wa, log: cfg.Logger, now: cfg.Now, ceremonies: map[string]*ceremony{}, samples: svgchart.NewSampler(360)}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) parseTemplates() error {
	c.tmpl = map[string]*template.Template{}
	pages, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs()).ParseFS(assets, "templates/layout.html", p)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.tmpl[name] = t
	}
	return nil
}

// Handler returns the console's HTTP handler.
func (c *Console) Handler() http.Handler { return c.secure(c.mux) }

// Run samples the backend for the dashboard's charts until ctx ends.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		c.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Console) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := c.cfg.Backend.Status(ctx)
	if err != nil {
		return
	}
	now := c.now()
	for name, v := range st.Counters {
		c.samples.Add(name, now, v)
	}
}

// Serve serves the console on ln with TLS 1.3 (cert is the console's web
// server certificate) until ctx ends. With clientCAs, browsers may present
// a smart-card certificate those CAs issued, verified in the handshake.
func Serve(ctx context.Context, ln net.Listener, cert tls.Certificate, clientCAs *x509.CertPool, h http.Handler, log *slog.Logger) error {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		tc.ClientAuth, tc.ClientCAs = tls.VerifyClientCertIfGiven, clientCAs
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         tc,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// secure sets the security headers of every response and refuses
// cross-origin state changes.
func (c *Console) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin") // "no-referrer" would send Origin: null on form posts
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if r.Header.Get("Origin") != c.cfg.Origin {
				c.audit(r, "", "console.csrf", r.URL.Path, audit.ResultDenied, "request from another origin")
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
		}
		next.ServeHTTP(w, r)
	})
}

// audit records one console event; a failure to record is logged (and
// surfaces in the audit log's own checks), never shown to the browser.
func (c *Console) audit(r *http.Request, actor, action, object, result, detail string) {
	if actor == "" {
		actor = "anonymous"
	}
	e := audit.Event{Actor: actor, Action: action, Object: object, From: remote(r), Result: result, Detail: detail}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if _, err := c.cfg.Audit.Record(ctx, e); err != nil {
		c.log.Error("console: audit record failed", "action", action, "err", err)
	}
}

// remote is the client's address for the audit log.
func remote(r *http.Request) string {
	if r.RemoteAddr == "" {
		return "local"
	}
	return r.RemoteAddr
}
