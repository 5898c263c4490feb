// Package selfcheck is taxlink's self-inspection (自己点検, 総務省告示第151号
// 第4 11(1)): every numbered item of 第2 to 第6 of the standard, checked
// against one hub's or node's configuration and state, or attested by an
// operator.
//
// # The catalogue
//
// [standard.Catalogue] lists the 69 numbered items of 第2 to 第6. An item is a
// parenthesised number — (1), (2) … — under a numbered section, or the
// numbered section itself when it has no parenthesised numbers under it
// (第3 2, 第5 2) and 第6, which has no number at all. The katakana
// sub-points ア, イ, ウ … of an item are not items of their own: they are
// part of their item's excerpt and are checked or attested with it. IDs
// read like the standard's own references: "第4-4-(2)", "第3-2", "第6".
//
// Each item is of one of two kinds:
//
//   - [standard.Automated]: one or more named checks (see [CheckNames]) run
//     against an [Env]; the item passes when every check passes. Where a
//     clause also has an organisational side that no program can see, the
//     item's Note says what the checks establish and what they do not.
//   - [standard.AttestationKind]: organisational measures (rules, training,
//     buildings and rooms, contracts, staffing, reporting lines, audits).
//     The item is attested while an operator's dated [standard.Attestation] of it
//     has not expired, and unattested otherwise. An automated item can
//     never be attested.
//
// Where a clause binds only the 機構 (the hub's operator), a node's
// operator attests that it does not apply, saying why, as self-inspection
// check sheets do with 該当なし.
//
// # Running
//
// [Load] reads a hub's or node's configuration into an [Env]; [Run]
// evaluates every item and returns a [Report] with one [ItemResult] per
// item: pass, fail, attested or unattested, each with a one-line reason
// that never carries secrets or personal data. Checks read the
// configuration, the files it names (certificates, CRLs, key files for
// their mode only — no key is ever opened), the signed directory, the data
// directory (audit log, ledger, backups, console state) and, when the
// process runs, its listeners: the service and console listeners must
// refuse a TLS 1.2 handshake, and the OS process that owns the service
// listener must listen nowhere but on its configured addresses.
//
// # Thresholds
//
//   - Certificates (own TLS, console, CAs, the operators' smart-card CAs)
//     fail when expired, not yet valid or expiring within 7 days, and pass
//     with a warning within 30 days. At least one CRL must be configured,
//     signed by a CA of tls.ca, and it fails once its NextUpdate has passed
//     (taxlink then refuses every certificate of that CA).
//   - Keys: every key reference is enc: or pkcs11:; file: fails outside
//     the dev environment and passes with a note in dev. Key, passphrase
//     and PIN files, the data and backup directories and the console state
//     must be closed to group and others.
//   - Listeners: explicit addresses only (no 0.0.0.0 or [::]); outside
//     dev the console must not share the service listener's host.
//   - Console: idle re-authentication at most 15 minutes, lockout after at
//     most 10 failures (0 means the default, 5), a PIN policy of at least 6
//     characters when PIN sign-in is enabled, and two active operators with
//     an approving role (admin or security) so that the two-person rule can
//     work; on a node hosting several tenants no data user may be granted
//     all of them.
//   - Backups: each log's copy must verify against the live log
//     (ledger.CheckBackup) and be current: it holds every entry the live
//     log holds, or it was written within two backup periods (an idle log
//     is not copied again, so the age of the copy alone would fail an idle
//     process). backup.dir must lie outside data_dir and, outside dev, on
//     another device.
//   - Every node needs a malware scanner (clamd that answers PING) and a
//     retention rule for every tenant it hosts: every node records
//     notifications that data users or exports open. The hub never holds a
//     payload in the clear, so these pass there as not applicable.
//   - An outsourcer's certification must cover today, must not end within
//     7 days (warning within 30) and its last audit must be at most one
//     year old (少なくとも年一回).
package selfcheck
