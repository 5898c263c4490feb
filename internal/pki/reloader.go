package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader holds this process's own certificate and key, loaded from
// files, and replaces them without a restart: new handshakes get the new
// certificate (through GetCertificate or GetClientCertificate, see
// WithCertificateSource), established connections are not touched. It is
// safe for concurrent use.
type Reloader struct {
	certPath, keyPath string
	now               func() time.Time
	log               *slog.Logger
	id                Identity
	usages            []x509.ExtKeyUsage // ServerAuth/ClientAuth of the first certificate

	load  func() (tls.Certificate, error) // reads the pair
	watch []string                        // files whose change means a new pair

	mu     sync.Mutex                      // serialises Reload; guards stamps
	stamps []os.FileInfo                   // the watched files as last loaded
	cur    atomic.Pointer[tls.Certificate] // never nil after NewReloader
}

// ReloaderOption configures a Reloader; see ReloaderLogger.
type ReloaderOption struct {
	apply func(*Reloader)
}

// ReloaderLogger makes the Reloader log swaps and, in Watch, reload
// failures to l (by default, or if l is nil, they are not logged).
func ReloaderLogger(l *slog.Logger) ReloaderOption {
	return ReloaderOption{func(r *Reloader) {
		if l != nil {
			r.log = l
		}
	}}
}

// ReloaderLoader makes the Reloader read the pair with load instead of
// LoadKeyPair(certPath, keyPath) — for a key that is an encrypted file or
// on a token — and watch the files in watch (the certificate file, and the
// key file if there is one) instead of the two paths.
func ReloaderLoader(load func() (tls.Certificate, error), watch ...string) ReloaderOption {
	return ReloaderOption{func(r *Reloader) {
		r.load = load
		r.watch = watch
	}}
}

// NewReloader loads the certificate and key files with LoadKeyPair. The
// certificate must carry a valid taxlink identity and be valid at now();
// that identity, and its ServerAuth/ClientAuth extended key usages, are
// what every later certificate must keep. Errors wrap the causes'
// sentinels (ErrNoIdentity, ErrCertificateExpired, ErrKeyMismatch, ...),
// and ErrInvalidTLSConfig for a nil clock.
func NewReloader(certPath, keyPath string, now func() time.Time, opts ...ReloaderOption) (*Reloader, error) {
	if now == nil {
		return nil, fmt.Errorf("%w: reloader for %s: nil clock", ErrInvalidTLSConfig, certPath)
	}
	r := &Reloader{certPath: certPath, keyPath: keyPath, now: now, log: slog.New(slog.DiscardHandler)}
	r.load = func() (tls.Certificate, error) { return LoadKeyPair(certPath, keyPath) }
	r.watch = []string{certPath, keyPath}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(r)
		}
	}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	id, err := IdentityFromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate %s: %w", certPath, err)
	}
	if err := checkValidity(cert.Leaf, id, now()); err != nil {
		return nil, fmt.Errorf("pki: certificate %s: %w", certPath, err)
	}
	r.id = id
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if hasExtKeyUsage(cert.Leaf, u) {
			r.usages = append(r.usages, u)
		}
	}
	r.stamps = stamps
	r.cur.Store(&cert)
	return r, nil
}

// Identity returns the identity every certificate of r carries.
func (r *Reloader) Identity() Identity { return r.id }

// Certificate returns the certificate currently presented (with Leaf set),
// for example for ExpiryWarnings.
func (r *Reloader) Certificate() tls.Certificate { return *r.cur.Load() }

// current returns the certificate currently presented; never nil.
func (r *Reloader) current() *tls.Certificate { return r.cur.Load() }

// GetCertificate returns the current certificate; it is meant for
// tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// GetClientCertificate returns the current certificate; it is meant for
// tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Reload re-reads the certificate and key files and, if they hold a new
// pair, swaps it in atomically. The new pair must pass LoadKeyPair (file
// format and permissions, ECDSA P-256, key matching the certificate:
// ErrKeyMismatch), carry the same identity and at least the same
// ServerAuth/ClientAuth usages (ErrIdentityChanged), and be valid at now()
// (ErrCertificateExpired, ErrCertificateNotYetValid). On any error the
// current pair stays in use. Reloading an unchanged pair is a no-op.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stat()
	if err != nil {
		return err
	}
	cert, err := r.load()
	if err != nil {
		return err
	}
	if err := r.checkReplacement(cert.Leaf); err != nil {
		return fmt.Errorf("pki: reload %s: %w", r.certPath, err)
	}
	r.stamps = stamps
	old := r.cur.Load()
	if samePair(old, &cert) {
		return nil
	}
	r.cur.Store(&cert)
	r.log.Info("certificate reloaded", "identity", r.id.String(), "file", r.certPath,
		"serial", serialText(cert.Leaf), "not_after", cert.Leaf.NotAfter, "previous_serial", serialText(old.Leaf))
	return nil
}

// checkReplacement validates a new leaf against the identity and usages
// of the first one and the clock.
func (r *Reloader) checkReplacement(leaf *x509.Certificate) error {
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return err
	}
	if id != r.id {
		return fmt.Errorf("%w: new certificate is for %s, the current one for %s", ErrIdentityChanged, id, r.id)
	}
	for _, u := range r.usages {
		if !hasExtKeyUsage(leaf, u) {
			return fmt.Errorf("%w: new certificate for %s lacks extended key usage %v", ErrIdentityChanged, id, u)
		}
	}
	return checkValidity(leaf, id, r.now())
}

// Watch checks the certificate and key files every period until ctx ends
// (then it returns nil) and calls Reload when either has changed (another
// file, size or modification time). A failed reload, for instance while
// only one of the two files has been replaced, is retried every period
// until it succeeds or the files change again; each distinct failure is
// logged once (see ReloaderLogger). It returns an error at once if every
// is not positive.
func (r *Reloader) Watch(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("%w: watch period %v is not positive", ErrInvalidTLSConfig, every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := r.changed()
		if err == nil && !changed {
			continue
		}
		if err == nil {
			err = r.Reload()
		}
		if err != nil {
			if err.Error() != lastErr {
				r.log.Warn("certificate reload failed; keeping the current certificate", "file", r.certPath, "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
	}
}

// stat returns the file information of the certificate and key files.
func (r *Reloader) stat() ([]os.FileInfo, error) {
	out := make([]os.FileInfo, len(r.watch))
	for i, p := range r.watch {
		fi, err := os.Stat(p)
		if err != nil {
			return out, fmt.Errorf("pki: reload: %w", err)
		}
		out[i] = fi
	}
	return out, nil
}

// changed reports whether the files differ from those last loaded.
func (r *Reloader) changed() (bool, error) {
	now, err := r.stat()
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range now {
		a, b := r.stamps[i], now[i]
		if !os.SameFile(a, b) || a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime()) {
			return true, nil
		}
	}
	return false, nil
}

// checkValidity reports a certificate that is not valid at now.
func checkValidity(c *x509.Certificate, id Identity, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: %s (serial %s) is valid from %s, now is %s", ErrCertificateNotYetValid, id, serialText(c),
			c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%w: %s (serial %s) expired at %s, now is %s", ErrCertificateExpired, id, serialText(c),
			c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// samePair reports whether a and b hold the same chain and key.
func samePair(a, b *tls.Certificate) bool {
	if len(a.Certificate) != len(b.Certificate) {
		return false
	}
	for i := range a.Certificate {
		if !bytes.Equal(a.Certificate[i], b.Certificate[i]) {
			return false
		}
	}
	ka, okA := a.PrivateKey.(*ecdsa.PrivateKey)
	kb, okB := b.PrivateKey.(*ecdsa.PrivateKey)
	return okA && okB && ka.Equal(kb)
}
