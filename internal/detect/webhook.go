package detect

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WebhookTimeout bounds one webhook request.
const WebhookTimeout = 10 * time.Second

// SignatureHeader carries a webhook body's signature:
// "sha256=" and the lowercase hex HMAC-SHA256 of the body keyed with
// Webhook.Secret.
const SignatureHeader = "X-Taxlink-Signature"

// Webhook is a Sink that POSTs each alert as JSON to URL:
//
//	{"time":"2026-03-15T09:00:00Z","rule":"detect.off-hours","severity":"warning",
//	 "subject":"op:tanaka","detail":"…","process":"hub-01"}
//
// (time in UTC, RFC 3339 with fractional seconds when not zero), signed in
// the X-Taxlink-Signature header when Secret is set. URL must be https,
// or http to a loopback host. A 2xx status is success; anything else,
// redirects included (they are not followed), is an error. Errors and
// Name show the URL's scheme and host only: its path and query may be
// secret, and so is Secret.
type Webhook struct {
	URL    string
	Secret string
	// Client, if set, sends the requests (e.g. with a private CA); its
	// redirect policy is overridden and WebhookTimeout still applies.
	Client *http.Client
}

// NewWebhookClient returns the HTTP client webhooks use by default: TLS 1.3,
// WebhookTimeout on connecting and on the response. Give each Webhook its
// own (Webhook.Client) to keep its connections open between alerts.
func NewWebhookClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: WebhookTimeout}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS13},
			TLSHandshakeTimeout:   WebhookTimeout,
			ResponseHeaderTimeout: WebhookTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
		},
	}
}

// webhookBody is the JSON of one alert.
type webhookBody struct {
	Time     string `json:"time"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Subject  string `json:"subject"`
	Detail   string `json:"detail"`
	Process  string `json:"process"`
}

// Name returns "webhook" and the URL's scheme and host.
func (w Webhook) Name() string {
	return "webhook " + w.safeURL()
}

// safeURL is the URL without path, query, fragment or user info.
func (w Webhook) safeURL() string {
	u, err := url.Parse(w.URL)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

// Check reports whether URL is usable: absolute, https, or http to a
// loopback host, without user info.
func (w Webhook) Check() error {
	u, err := url.Parse(w.URL)
	if err != nil || u.Host == "" {
		return errors.New("webhook: the URL is not an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("webhook: the URL must not carry user info")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return fmt.Errorf("webhook %s: plain http is allowed to a loopback host only; use https", w.safeURL())
		}
	default:
		return fmt.Errorf("webhook %s: scheme must be https", w.safeURL())
	}
	return nil
}

// Body returns the JSON body and the signature header value (empty
// without a Secret) that Send posts for a.
func (w Webhook) Body(a Alert) (body []byte, signature string, err error) {
	body, err = json.Marshal(webhookBody{
		Time: a.Time.UTC().Format(time.RFC3339Nano), Rule: a.Rule, Severity: a.Severity,
		Subject: a.Subject, Detail: a.Detail, Process: a.Process,
	})
	if err != nil {
		return nil, "", err
	}
	if w.Secret != "" {
		m := hmac.New(sha256.New, []byte(w.Secret))
		m.Write(body)
		signature = "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	return body, signature, nil
}

// Send POSTs a to URL.
func (w Webhook) Send(ctx context.Context, a Alert) error {
	if err := w.Check(); err != nil {
		return err
	}
	body, sig, err := w.Body(a)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.safeURL(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: bad request", w.safeURL())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "taxlink-detect/1")
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	var c *http.Client
	if w.Client != nil {
		cc := *w.Client
		c = &cc
	} else {
		// A client of this call alone: nothing shared, nothing left open.
		c = NewWebhookClient()
		defer c.CloseIdleConnections()
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message would carry the whole URL
		}
		return fmt.Errorf("webhook %s: %s", w.safeURL(), redact(err.Error(), w.URL, w.Secret))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s: status %d", w.safeURL(), resp.StatusCode)
	}
	return nil
}

// loopback reports whether host (a name or an IP, without port) is the
// local machine's loopback.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redact removes every non-empty secret from s.
func redact(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "[redacted]")
		}
	}
	return s
}
