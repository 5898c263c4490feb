// Package operator keeps the durable state of the taxlink web console, the
// operators' terminals of 総務省告示第151号 第4 4: operator accounts, their
// WebAuthn credentials, PINs for the smart-card + PIN sign-in mode,
// sessions, lockout, two-person approvals and alerts. Everything lives in
// one SQLite file opened with [Open]; the console's HTTP layer is the only
// intended caller.
//
// # Operators
//
// An [Operator] is the account of one person. Its [Role] says what the
// person may do and its [Grant] which tenants (participant IDs) and
// notification types a data user may search and open. An operator goes
// through these states:
//
//	Invite ─► invited ─AddCredential─► registered ─Approve─► active
//	             │                                 (Bootstrap)  │ ▲
//	             └──────── RecordFailure × LockoutAfter ────────┤ │ Unlock
//	                                                            ▼ │
//	                                                          locked
//	Disable: any state ─► disabled (final)
//
// An administrator invites an operator with [Store.Invite], which returns a
// one-time enrolment code (valid for [CodeTTL]) handed to the person out of
// band. The person proves the code with [Store.CheckEnrolmentCode] and
// registers a first WebAuthn credential with [Store.AddCredential]; the
// operator then waits in StateRegistered until a second person approves it
// with [Store.Approve]. An administrator's enrolment needs an administrator
// other than the one who invited it (two-person rule); only the very first
// administrator of an installation, invited by [BootstrapInviter], is
// activated without approval, by [Store.Bootstrap].
//
// The store records roles and grants but does not enforce them: before
// calling a method on behalf of an operator (the "by" arguments), the
// caller checks that this operator holds the role the action needs. The
// store enforces the rules that concern identities: no one approves or
// unlocks themselves, an administrator's enrolment is approved by someone
// other than its inviter, and an approval is decided by someone other than
// its requester. Granting RoleAdmin to an existing operator with
// [Store.SetGrant] is not guarded by the store; the caller should send it
// through a two-person [Approval] ("operator.enrol-admin").
//
// # Sign-in and lockout
//
// The console signs operators in with a WebAuthn credential (opaque JSON
// bytes to this package, see [Credential]) or with a smart card whose
// certificate is bound to the operator ([Store.BindCertificate]) plus a PIN
// ([Store.SetPIN], [Store.CheckPIN]). PINs are kept as Argon2id hashes;
// the last [PINPolicy.History] of them may not be reused. Every failed
// attempt is reported with [Store.RecordFailure]; after
// [Config.LockoutAfter] consecutive failures the operator is locked and all
// its sessions are ended, until an administrator other than the operator
// calls [Store.Unlock]. A successful sign-in calls [Store.RecordSuccess]
// and then [Store.NewSession].
//
// # Sessions
//
// A [Session] is identified by a bearer token (32 random bytes, base64url)
// that is given to the browser once, by [Store.NewSession], and never
// stored: the database keeps its SHA-256 only. Each session carries a CSRF
// token, the time of its last request ([Store.Touch]) and of its last
// (re)authentication ([Store.Reauthenticated]); the caller applies idle and
// absolute lifetimes (see also [Store.ExpireSessions]).
//
// # Two-person approvals
//
// A dangerous action (erasing records, suspending a participant,
// publishing the directory, enrolling an administrator) is not performed
// directly: it is recorded as a pending [Approval] with [Store.Request],
// and performed only when a second operator approves it with
// [Store.Decide], which claims the approval atomically, runs the caller's
// executor exactly once and records its outcome. Approvals left pending
// for more than [ApprovalTTL] expire.
//
// # Alerts
//
// An [Alert] is a security event for the security officers' console
// ([Store.Alert]), acknowledged by one of them ([Store.AckAlert]). The
// store raises none by itself; the caller decides what to alert on.
//
// # Storage
//
// Durability is never relaxed: every connection runs in WAL mode with
// synchronous=FULL, secure_delete (removed secrets are overwritten in the
// file) and foreign keys on, and [Open] checks every connection the pool
// opens. Write transactions begin IMMEDIATE and a [Store] lets one of its
// goroutines write at a time, so read-check-write sequences are atomic,
// also against other processes opening the same file. The schema is
// versioned in a schema_version table and migrated forward, in order, by
// [Open]. Times are stored as Unix nanoseconds.
//
// Secrets (PINs, enrolment codes, session tokens) never appear in error
// messages and are never stored in clear.
package operator
