// Package pki implements the public-key infrastructure of the taxlink
// network: participant identities carried in certificates, a small
// certificate authority, mutual-TLS configurations and key/certificate
// files.
//
// Contract, in brief:
//
//   - An [Identity] is an environment ("production", "test" or "dev") and a
//     participant ID such as "lg:011002". In a certificate it is carried as
//     exactly one URI SAN of the form "taxlink://<env>/<id>"; identities are
//     always parsed strictly and only in their canonical form.
//   - Every key is ECDSA on P-256 (CRYPTREC). Other key types and curves are
//     refused with [ErrUnsupportedKey].
//   - Every TLS configuration produced here speaks TLS 1.3 only, always
//     verifies the peer's chain and additionally checks the peer's
//     identity (see [ServerConfig] and [ClientConfig]).
//   - Library code never reads the wall clock where validity matters: the
//     caller passes the time in. (The TLS configurations use
//     [crypto/tls.Config.Time], which callers may set, or [WithClock].)
//   - Errors wrap the sentinel errors declared in this package with %w, so
//     callers can decide with [errors.Is].
//
// Trust beyond the basics is added with options to [ServerConfigWith] and
// [ClientConfigWith]:
//
//   - [WithRevocation]: a [Revocation] checks every verified chain against
//     CRLs loaded from files (signature checked against a configured
//     issuer), refreshed periodically, failing closed when a CRL is out of
//     date ([ErrRevoked], [ErrRevocationUnknown], [ErrCRLExpired]). The dev
//     CA issues CRLs with [CA.CRL].
//   - [WithIdentityMapper]: a [Mapper] derives the identity; [RuleMapper]
//     maps certificates of external CAs (LGPKI, GPKI), which carry no
//     taxlink URI SAN, with [MappingRule]s, and never lets an external CA
//     assert a taxlink URI SAN.
//   - [WithCertificateSource]: a [Reloader] rotates this process's own
//     certificate from files without a restart.
//   - [WithClock]: the clock of chain verification.
//
// [ExpiryWarnings] and [CRLExpiryWarnings] report what expires soon.
//
// The package holds no mutable package-level state.
package pki
