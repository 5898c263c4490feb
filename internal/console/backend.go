package console

import (
	"context"
	"errors"
	"io"
	"time"

	"taxlink/internal/operator"
	"taxlink/internal/searchindex"
)

// Backend is what the console needs from the process it runs in, a hub or
// a node. Every method answers for the whole process; the console filters
// by the signed-in operator's grant before anything reaches a page.
type Backend interface {
	// Kind is "hub" or "node".
	Kind() string
	// Tenants lists the participants this process serves: the tenants a
	// node hosts, or every participant of the directory for a hub.
	Tenants() []string
	// Types lists the notification types of the directory.
	Types() []string
	// Status reads the figures the dashboard shows.
	Status(ctx context.Context) (Status, error)
	// Actions lists the dangerous actions this process offers; each takes
	// effect only once a second operator approves it.
	Actions() []Action
}

// Status is one reading of a hub's or node's state for the dashboard.
type Status struct {
	// Counters are monotonically increasing totals (e.g. "accepted",
	// "delivered", "recorded", "refused"); the console turns them into
	// rates.
	Counters map[string]float64
	// Backlog lists what waits per recipient (a hub's queues, a node's
	// outbox), largest first.
	Backlog []Backlog
	// Certificates lists certificates and their expiry.
	Certificates []Certificate
	// DiskFree is the free space of the data directory in bytes.
	DiskFree float64
	// Facts are other labelled figures (directory version, ledger size …).
	Facts []Fact
	// Bulletins are the 機構's notices from the directory that concern this
	// process, newest first.
	Bulletins []Bulletin
	// Holds are the incident measures in force.
	Holds []string
}

// Bulletin is a notice shown on the dashboard of the operators its
// audience concerns ("*": all).
type Bulletin struct {
	Time        time.Time
	Severity    string
	Title, Body string
	Audience    []string
}

// Backlog is what waits for one recipient.
type Backlog struct {
	Recipient string
	Count     uint64
	Oldest    time.Time // zero when nothing waits
	Errors    int64     // failed delivery attempts since start
}

// Certificate is a certificate the process relies on.
type Certificate struct {
	Subject  string
	NotAfter time.Time
}

// Fact is one labelled figure.
type Fact struct{ Label, Value string }

// Action is a dangerous operation under the two-person rule: an operator
// requests it with Fields filled in, a different operator of an approving
// role approves it, and only then Exec runs.
type Action struct {
	// Kind names it, e.g. "records.erase"; it is the approval's kind.
	Kind string
	// Title is the label in Japanese and English.
	Title, TitleEN string
	// Fields are the form fields of a request.
	Fields []Field
	// Tenant names the field that holds the tenant the action acts on
	// ("" when none): the requester and the approver must both be granted
	// that tenant.
	Tenant string
	// Check validates a request's values before it is queued: it returns
	// the object acted on and a one-line summary, or an error shown to
	// the requester.
	Check func(ctx context.Context, values map[string]string) (object, summary string, err error)
	// Exec carries it out once approved and returns what it did.
	Exec func(ctx context.Context, values map[string]string) (string, error)
}

// Keys the console adds to an approved action's values before Exec: the
// requester, the approver and the approval's ID.
const (
	ParamRequestedBy = "_requested_by"
	ParamApprovedBy  = "_approved_by"
	ParamApproval    = "_approval"
)

// Field is one form field of an Action.
type Field struct {
	Name, Label, LabelEN string
	// Kind is "text", "date" or "textarea".
	Kind string
	// Max bounds the value's length in bytes.
	Max int
}

// Errors a Records.Open may return for a record the malware check holds
// back (第4 7(4)).
var (
	// ErrScanPending: the record has not been scanned yet.
	ErrScanPending = errors.New("console: the record has not passed the malware check yet")
	// ErrQuarantined: the scanner found malware; the record is kept but
	// never served.
	ErrQuarantined = errors.New("console: the record is quarantined by the malware check")
)

// Records is what a node offers the data users (利用端末).
type Records interface {
	// Search finds records in the blind index.
	Search(ctx context.Context, q searchindex.Query) ([]searchindex.Entry, int, error)
	// Open returns the plaintext of one record of tenant, its media type
	// and its size, recording in the audit log that actor opened it from
	// the address from.
	Open(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, Opened, error)
}

// Opened describes an opened record.
type Opened struct {
	Type        string
	ContentType string
	Size        int64
	Created     time.Time
	Sender      string
}

// capability is something an operator may be allowed to do.
type capability int

const (
	capDashboard capability = iota
	capData                 // search and open records
	capHistory              // read the operation history
	capAdmin                // manage operators
	capOperators            // see the operators and approve enrolments
	capRequest              // request a dangerous action
	capApprove              // approve another operator's request
	capAlerts               // see alerts
	capAckAlert             // acknowledge alerts
)

// can says whether role has capability c. Data users and auditors are
// kept apart from operations: a data user cannot operate, an auditor only
// reads.
func can(role operator.Role, c capability) bool {
	switch c {
	case capDashboard:
		return role.Valid()
	case capData:
		return role == operator.RoleDataUser
	case capHistory:
		return role == operator.RoleAdmin || role == operator.RoleSecurity || role == operator.RoleAuditor
	case capAdmin:
		return role == operator.RoleAdmin
	case capOperators:
		return role == operator.RoleAdmin || role == operator.RoleSecurity
	case capRequest:
		return role == operator.RoleAdmin || role == operator.RoleOperator || role == operator.RoleSecurity
	case capApprove, capAckAlert:
		return role == operator.RoleAdmin || role == operator.RoleSecurity
	case capAlerts:
		return role != operator.RoleDataUser && role.Valid()
	}
	return false
}
