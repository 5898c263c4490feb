package export

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"taxlink/internal/audit"
)

// auditTimeout bounds one audit append; a request whose client went away
// is still audited (the append does not inherit its cancellation).
const auditTimeout = 10 * time.Second

// Audit actions.
const (
	actionList   = "export.list"
	actionFetch  = "export.fetch"
	actionAck    = "export.ack"
	actionDenied = "export.denied"
	actionDrop   = "export.drop"
)

// actorAnonymous is the audit actor of a request without a known client.
const actorAnonymous = "anonymous"

// recordAudit appends ev to al. If the audit log refuses the event itself
// (audit.ErrInvalid, for example an ID that happens to look like a 個人番号),
// it records the event again with only the first word of its object (the
// tenant) and no detail, saying so, rather than leave the access
// unrecorded. Failures are logged (without the event's detail) and
// returned.
func recordAudit(ctx context.Context, al *audit.Log, log *slog.Logger, ev audit.Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	_, err := al.Record(ctx, ev)
	if errors.Is(err, audit.ErrInvalid) {
		ev.Object, _, _ = strings.Cut(ev.Object, " ")
		ev.Detail = "object and detail withheld: refused by the audit field rules"
		ev.From = auditFrom(ev.From)
		if ev.Validate() != nil {
			ev.Object = ""
		}
		_, err = al.Record(ctx, ev)
	}
	if err != nil {
		log.Error("export: audit record failed", "actor", ev.Actor, "action", ev.Action, "result", ev.Result, "err", err)
	}
	return err
}

// auditFrom returns addr if it is fit for the From field of an audit event
// (1..128 bytes of printable ASCII without spaces), else "unknown".
func auditFrom(addr string) string {
	if addr == "" || len(addr) > audit.MaxFromLen {
		return "unknown"
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] <= ' ' || addr[i] > '~' {
			return "unknown"
		}
	}
	return addr
}
