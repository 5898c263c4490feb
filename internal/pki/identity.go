package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of taxlink identities.
const Scheme = "taxlink"

// The environments of the taxlink network. They are fully separated: a peer
// from one environment is never accepted in another.
const (
	EnvProduction = "production"
	EnvTest       = "test"
	EnvDev        = "dev"
)

// Participant ID kinds (the part before the colon of a participant ID).
const (
	KindLocalGovernment = "lg"   // a local government, e.g. "lg:011002"
	KindNTA             = "nta"  // the National Tax Agency, e.g. "nta:hq"
	KindCorporation     = "corp" // a corporation, e.g. "corp:1234567890123"
	KindHub             = "hub"  // a hub, e.g. "hub:kiko"
)

// maxIDValueLen is the maximum length of the part after the colon of a
// participant ID.
const maxIDValueLen = 64

// maxIdentityURILen bounds the input accepted by ParseIdentityURI; no valid
// identity URI comes close to it.
const maxIdentityURILen = 256

// Identity is a taxlink participant identity: an environment and a
// participant ID. The zero value is not a valid identity; use Validate or
// ParseIdentityURI to obtain one that is.
type Identity struct {
	// Env is the environment: EnvProduction, EnvTest or EnvDev.
	Env string
	// ID is the participant ID, "<kind>:<value>" where kind is one of
	// lg, nta, corp, hub and value is 1 to 64 characters of [A-Za-z0-9-].
	ID string
}

// String returns the canonical URI form "taxlink://<env>/<id>". It does not
// validate; for an invalid identity the result is not parseable.
func (i Identity) String() string {
	return Scheme + "://" + i.Env + "/" + i.ID
}

// URI returns the identity as a URL, suitable for a certificate's URI SAN.
// For a valid identity, URI().String() equals String().
func (i Identity) URI() *url.URL {
	return &url.URL{Scheme: Scheme, Host: i.Env, Path: "/" + i.ID}
}

// Validate reports whether i is a valid identity. The error wraps
// ErrInvalidIdentity.
func (i Identity) Validate() error {
	if err := ValidateEnvironment(i.Env); err != nil {
		return err
	}
	return ValidateParticipantID(i.ID)
}

// ValidateEnvironment returns nil if env is one of EnvProduction, EnvTest or
// EnvDev (exact, case-sensitive match), else an error wrapping
// ErrInvalidIdentity.
func ValidateEnvironment(env string) error {
	switch env {
	case EnvProduction, EnvTest, EnvDev:
		return nil
	}
	return fmt.Errorf("%w: unknown environment %q (want %q, %q or %q)",
		ErrInvalidIdentity, env, EnvProduction, EnvTest, EnvDev)
}

// ValidateParticipantID returns nil if id matches
// ^(lg|nta|corp|hub):[A-Za-z0-9-]{1,64}$, else an error wrapping
// ErrInvalidIdentity.
func ValidateParticipantID(id string) error {
	kind, value, ok := strings.Cut(id, ":")
	if !ok {
		return fmt.Errorf("%w: participant ID %q has no kind prefix (want lg:, nta:, corp: or hub:)", ErrInvalidIdentity, id)
	}
	switch kind {
	case KindLocalGovernment, KindNTA, KindCorporation, KindHub:
	default:
		return fmt.Errorf("%w: participant ID %q has unknown kind %q (want lg, nta, corp or hub)", ErrInvalidIdentity, id, kind)
	}
	if len(value) == 0 || len(value) > maxIDValueLen {
		return fmt.Errorf("%w: participant ID %q: value must be 1 to %d characters, got %d", ErrInvalidIdentity, id, maxIDValueLen, len(value))
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: participant ID %q: character %q at offset %d is not in [A-Za-z0-9-]", ErrInvalidIdentity, id, c, len(kind)+1+i)
		}
	}
	return nil
}

// ParseIdentityURI parses a taxlink identity URI strictly. It accepts only
// the canonical form "taxlink://<env>/<id>": lower-case scheme "taxlink", a
// host that is exactly one of the environments, and a path that is "/"
// followed by a valid participant ID. Userinfo, ports, queries, fragments,
// percent-encoding, extra path segments and any other deviation are
// rejected. Errors wrap ErrInvalidIdentity.
func ParseIdentityURI(s string) (Identity, error) {
	if len(s) > maxIdentityURILen {
		return Identity{}, fmt.Errorf("%w: identity URI is %d bytes long, limit %d", ErrInvalidIdentity, len(s), maxIdentityURILen)
	}
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q does not start with %q", ErrInvalidIdentity, s, Scheme+"://")
	}
	if strings.ContainsRune(rest, '?') {
		return Identity{}, fmt.Errorf("%w: %q: query not allowed", ErrInvalidIdentity, s)
	}
	if strings.ContainsRune(rest, '#') {
		return Identity{}, fmt.Errorf("%w: %q: fragment not allowed", ErrInvalidIdentity, s)
	}
	if strings.ContainsRune(rest, '%') {
		return Identity{}, fmt.Errorf("%w: %q: percent-encoding not allowed", ErrInvalidIdentity, s)
	}
	authority, path, ok := strings.Cut(rest, "/")
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q: missing participant ID path", ErrInvalidIdentity, s)
	}
	if strings.ContainsRune(authority, '@') {
		return Identity{}, fmt.Errorf("%w: %q: userinfo not allowed", ErrInvalidIdentity, s)
	}
	if strings.ContainsRune(authority, ':') {
		return Identity{}, fmt.Errorf("%w: %q: port not allowed", ErrInvalidIdentity, s)
	}
	if strings.ContainsRune(path, '/') {
		return Identity{}, fmt.Errorf("%w: %q: path must be a single participant ID segment", ErrInvalidIdentity, s)
	}
	id := Identity{Env: authority, ID: path}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", s, err)
	}
	// Belt and braces: the checks above admit only the canonical form.
	if id.String() != s {
		return Identity{}, fmt.Errorf("%w: %q is not in canonical form %q", ErrInvalidIdentity, s, id.String())
	}
	return id, nil
}

// IdentityFromCert extracts the identity from a certificate's URI SANs.
// URI SANs with other schemes are ignored. It returns an error wrapping
// ErrNoIdentity if there is no taxlink URI SAN, ErrAmbiguousIdentity if
// there is more than one, and ErrInvalidIdentity if the single one is not a
// valid identity. It does not verify the certificate.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, fmt.Errorf("%w: nil certificate", ErrNoIdentity)
	}
	var found *url.URL
	n := 0
	for _, u := range c.URIs {
		if u != nil && strings.EqualFold(u.Scheme, Scheme) {
			found = u
			n++
		}
	}
	// Errors name the serial number and issuer, not the subject: a
	// certificate from an external CA may carry a person's name there.
	switch {
	case n == 0:
		return Identity{}, fmt.Errorf("%w (certificate serial %s, issuer %q)", ErrNoIdentity, serialText(c), issuerText(c))
	case n > 1:
		return Identity{}, fmt.Errorf("%w: %d taxlink URI SANs (certificate serial %s, issuer %q)", ErrAmbiguousIdentity, n, serialText(c), issuerText(c))
	}
	id, err := ParseIdentityURI(found.String())
	if err != nil {
		return Identity{}, fmt.Errorf("certificate URI SAN: %w", err)
	}
	return id, nil
}

// PeerIdentity returns the identity of the peer of a TLS connection, taken
// from the leaf of the first verified chain (cs.VerifiedChains[0][0]). It
// returns an error wrapping ErrUnverifiedPeer if cs is nil or the peer's
// chain was not verified; the peer's unverified certificates are never
// consulted.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, fmt.Errorf("%w: no TLS connection state", ErrUnverifiedPeer)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("%w: no verified certificate chain", ErrUnverifiedPeer)
	}
	id, err := IdentityFromCert(cs.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	return id, nil
}
