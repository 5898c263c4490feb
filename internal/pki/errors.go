package pki

import "errors"

// Sentinel errors. Every error returned by this package that has one of the
// causes below wraps the corresponding sentinel, so callers can test for it
// with errors.Is; the wrapping error carries the specifics.
var (
	// ErrInvalidIdentity reports a malformed identity URI, environment or
	// participant ID.
	ErrInvalidIdentity = errors.New("pki: invalid identity")

	// ErrNoIdentity reports a certificate that carries no taxlink URI SAN.
	ErrNoIdentity = errors.New("pki: certificate carries no taxlink identity")

	// ErrAmbiguousIdentity reports a certificate that carries more than one
	// taxlink URI SAN.
	ErrAmbiguousIdentity = errors.New("pki: certificate carries more than one taxlink identity")

	// ErrUnverifiedPeer reports a connection whose peer certificate chain
	// was not verified (or no connection state at all).
	ErrUnverifiedPeer = errors.New("pki: peer certificate not verified")

	// ErrWrongEnvironment reports a peer (or own certificate) whose identity
	// belongs to another environment than the one expected.
	ErrWrongEnvironment = errors.New("pki: identity from the wrong environment")

	// ErrIdentityMismatch reports a server whose identity is not the one the
	// client wanted to reach.
	ErrIdentityMismatch = errors.New("pki: peer identity is not the expected one")

	// ErrUnsupportedKey reports a key that is not ECDSA on P-256, or a
	// crypto.Signer whose private key cannot be exported to a file.
	ErrUnsupportedKey = errors.New("pki: unsupported key (only ECDSA P-256 is allowed)")

	// ErrKeyMismatch reports a private key that does not belong to the
	// certificate (or CA certificate) it is used with.
	ErrKeyMismatch = errors.New("pki: private key does not match certificate")

	// ErrKeyFilePermissions reports a private key file that is accessible
	// by group or others. The wrapping error names the path and the mode.
	ErrKeyFilePermissions = errors.New("pki: private key file is accessible by group or others")

	// ErrEncryptedKey reports an encrypted private key file; encrypted key
	// files are not supported yet.
	ErrEncryptedKey = errors.New("pki: encrypted private key files are not supported")

	// ErrMalformedPEM reports PEM data that is not exactly the expected
	// sequence of blocks: wrong block type, headers, surrounding garbage,
	// undecodable blocks or an undecodable DER payload.
	ErrMalformedPEM = errors.New("pki: malformed PEM")

	// ErrInvalidIssueRequest reports an IssueRequest (or a CA) that cannot
	// produce a valid certificate.
	ErrInvalidIssueRequest = errors.New("pki: invalid certificate request")

	// ErrInvalidTLSConfig reports arguments (or options) from which
	// ServerConfig, ClientConfig, ServerConfigWith or ClientConfigWith
	// cannot build a safe configuration.
	ErrInvalidTLSConfig = errors.New("pki: invalid TLS configuration")

	// ErrRevoked reports a certificate listed in its issuer's CRL. The
	// wrapping error names the serial number and the issuer, nothing more.
	ErrRevoked = errors.New("pki: certificate revoked")

	// ErrRevocationUnknown reports a certificate whose revocation status
	// cannot be established: no CRL is loaded for its issuer, or that CRL
	// is out of date (then the error also wraps ErrCRLExpired). Revocation
	// checking fails closed: such a certificate is refused.
	ErrRevocationUnknown = errors.New("pki: revocation status unknown")

	// ErrCRLExpired reports a CRL whose NextUpdate (plus the configured
	// grace period) has passed.
	ErrCRLExpired = errors.New("pki: CRL expired")

	// ErrInvalidCRL reports a CRL that cannot be used: malformed, not
	// signed by a configured issuer, without NextUpdate, issued in the
	// future, older than the CRL already loaded, or with a critical
	// extension this package does not process.
	ErrInvalidCRL = errors.New("pki: invalid CRL")

	// ErrInvalidRevocationConfig reports RevocationOptions from which
	// NewRevocation cannot build a revocation checker.
	ErrInvalidRevocationConfig = errors.New("pki: invalid revocation configuration")

	// ErrInvalidMappingRule reports an identity mapping rule (or rules
	// document) that is malformed or unsafe.
	ErrInvalidMappingRule = errors.New("pki: invalid identity mapping rule")

	// ErrUnmappedCertificate reports a certificate that no identity mapping
	// rule maps to a participant.
	ErrUnmappedCertificate = errors.New("pki: certificate maps to no participant")

	// ErrCertificateExpired reports a certificate whose NotAfter has passed.
	ErrCertificateExpired = errors.New("pki: certificate expired")

	// ErrCertificateNotYetValid reports a certificate whose NotBefore has
	// not been reached.
	ErrCertificateNotYetValid = errors.New("pki: certificate not yet valid")

	// ErrIdentityChanged reports a replacement certificate (see Reloader)
	// whose identity or extended key usages differ from the certificate
	// it would replace.
	ErrIdentityChanged = errors.New("pki: replacement certificate changes the identity")
)
