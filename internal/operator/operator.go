package operator

import (
	"errors"
	"slices"
	"strings"
	"taxlink/internal/sqlitedb"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Errors returned by this package wrap one of them (or a
// database or context error) with %w; test with errors.Is.
var (
	// ErrNotFound means the operator, credential, session, approval or
	// alert does not exist.
	ErrNotFound = errors.New("operator: not found")
	// ErrExists means the operator ID, credential ID or certificate is
	// already taken.
	ErrExists = errors.New("operator: already exists")
	// ErrInvalid means an argument or a configuration value is malformed
	// or out of bounds; nothing was changed.
	ErrInvalid = errors.New("operator: invalid argument")
	// ErrState means the object is not in a state that allows the
	// operation (for example approving an operator that is not
	// registered, or deciding an approval that is no longer pending).
	ErrState = errors.New("operator: wrong state")
	// ErrSelfApproval means a person tried to approve, unlock or decide
	// something of their own, or an administrator's inviter tried to
	// approve it (two-person rule).
	ErrSelfApproval = errors.New("operator: a second person must approve")
	// ErrLocked means the operator is locked after too many failures.
	ErrLocked = errors.New("operator: locked")
	// ErrBadCode means an enrolment code is wrong, expired or used, or
	// the operator is not waiting for enrolment.
	ErrBadCode = errors.New("operator: wrong or expired enrolment code")
	// ErrBadPIN means a PIN does not match.
	ErrBadPIN = errors.New("operator: wrong PIN")
	// ErrPINExpired means the PIN matched but is older than the policy's
	// expiry; it must be changed before the operator signs in.
	ErrPINExpired = errors.New("operator: PIN expired")
	// ErrPINReused means a new PIN equals one of the last
	// PINPolicy.History PINs of the operator.
	ErrPINReused = errors.New("operator: PIN was used before")
	// ErrNoPIN means the operator has no PIN.
	ErrNoPIN = errors.New("operator: no PIN set")
	// ErrClosed means the Store is closed.
	ErrClosed = errors.New("operator: store closed")
	// ErrNotDurable means a database connection did not end up in WAL
	// mode with synchronous=FULL, secure_delete and foreign keys on.
	ErrNotDurable = sqlitedb.ErrNotDurable
	// ErrSchemaTooNew means the database was written by a newer version
	// of this package; it is left untouched.
	ErrSchemaTooNew = errors.New("operator: database schema is newer than this program")
	// ErrForeign means the file is a SQLite database that is not an
	// operator store; it is left untouched.
	ErrForeign = errors.New("operator: database is not an operator store")
)

// Role is what an operator may do in the console. The store records it;
// the caller enforces it.
type Role string

// The roles, in the order Roles returns them.
const (
	RoleAdmin    Role = "admin"    // システム管理者: operators, grants, unlock
	RoleSecurity Role = "security" // セキュリティ責任者: approves dangerous actions, sees alerts and history
	RoleOperator Role = "operator" // 運用担当者: operations on the hub or node
	RoleAuditor  Role = "auditor"  // 監査人: read only: history, dashboards
	RoleDataUser Role = "datauser" // データ利用者: searches and opens records of granted tenants/types
)

// Valid reports whether r is one of the roles Roles returns.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Roles returns every role, in the order RoleAdmin, RoleSecurity,
// RoleOperator, RoleAuditor, RoleDataUser. The slice is new on every call.
func Roles() []Role {
	return []Role{RoleAdmin, RoleSecurity, RoleOperator, RoleAuditor, RoleDataUser}
}

// Grant scopes an operator. Tenants and Types are participant IDs (e.g.
// "lg:011002", syntax ^[a-z]+:[A-Za-z0-9._-]{1,64}$) and notification
// types (e.g. "income-tax-return", syntax ^[a-z][a-z0-9-]{0,63}$); a single
// "*" element means all. Empty means none. The store keeps both lists
// sorted and without duplicates, at most MaxGrantElements each.
type Grant struct {
	Tenants []string
	Types   []string
}

// MaxGrantElements bounds the length of Grant.Tenants and Grant.Types.
const MaxGrantElements = 1024

// AllowsTenant reports whether g allows the participant ID t: g.Tenants is
// exactly ["*"] or contains t. An empty t is never allowed.
func (g Grant) AllowsTenant(t string) bool { return allows(g.Tenants, t) }

// AllowsType reports whether g allows the notification type typ:
// g.Types is exactly ["*"] or contains typ. An empty typ is never allowed.
func (g Grant) AllowsType(typ string) bool { return allows(g.Types, typ) }

func allows(list []string, v string) bool {
	if v == "" {
		return false
	}
	if len(list) == 1 && list[0] == "*" {
		return true
	}
	return v != "*" && slices.Contains(list, v)
}

// normalize validates g and returns it with sorted, deduplicated lists
// (nil when empty).
func (g Grant) normalize() (Grant, error) {
	t, err := normalizeList("tenant", g.Tenants, validTenant)
	if err != nil {
		return Grant{}, err
	}
	ty, err := normalizeList("type", g.Types, validType)
	if err != nil {
		return Grant{}, err
	}
	return Grant{Tenants: t, Types: ty}, nil
}

func normalizeList(what string, in []string, valid func(string) bool) ([]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > MaxGrantElements {
		return nil, invalidf("grant: more than %d %ss", MaxGrantElements, what)
	}
	if slices.Contains(in, "*") {
		if len(in) != 1 {
			return nil, invalidf("grant: %q must be the only %s", "*", what)
		}
		return []string{"*"}, nil
	}
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !valid(v) {
			return nil, invalidf("grant: malformed %s %q", what, clip(v))
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// State is where an operator is in its life cycle (see the package
// documentation).
type State string

// The operator states.
const (
	StateInvited    State = "invited"    // created by an admin, has an enrolment code, no credential yet
	StateRegistered State = "registered" // credential registered, waiting for an admin's approval
	StateActive     State = "active"
	StateLocked     State = "locked" // too many failures; an admin unlocks
	StateDisabled   State = "disabled"
)

// Operator is the account of one person.
type Operator struct {
	ID         string // ^[a-z][a-z0-9._-]{1,31}$
	Name       string // display name, 1..64 runes, printable, no control chars
	Role       Role
	Grant      Grant
	State      State
	InvitedBy  string
	ApprovedBy string
	CreatedAt  time.Time
	Failures   int       // consecutive failed sign-ins
	LockedAt   time.Time // zero unless locked
	CertSHA256 string    // hex SHA-256 of the operator's smart-card certificate (DER), "" if none
	PINSetAt   time.Time // zero if no PIN
}

// Credential is a WebAuthn credential of an operator. Data is the
// console's serialization of it (JSON, opaque to this package).
type Credential struct {
	ID        []byte // credential ID, 1..MaxCredentialIDLen bytes
	Operator  string
	Data      []byte // opaque JSON, at most MaxCredentialDataLen bytes
	CreatedAt time.Time
	LastUsed  time.Time // zero until UpdateCredential
}

// Bounds of credentials.
const (
	MaxCredentialIDLen   = 1023     // WebAuthn's bound on credential IDs
	MaxCredentialDataLen = 64 << 10 // bytes of Credential.Data
)

// Session is a signed-in browser.
type Session struct {
	ID       string    // the opaque token given to the browser (32 random bytes, base64url); only its SHA-256 is stored
	Operator string    // the operator signed in
	CSRF     string    // per-session CSRF token (32 random bytes base64url), stored as is
	From     string    // remote address at sign-in
	Created  time.Time // sign-in
	LastSeen time.Time // last request (Touch)
	AuthAt   time.Time // last (re)authentication
}

// ApprovalState is where an approval is in its life cycle.
type ApprovalState string

// The approval states. An approval is pending until decided; approving it
// moves it to executing while the executor runs, then to executed or
// failed; rejecting it moves it to rejected; a pending approval older than
// ApprovalTTL is expired.
const (
	ApprovalPending   ApprovalState = "pending"
	ApprovalExecuting ApprovalState = "executing" // approved, executor running (or interrupted by a crash)
	ApprovalExecuted  ApprovalState = "executed"
	ApprovalRejected  ApprovalState = "rejected"
	ApprovalFailed    ApprovalState = "failed"
	ApprovalExpired   ApprovalState = "expired"
)

// Valid reports whether s is one of the approval states.
func (s ApprovalState) Valid() bool {
	switch s {
	case ApprovalPending, ApprovalExecuting, ApprovalExecuted, ApprovalRejected, ApprovalFailed, ApprovalExpired:
		return true
	}
	return false
}

// Approval is a dangerous action waiting for, or decided by, a second
// person.
type Approval struct {
	ID          string        // ULID
	Kind        string        // e.g. "operator.enrol-admin", "records.erase", "participant.suspend", "directory.publish"
	Object      string        // what it acts on (no personal data), 1..256 bytes
	Params      []byte        // opaque JSON for the executor, <= 64 KiB; nil if none
	Summary     string        // human readable, <= 512 bytes
	RequestedBy string        // operator who asked
	RequestedAt time.Time     // when
	State       ApprovalState // pending, executing, executed, rejected, failed, expired
	DecidedBy   string        // operator who decided ("" while pending and when expired)
	DecidedAt   time.Time     // when decided or expired
	Result      string        // outcome text, <= 512 bytes
}

// Bounds of approvals.
const (
	MaxObjectLen  = 256      // bytes of Approval.Object and Alert.Subject
	MaxParamsLen  = 64 << 10 // bytes of Approval.Params
	MaxSummaryLen = 512      // bytes of Approval.Summary and Approval.Result
	MaxDetailLen  = 2048     // bytes of Alert.Detail
	MaxKindLen    = 64       // bytes of Approval.Kind and Alert.Kind
)

// Alert is a security event for the security officers.
type Alert struct {
	ID       int64
	Time     time.Time
	Kind     string // e.g. "auth.failure", "auth.lockout"
	Severity string // "info", "warning", "critical"
	Subject  string // operator or object ID, <= 256 bytes
	Detail   string // <= 2048 bytes, may span lines
	AckedBy  string // "" until acknowledged
	AckedAt  time.Time
}

// Alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Durations of the model.
const (
	// CodeTTL is how long an enrolment code is valid after Invite or
	// NewEnrolmentCode.
	CodeTTL = 72 * time.Hour
	// ApprovalTTL is how long an approval may stay pending.
	ApprovalTTL = 7 * 24 * time.Hour
)

// List limits: a limit of 0 means DefaultListLimit, more than MaxListLimit
// means MaxListLimit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 10000
)

// BootstrapInviter is the inviter ("by" of Invite) of the first
// administrator of an installation, the one Bootstrap may activate.
const BootstrapInviter = "system"

// ---- validation ----

func invalidf(format string, args ...any) error {
	return errorf(ErrInvalid, format, args...)
}

// clip shortens a rejected input for an error message. It is only used on
// values that are not secrets.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// validID reports whether s matches ^[a-z][a-z0-9._-]{1,31}$.
func validID(s string) bool {
	if len(s) < 2 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkID(what, s string) error {
	if !validID(s) {
		return invalidf("malformed %s %q", what, clip(s))
	}
	return nil
}

// validTenant reports whether s matches ^[a-z]+:[A-Za-z0-9._-]{1,64}$.
func validTenant(s string) bool {
	prefix, rest, ok := strings.Cut(s, ":")
	if !ok || prefix == "" || len(rest) < 1 || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] < 'a' || prefix[i] > 'z' {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validType reports whether s matches ^[a-z][a-z0-9-]{0,63}$.
func validType(s string) bool {
	if len(s) < 1 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validKind reports whether s is at most MaxKindLen bytes of dot-separated
// segments, each matching ^[a-z][a-z0-9-]*$ (e.g. "records.erase").
func validKind(s string) bool {
	if len(s) < 1 || len(s) > MaxKindLen {
		return false
	}
	for seg := range strings.SplitSeq(s, ".") {
		if !validType(seg) {
			return false
		}
	}
	return true
}

// checkText validates free text: valid UTF-8, at most max bytes, only
// graphic characters (letters, marks, numbers, punctuation, symbols,
// spaces), and, when multiline, newlines and tabs.
func checkText(what, s string, max int, multiline bool) error {
	if len(s) > max {
		return invalidf("%s is longer than %d bytes", what, max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsGraphic(r) || multiline && (r == '\n' || r == '\t') {
			continue
		}
		return invalidf("%s contains a control or format character", what)
	}
	return nil
}

func checkName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > 64 {
		return invalidf("name must be 1 to 64 characters")
	}
	if err := checkText("name", name, 64*utf8.UTFMax, false); err != nil {
		return err
	}
	if strings.TrimSpace(name) == "" {
		return invalidf("name is blank")
	}
	return nil
}

// checkCertHash validates and lowercases a hex SHA-256.
func checkCertHash(h string) (string, error) {
	if len(h) != 64 {
		return "", invalidf("certificate hash must be 64 hex digits")
	}
	h = strings.ToLower(h)
	for i := 0; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return "", invalidf("certificate hash must be 64 hex digits")
		}
	}
	return h, nil
}

// truncate shortens s to at most max bytes on a rune boundary and replaces
// control characters (other than newline and tab) with spaces; it is used
// on text this package stores but did not get from a validated input
// (executor results and errors).
func truncate(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsGraphic(r) || r == '\n' || r == '\t' {
			return r
		}
		return ' '
	}, s)
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
