package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// crlMaxClockSkew is how far in the future a CRL's ThisUpdate may lie (the
// CA's clock may run slightly ahead of ours) before the CRL is refused.
const crlMaxClockSkew = 5 * time.Minute

// RevocationOptions configures NewRevocation.
type RevocationOptions struct {
	// Files are the CRL files, each DER or one PEM "X509 CRL" block, each
	// for a different issuer. At least one is required.
	Files []string
	// Issuers are the CA certificates whose CRLs are loaded. Each CRL must
	// be signed by one of them (matched by issuer name and authority key
	// identifier, then checked with CheckSignatureFrom), and each of them
	// must have a CRL among Files.
	Issuers []*x509.Certificate
	// Now is the clock against which CRL validity is judged. Required.
	Now func() time.Time
	// Refresh is the period of Run; zero disables Run (Refresh can still
	// be called). It must not be negative.
	Refresh time.Duration
	// Grace is how long after its NextUpdate a CRL is still used. After
	// that, certificates from its issuer are refused (fail closed) until a
	// newer CRL is loaded. It must not be negative.
	Grace time.Duration
	// Logger receives CRL loads, refresh failures and expiry alerts; nil
	// discards them.
	Logger *slog.Logger
}

// Revocation checks certificate chains against CRLs loaded from files. It
// is safe for concurrent use: Check never blocks on Refresh, which swaps
// in a new set of CRLs atomically.
//
// A CRL is used only if it parses, is signed by one of the configured
// issuers, has a NextUpdate, has a ThisUpdate no more than five minutes in
// the future, has no critical extension (delta, partitioned and indirect
// CRLs are not supported) and, on refresh, is not older than the CRL it
// replaces. A CRL that fails these checks on refresh is not used: the last
// good CRL for that file stays in force and the failure is logged and
// returned.
type Revocation struct {
	files   []string
	issuers []*x509.Certificate
	now     func() time.Time
	refresh time.Duration
	grace   time.Duration
	log     *slog.Logger

	mu   sync.Mutex                   // serialises Refresh
	crls atomic.Pointer[[]*loadedCRL] // one per file, in Files order; immutable
}

// loadedCRL is a verified CRL and its issuer.
type loadedCRL struct {
	file     string
	list     *x509.RevocationList
	issuer   *x509.Certificate
	issuerDN string
	revoked  map[string]struct{} // serial numbers, as serialKey
}

// NewRevocation validates opts and loads every CRL file. Invalid options
// yield an error wrapping ErrInvalidRevocationConfig; a CRL that cannot be
// used, an issuer without a CRL or two CRLs for the same issuer make it
// fail too (errors wrap ErrInvalidCRL or ErrCRLExpired): a node does not
// start with revocation checking it cannot perform.
func NewRevocation(opts RevocationOptions) (*Revocation, error) {
	if len(opts.Files) == 0 {
		return nil, fmt.Errorf("%w: no CRL files", ErrInvalidRevocationConfig)
	}
	seen := map[string]bool{}
	for i, f := range opts.Files {
		if f == "" {
			return nil, fmt.Errorf("%w: CRL file %d: empty path", ErrInvalidRevocationConfig, i)
		}
		if seen[f] {
			return nil, fmt.Errorf("%w: CRL file %s listed twice", ErrInvalidRevocationConfig, f)
		}
		seen[f] = true
	}
	if len(opts.Issuers) == 0 {
		return nil, fmt.Errorf("%w: no CRL issuers", ErrInvalidRevocationConfig)
	}
	for i, c := range opts.Issuers {
		if c == nil {
			return nil, fmt.Errorf("%w: issuer %d is nil", ErrInvalidRevocationConfig, i)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("%w: issuer %d (%q) is not a CA certificate", ErrInvalidRevocationConfig, i, subjectText(c))
		}
	}
	if opts.Now == nil {
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidRevocationConfig)
	}
	if opts.Refresh < 0 {
		return nil, fmt.Errorf("%w: negative refresh period %v", ErrInvalidRevocationConfig, opts.Refresh)
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("%w: negative grace period %v", ErrInvalidRevocationConfig, opts.Grace)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Revocation{
		files:   append([]string(nil), opts.Files...),
		issuers: append([]*x509.Certificate(nil), opts.Issuers...),
		now:     opts.Now,
		refresh: opts.Refresh,
		grace:   opts.Grace,
		log:     log,
	}
	now := r.now()
	crls := make([]*loadedCRL, len(r.files))
	var errs []error
	for i, f := range r.files {
		l, err := r.load(f, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		crls[i] = l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, a := range crls {
		for _, b := range crls[:i] {
			if sameIssuer(a.issuer, b.issuer) {
				return nil, fmt.Errorf("%w: %s and %s are both CRLs of %q", ErrInvalidCRL, b.file, a.file, a.issuerDN)
			}
		}
	}
	for _, c := range r.issuers {
		if findCRL(crls, c) == nil {
			return nil, fmt.Errorf("%w: no CRL among the files for issuer %q", ErrInvalidCRL, subjectText(c))
		}
	}
	for _, l := range crls {
		r.logLoaded(l)
	}
	r.crls.Store(&crls)
	return r, nil
}

// Check reports whether a verified certificate chain (leaf first, trust
// anchor last) may be used: every certificate but the trust anchor is
// looked up in its issuer's CRL (the issuer being the next certificate in
// the chain). It returns nil if none is revoked; an error wrapping
// ErrRevoked, naming only the serial number and the issuer, if one is; and
// an error wrapping ErrRevocationUnknown if an issuer has no CRL loaded or
// its CRL is past NextUpdate plus the grace period (then also
// ErrCRLExpired). A chain of one certificate (a directly trusted leaf) has
// nothing to check.
func (r *Revocation) Check(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: empty certificate chain", ErrUnverifiedPeer)
	}
	crls := *r.crls.Load()
	now := r.now()
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		if c == nil || issuer == nil {
			return fmt.Errorf("%w: nil certificate in chain", ErrUnverifiedPeer)
		}
		l := findCRL(crls, issuer)
		if l == nil {
			return fmt.Errorf("%w: serial %s: no CRL for issuer %q", ErrRevocationUnknown, serialText(c), issuerText(c))
		}
		if deadline := l.list.NextUpdate.Add(r.grace); now.After(deadline) {
			return fmt.Errorf("%w: serial %s: CRL of %q was due for update at %s (grace %v): %w",
				ErrRevocationUnknown, serialText(c), l.issuerDN, l.list.NextUpdate.UTC().Format(time.RFC3339), r.grace, ErrCRLExpired)
		}
		if _, revoked := l.revoked[serialKey(c)]; revoked {
			return fmt.Errorf("%w: serial %s, issuer %q", ErrRevoked, serialText(c), l.issuerDN)
		}
	}
	return nil
}

// Refresh re-reads every CRL file. Each file is handled on its own: a CRL
// that passes the checks replaces the one loaded from the same file, a CRL
// that does not leaves the last good one in force. It returns the joined
// errors of the files that failed (each wrapping ErrInvalidCRL,
// ErrCRLExpired or a file error), or ctx's error if ctx ends first (files
// already re-read stay updated). Failures, and CRLs in force that are
// past their NextUpdate, are logged.
func (r *Revocation) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.crls.Load()
	crls := append([]*loadedCRL(nil), old...)
	now := r.now()
	var errs []error
	for i, f := range r.files {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		l, err := r.load(f, now)
		if err == nil {
			err = checkSuccessor(old[i], l)
		}
		if err != nil {
			r.log.Warn("CRL refresh failed; keeping the last good CRL", "file", f, "err", err)
			errs = append(errs, err)
			continue
		}
		if !bytes.Equal(l.list.Raw, old[i].list.Raw) {
			r.logLoaded(l)
		}
		crls[i] = l
	}
	r.crls.Store(&crls)
	for _, l := range crls {
		if deadline := l.list.NextUpdate.Add(r.grace); now.After(deadline) {
			r.log.Error("ALERT: CRL in force is past its next update; certificates from its issuer are refused",
				"file", l.file, "issuer", l.issuerDN, "next_update", l.list.NextUpdate, "grace", r.grace)
		}
	}
	return errors.Join(errs...)
}

// Run calls Refresh every Refresh period until ctx ends, then returns nil.
// Refresh failures are logged, not returned. It returns an error wrapping
// ErrInvalidRevocationConfig at once if the period is not positive.
func (r *Revocation) Run(ctx context.Context) error {
	if r.refresh <= 0 {
		return fmt.Errorf("%w: Run needs a positive Refresh period, have %v", ErrInvalidRevocationConfig, r.refresh)
	}
	t := time.NewTicker(r.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = r.Refresh(ctx) // logged by Refresh
		}
	}
}

// ExpiryWarnings returns CRLExpiryWarnings for the CRLs in force, judged
// by the Revocation's clock. A CRL's Expired is set once its NextUpdate has
// passed, even while the grace period still lets it be used.
func (r *Revocation) ExpiryWarnings(ahead time.Duration) []Warning {
	crls := *r.crls.Load()
	lists := make([]*x509.RevocationList, 0, len(crls))
	for _, l := range crls {
		lists = append(lists, l.list)
	}
	return CRLExpiryWarnings(lists, r.now(), ahead)
}

// load reads and verifies one CRL file.
func (r *Revocation) load(path string, now time.Time) (*loadedCRL, error) {
	rl, err := ReadCRLFile(path)
	if err != nil {
		return nil, err
	}
	for _, ext := range rl.Extensions {
		if ext.Critical {
			return nil, fmt.Errorf("%w: %s: unsupported critical extension %v", ErrInvalidCRL, path, ext.Id)
		}
	}
	for _, e := range rl.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			if ext.Critical {
				return nil, fmt.Errorf("%w: %s: entry for serial %s has unsupported critical extension %v", ErrInvalidCRL, path, e.SerialNumber.Text(16), ext.Id)
			}
		}
	}
	issuerDN, err := dnString(rl.RawIssuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: issuer name: %w", ErrInvalidCRL, path, err)
	}
	var (
		issuer  *x509.Certificate
		sigErrs []error
	)
	for _, c := range r.issuers {
		if !bytes.Equal(c.RawSubject, rl.RawIssuer) {
			continue
		}
		if len(rl.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 && !bytes.Equal(rl.AuthorityKeyId, c.SubjectKeyId) {
			continue
		}
		if err := rl.CheckSignatureFrom(c); err != nil {
			sigErrs = append(sigErrs, err)
			continue
		}
		issuer = c
		break
	}
	if issuer == nil {
		if len(sigErrs) > 0 {
			return nil, fmt.Errorf("%w: %s: signature does not verify against issuer %q: %w", ErrInvalidCRL, path, issuerDN, errors.Join(sigErrs...))
		}
		return nil, fmt.Errorf("%w: %s: issued by %q, which is not a configured issuer", ErrInvalidCRL, path, issuerDN)
	}
	if rl.NextUpdate.IsZero() {
		return nil, fmt.Errorf("%w: %s: no NextUpdate (staleness could not be detected)", ErrInvalidCRL, path)
	}
	if rl.NextUpdate.Before(rl.ThisUpdate) {
		return nil, fmt.Errorf("%w: %s: NextUpdate %s before ThisUpdate %s", ErrInvalidCRL, path,
			rl.NextUpdate.UTC().Format(time.RFC3339), rl.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if rl.ThisUpdate.After(now.Add(crlMaxClockSkew)) {
		return nil, fmt.Errorf("%w: %s: issued in the future (ThisUpdate %s, now %s)", ErrInvalidCRL, path,
			rl.ThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if deadline := rl.NextUpdate.Add(r.grace); now.After(deadline) {
		return nil, fmt.Errorf("%w: %s: CRL of %q was due for update at %s (grace %v, now %s)", ErrCRLExpired, path, issuerDN,
			rl.NextUpdate.UTC().Format(time.RFC3339), r.grace, now.UTC().Format(time.RFC3339))
	}
	l := &loadedCRL{file: path, list: rl, issuer: issuer, issuerDN: issuerDN, revoked: make(map[string]struct{}, len(rl.RevokedCertificateEntries))}
	for _, e := range rl.RevokedCertificateEntries {
		l.revoked[e.SerialNumber.Text(16)] = struct{}{}
	}
	return l, nil
}

// checkSuccessor refuses a refreshed CRL that belongs to another issuer
// than the one it replaces, or is older (rollback).
func checkSuccessor(old, l *loadedCRL) error {
	if !sameIssuer(old.issuer, l.issuer) {
		return fmt.Errorf("%w: %s: now a CRL of %q, was a CRL of %q", ErrInvalidCRL, l.file, l.issuerDN, old.issuerDN)
	}
	if l.list.ThisUpdate.Before(old.list.ThisUpdate) {
		return fmt.Errorf("%w: %s: ThisUpdate %s is older than the CRL in force (%s)", ErrInvalidCRL, l.file,
			l.list.ThisUpdate.UTC().Format(time.RFC3339), old.list.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if l.list.Number != nil && old.list.Number != nil && l.list.Number.Cmp(old.list.Number) < 0 {
		return fmt.Errorf("%w: %s: CRL number %s is lower than the CRL in force (%s)", ErrInvalidCRL, l.file, l.list.Number, old.list.Number)
	}
	return nil
}

func (r *Revocation) logLoaded(l *loadedCRL) {
	r.log.Info("CRL loaded", "file", l.file, "issuer", l.issuerDN, "number", l.list.Number,
		"this_update", l.list.ThisUpdate, "next_update", l.list.NextUpdate, "revoked", len(l.revoked))
}

// findCRL returns the CRL of issuer (same subject and public key), if any.
func findCRL(crls []*loadedCRL, issuer *x509.Certificate) *loadedCRL {
	for _, l := range crls {
		if l != nil && sameIssuer(l.issuer, issuer) {
			return l
		}
	}
	return nil
}

// sameIssuer reports whether a and b are the same CA: same subject and
// same public key (a re-issued CA certificate is the same issuer).
func sameIssuer(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubject, b.RawSubject) && bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}

// serialKey is the map key of a certificate's serial number.
func serialKey(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// subjectText names a certificate's subject for messages.
func subjectText(c *x509.Certificate) string {
	if dn, err := dnString(c.RawSubject); err == nil {
		return dn
	}
	return c.Subject.String()
}
