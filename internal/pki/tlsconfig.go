package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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
func ServerConfig(cert tls.Certificate, clientCAs *x509.CertPool, wantEnv string) (*tls.Config, error) {
	if err := ValidateEnvironment(wantEnv); err != nil {
		return nil, fmt.Errorf("%w: server environment: %w", ErrInvalidTLSConfig, err)
	}
	if clientCAs == nil {
		return nil, fmt.Errorf("%w: server: nil client CA pool (system roots are never trusted for clients)", ErrInvalidTLSConfig)
	}
	cert, err := checkOwnCert(cert, wantEnv, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate: %w", ErrInvalidTLSConfig, err)
	}
	cfg := baseConfig()
	cfg.Certificates = []tls.Certificate{cert}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = clientCAs
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := verifiedPeer(&cs)
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
func ClientConfig(cert tls.Certificate, roots *x509.CertPool, want Identity) (*tls.Config, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("%w: wanted server identity: %w", ErrInvalidTLSConfig, err)
	}
	if roots == nil {
		return nil, fmt.Errorf("%w: client: nil root pool (system roots are never trusted for servers)", ErrInvalidTLSConfig)
	}
	cert, err := checkOwnCert(cert, want.Env, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate: %w", ErrInvalidTLSConfig, err)
	}
	cfg := baseConfig()
	cfg.Certificates = []tls.Certificate{cert}
	cfg.RootCAs = roots
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := verifiedPeer(&cs)
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

// verifiedPeer returns the identity of the verified peer of cs, checking
// the TLS version and the peer's key type as well.
func verifiedPeer(cs *tls.ConnectionState) (Identity, error) {
	if cs.Version != tls.VersionTLS13 {
		return Identity{}, fmt.Errorf("negotiated TLS version %#04x, want TLS 1.3", cs.Version)
	}
	id, err := PeerIdentity(cs)
	if err != nil {
		return Identity{}, err
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
	for _, u := range leaf.ExtKeyUsage {
		if u == usage {
			return cert, nil
		}
	}
	return cert, fmt.Errorf("%s: certificate lacks the required extended key usage %v", id, usage)
}
