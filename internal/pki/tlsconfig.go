package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// baseConfig returns the settings shared by every taxlink TLS
// configuration: TLS 1.3 only, and key exchange over P-256 (CRYPTREC),
// optionally hybridised with ML-KEM-768 for post-quantum protection.
func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.SecP256r1MLKEM768, tls.CurveP256},
	}
}

// Option adds a check or a behaviour to a configuration built by
// ServerConfigWith or ClientConfigWith. Options are made by the With
// functions of this package; each kind may be given at most once, and the
// zero Option or an Option made from a nil argument makes the
// configuration fail with ErrInvalidTLSConfig.
type Option struct {
	apply func(*tlsOptions) error
}

// tlsOptions is the set of options of one configuration.
type tlsOptions struct {
	revocation *Revocation
	mapper     Mapper
	clock      func() time.Time
	source     *Reloader
}

// WithRevocation makes the configuration check every verified chain of the
// peer against r (see Revocation.Check) during the handshake, including
// resumed sessions. A revoked peer is refused with ErrRevoked, a peer
// whose status is unknown with ErrRevocationUnknown (fail closed).
func WithRevocation(r *Revocation) Option {
	return Option{func(o *tlsOptions) error {
		switch {
		case r == nil:
			return errors.New("WithRevocation: nil *Revocation")
		case o.revocation != nil:
			return errors.New("WithRevocation given more than once")
		}
		o.revocation = r
		return nil
	}}
}

// WithIdentityMapper makes the configuration derive the peer's identity
// with m instead of the default URIMapper (for example a RuleMapper for
// certificates from an external CA). The mapped identity is then checked
// like the default one: environment on the server, exact identity on the
// client. Handlers must then obtain the peer identity with
// PeerIdentityWith(r.TLS, m) rather than PeerIdentity.
func WithIdentityMapper(m Mapper) Option {
	return Option{func(o *tlsOptions) error {
		switch {
		case m == nil:
			return errors.New("WithIdentityMapper: nil Mapper")
		case o.mapper != nil:
			return errors.New("WithIdentityMapper given more than once")
		}
		o.mapper = m
		return nil
	}}
}

// WithClock sets the clock against which the peer's certificate chain is
// verified (the returned config's Time field). Without it, Time is left
// nil (crypto/tls then uses the wall clock) and callers may set it. A
// Revocation uses its own clock (RevocationOptions.Now).
func WithClock(now func() time.Time) Option {
	return Option{func(o *tlsOptions) error {
		switch {
		case now == nil:
			return errors.New("WithClock: nil clock")
		case o.clock != nil:
			return errors.New("WithClock given more than once")
		}
		o.clock = now
		return nil
	}}
}

// WithCertificateSource makes the configuration present the certificate
// currently held by r (GetCertificate on a server, GetClientCertificate on
// a client) instead of a fixed certificate, so that r.Reload rotates it
// without a restart. The cert argument of ServerConfigWith or
// ClientConfigWith must then be the zero tls.Certificate; r's current
// certificate is checked like a fixed one when the configuration is
// built, and Reload keeps its identity and extended key usages unchanged.
func WithCertificateSource(r *Reloader) Option {
	return Option{func(o *tlsOptions) error {
		switch {
		case r == nil:
			return errors.New("WithCertificateSource: nil *Reloader")
		case o.source != nil:
			return errors.New("WithCertificateSource given more than once")
		}
		o.source = r
		return nil
	}}
}

// newTLSOptions applies opts.
func newTLSOptions(opts []Option) (*tlsOptions, error) {
	o := &tlsOptions{}
	for i, opt := range opts {
		if opt.apply == nil {
			return nil, fmt.Errorf("option %d is the zero Option", i)
		}
		if err := opt.apply(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// ServerConfig returns a TLS server configuration for a taxlink node in
// environment wantEnv:
//
//   - TLS 1.3 only; ALPN "h2" and "http/1.1";
//   - presents cert, whose leaf must carry a valid identity in wantEnv, be
//     ECDSA P-256 and allow ServerAuth;
//   - requires a client certificate and verifies its chain against
//     clientCAs only (never system roots) for ClientAuth;
//   - rejects, in VerifyConnection, a client whose verified leaf has no
//     valid identity (ErrNoIdentity, ErrAmbiguousIdentity,
//     ErrInvalidIdentity), whose key is not ECDSA P-256
//     (ErrUnsupportedKey) or whose environment is not wantEnv
//     (ErrWrongEnvironment).
//
// Handlers obtain the client identity with PeerIdentity(r.TLS). Invalid
// arguments yield an error wrapping ErrInvalidTLSConfig (and the specific
// cause). The verification clock is the returned config's Time field, which
// callers may set.
//
// ServerConfig is ServerConfigWith without options.
func ServerConfig(cert tls.Certificate, clientCAs *x509.CertPool, wantEnv string) (*tls.Config, error) {
	return ServerConfigWith(cert, clientCAs, wantEnv)
}

// ServerConfigWith is ServerConfig with options: WithRevocation,
// WithIdentityMapper, WithClock and WithCertificateSource. The checks the
// options add run in VerifyConnection, in this order: TLS version,
// revocation of every verified chain, identity (mapped), key type,
// environment. Invalid options yield an error wrapping
// ErrInvalidTLSConfig.
func ServerConfigWith(cert tls.Certificate, clientCAs *x509.CertPool, wantEnv string, opts ...Option) (*tls.Config, error) {
	if err := ValidateEnvironment(wantEnv); err != nil {
		return nil, fmt.Errorf("%w: server environment: %w", ErrInvalidTLSConfig, err)
	}
	if clientCAs == nil {
		return nil, fmt.Errorf("%w: server: nil client CA pool (system roots are never trusted for clients)", ErrInvalidTLSConfig)
	}
	o, err := newTLSOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: server: %w", ErrInvalidTLSConfig, err)
	}
	cfg := baseConfig()
	if err := o.setOwnCert(cfg, cert, wantEnv, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, fmt.Errorf("%w: server certificate: %w", ErrInvalidTLSConfig, err)
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = clientCAs
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.Time = o.clock
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := o.verifyPeer(&cs)
		if err != nil {
			return fmt.Errorf("pki: rejecting client: %w", err)
		}
		if id.Env != wantEnv {
			return fmt.Errorf("pki: rejecting client %s: environment %q, this server accepts only %q: %w",
				id, id.Env, wantEnv, ErrWrongEnvironment)
		}
		return nil
	}
	return cfg, nil
}

// ClientConfig returns a TLS client configuration for connecting to the
// taxlink peer want:
//
//   - TLS 1.3 only;
//   - presents cert, whose leaf must carry a valid identity in want.Env, be
//     ECDSA P-256 and allow ClientAuth;
//   - verifies the server chain against roots only (never system roots),
//     including the usual hostname check against the DNS/IP SANs
//     (ServerName is left empty so that net/http and tls.Dial fill it in
//     from the address dialled);
//   - additionally requires, in VerifyConnection, that the server's
//     verified leaf carries exactly the identity want: otherwise the
//     handshake fails with ErrIdentityMismatch (and also
//     ErrWrongEnvironment if the environment differs), or ErrNoIdentity,
//     ErrAmbiguousIdentity, ErrInvalidIdentity, ErrUnsupportedKey.
//
// NextProtos is left empty so that net/http's Transport controls ALPN.
// Invalid arguments yield an error wrapping ErrInvalidTLSConfig. The
// verification clock is the returned config's Time field, which callers may
// set.
//
// ClientConfig is ClientConfigWith without options.
func ClientConfig(cert tls.Certificate, roots *x509.CertPool, want Identity) (*tls.Config, error) {
	return ClientConfigWith(cert, roots, want)
}

// ClientConfigWith is ClientConfig with options: WithRevocation,
// WithIdentityMapper, WithClock and WithCertificateSource. With an
// identity mapper, the server's mapped identity must equal want. Invalid
// options yield an error wrapping ErrInvalidTLSConfig.
func ClientConfigWith(cert tls.Certificate, roots *x509.CertPool, want Identity, opts ...Option) (*tls.Config, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("%w: wanted server identity: %w", ErrInvalidTLSConfig, err)
	}
	if roots == nil {
		return nil, fmt.Errorf("%w: client: nil root pool (system roots are never trusted for servers)", ErrInvalidTLSConfig)
	}
	o, err := newTLSOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: client: %w", ErrInvalidTLSConfig, err)
	}
	cfg := baseConfig()
	if err := o.setOwnCert(cfg, cert, want.Env, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("%w: client certificate: %w", ErrInvalidTLSConfig, err)
	}
	cfg.RootCAs = roots
	cfg.Time = o.clock
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := o.verifyPeer(&cs)
		if err != nil {
			return fmt.Errorf("pki: rejecting server: %w", err)
		}
		if id.Env != want.Env {
			return fmt.Errorf("pki: rejecting server %s, want %s: %w (%w)", id, want, ErrIdentityMismatch, ErrWrongEnvironment)
		}
		if id != want {
			return fmt.Errorf("pki: rejecting server %s, want %s: %w", id, want, ErrIdentityMismatch)
		}
		return nil
	}
	return cfg, nil
}

// setOwnCert checks the certificate this side presents (cert, or the
// certificate source's current one) and installs it in cfg.
func (o *tlsOptions) setOwnCert(cfg *tls.Config, cert tls.Certificate, env string, usage x509.ExtKeyUsage) error {
	if o.source == nil {
		c, err := checkOwnCert(cert, env, usage)
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{c}
		return nil
	}
	if len(cert.Certificate) != 0 || cert.PrivateKey != nil || cert.Leaf != nil {
		return errors.New("both a certificate and a certificate source given (pass the zero tls.Certificate with WithCertificateSource)")
	}
	if _, err := checkOwnCert(*o.source.current(), env, usage); err != nil {
		return fmt.Errorf("certificate source %s: %w", o.source.certPath, err)
	}
	if usage == x509.ExtKeyUsageServerAuth {
		cfg.GetCertificate = o.source.GetCertificate
	} else {
		cfg.GetClientCertificate = o.source.GetClientCertificate
	}
	return nil
}

// verifyPeer returns the identity of the verified peer of cs, checking the
// TLS version, revocation (if configured) and the peer's key type as well.
func (o *tlsOptions) verifyPeer(cs *tls.ConnectionState) (Identity, error) {
	if cs.Version != tls.VersionTLS13 {
		return Identity{}, fmt.Errorf("negotiated TLS version %#04x, want TLS 1.3", cs.Version)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("%w: no verified certificate chain", ErrUnverifiedPeer)
	}
	if o.revocation != nil {
		for _, chain := range cs.VerifiedChains {
			if err := o.revocation.Check(chain); err != nil {
				return Identity{}, err
			}
		}
	}
	id, err := mapChain(o.mapper, cs.VerifiedChains[0])
	if err != nil {
		return Identity{}, fmt.Errorf("peer certificate: %w", err)
	}
	if err := checkP256Public(cs.VerifiedChains[0][0].PublicKey); err != nil {
		return Identity{}, fmt.Errorf("peer %s: %w", id, err)
	}
	return id, nil
}

// checkOwnCert validates a certificate this node presents and returns it
// with Leaf populated.
func checkOwnCert(cert tls.Certificate, env string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return cert, errors.New("certificate chain or private key missing")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return cert, fmt.Errorf("parse leaf: %w", err)
		}
		cert.Leaf = leaf
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return cert, err
	}
	if id.Env != env {
		return cert, fmt.Errorf("%s is not in environment %q: %w", id, env, ErrWrongEnvironment)
	}
	if err := checkP256Public(leaf.PublicKey); err != nil {
		return cert, fmt.Errorf("%s: %w", id, err)
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || !leaf.PublicKey.(*ecdsa.PublicKey).Equal(signer.Public()) {
		return cert, fmt.Errorf("%s: %w", id, ErrKeyMismatch)
	}
	if !hasExtKeyUsage(leaf, usage) {
		return cert, fmt.Errorf("%s: certificate lacks the required extended key usage %v", id, usage)
	}
	return cert, nil
}

// hasExtKeyUsage reports whether c lists usage among its extended key
// usages.
func hasExtKeyUsage(c *x509.Certificate, usage x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == usage {
			return true
		}
	}
	return false
}

// PeerConfig returns a TLS configuration for a link between two replicas
// of one participant (the hub's JetStream routes), used on both ends: it
// presents cert as a server and as a client, verifies the other side
// against roots only, and requires that side's identity to be exactly
// want, whichever side dialled. Options are those of ServerConfigWith.
func PeerConfig(cert tls.Certificate, roots *x509.CertPool, want Identity, opts ...Option) (*tls.Config, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("%w: wanted peer identity: %w", ErrInvalidTLSConfig, err)
	}
	cfg, err := ServerConfigWith(cert, roots, want.Env, opts...)
	if err != nil {
		return nil, err
	}
	o, err := newTLSOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: peer: %w", ErrInvalidTLSConfig, err)
	}
	cfg.RootCAs = roots
	cfg.NextProtos = nil
	if o.source != nil {
		cfg.GetClientCertificate = o.source.GetClientCertificate
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := o.verifyPeer(&cs)
		if err != nil {
			return fmt.Errorf("pki: rejecting peer: %w", err)
		}
		if id != want {
			return fmt.Errorf("pki: rejecting peer %s, want %s: %w", id, want, ErrIdentityMismatch)
		}
		return nil
	}
	return cfg, nil
}
