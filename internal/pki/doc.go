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
//     [crypto/tls.Config.Time], which callers may set.)
//   - Errors wrap the sentinel errors declared in this package with %w, so
//     callers can decide with [errors.Is].
//
// The package holds no mutable package-level state.
package pki
