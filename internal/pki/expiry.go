package pki

import (
	"crypto/x509"
	"slices"
	"time"
)

// Kinds of Warning.
const (
	WarningCertificate = "certificate"
	WarningCRL         = "crl"
)

// Warning reports a certificate or CRL that expires (or is due for update)
// within the warning horizon, or already has.
type Warning struct {
	// Kind is WarningCertificate or WarningCRL.
	Kind string
	// Subject is the certificate's subject DN (see SubjectDN), or for a
	// CRL its issuer's DN.
	Subject string
	// Identity is the certificate's taxlink identity URI, or "" if it has
	// none (CA certificates, external certificates, CRLs).
	Identity string
	// NotAfter is the certificate's NotAfter, or the CRL's NextUpdate.
	NotAfter time.Time
	// Left is NotAfter minus now; zero or negative once expired.
	Left time.Duration
	// Expired reports that now is after NotAfter.
	Expired bool
}

// ExpiryWarnings returns a Warning for every certificate in certs whose
// NotAfter is no more than ahead after now (expired ones included), most
// urgent first (ties keep the input order); nil if there is none. Nil
// certificates are skipped. It is meant for the node's own certificate
// (Reloader.Certificate().Leaf) and the CA certificates it trusts.
func ExpiryWarnings(certs []*x509.Certificate, now time.Time, ahead time.Duration) []Warning {
	var out []Warning
	for _, c := range certs {
		if c == nil {
			continue
		}
		w, ok := warning(c.NotAfter, now, ahead)
		if !ok {
			continue
		}
		w.Kind = WarningCertificate
		w.Subject = subjectText(c)
		if id, err := IdentityFromCert(c); err == nil {
			w.Identity = id.String()
		}
		out = append(out, w)
	}
	sortWarnings(out)
	return out
}

// CRLExpiryWarnings is ExpiryWarnings for CRLs: a CRL warns when its
// NextUpdate is no more than ahead after now, and is Expired once
// NextUpdate has passed. CRLs without NextUpdate and nil CRLs are skipped.
func CRLExpiryWarnings(crls []*x509.RevocationList, now time.Time, ahead time.Duration) []Warning {
	var out []Warning
	for _, l := range crls {
		if l == nil || l.NextUpdate.IsZero() {
			continue
		}
		w, ok := warning(l.NextUpdate, now, ahead)
		if !ok {
			continue
		}
		w.Kind = WarningCRL
		if dn, err := dnString(l.RawIssuer); err == nil {
			w.Subject = dn
		} else {
			w.Subject = l.Issuer.String()
		}
		out = append(out, w)
	}
	sortWarnings(out)
	return out
}

// warning fills the timing fields if notAfter is within ahead of now.
func warning(notAfter, now time.Time, ahead time.Duration) (Warning, bool) {
	left := notAfter.Sub(now)
	if left > ahead {
		return Warning{}, false
	}
	return Warning{NotAfter: notAfter, Left: left, Expired: now.After(notAfter)}, true
}

func sortWarnings(ws []Warning) {
	slices.SortStableFunc(ws, func(a, b Warning) int { return a.NotAfter.Compare(b.NotAfter) })
}
