package console

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
)

// Incidents (第2 4, 第4 9(5)(6)) live in the audit log itself, so that
// their record is as tamper-evident as everything else: opening one,
// notes, the root cause and closing are audit events whose object is
// "incident ID". An incident's timeline is those events plus every event
// of the period that matters to an incident (measures, approvals,
// directory changes, lockouts, malware, alerts), each with its index in
// the log, which `taxlink audit prove` proves against a signed checkpoint.

// incidentActions are the audit actions an incident's timeline shows
// besides its own.
var incidentActions = []string{"approval.", "directory.", "auth.lockout", "scan.", "alert.", "tenant.erase", "participant."}

var incidentIDRe = regexp.MustCompile(`^inc-[0-9]{8}-[0-9]{6}$`)

// incident is one incident read back from the audit log.
type incident struct {
	ID, Title, Severity, OpenedBy, ClosedBy string
	Opened, Closed                          time.Time
	RootCause                               string
	Timeline                                []timelineEntry
}

// timelineEntry is an audit event with its index in the log.
type timelineEntry struct {
	Index int64
	audit.Event
}

// allEvents returns the newest audit events (at most audit.MaxEvents) with
// their indexes, oldest first.
func (c *Console) allEvents() ([]timelineEntry, error) {
	size := c.cfg.Audit.Size()
	from := max(0, size-audit.MaxEvents)
	evs, err := c.cfg.Audit.Events(from, size)
	if err != nil {
		return nil, err
	}
	out := make([]timelineEntry, len(evs))
	for i, e := range evs {
		out[i] = timelineEntry{Index: from + int64(i), Event: e}
	}
	return out, nil
}

// incidents reads every incident from the audit log, newest first; with
// id set, only that one, with its timeline.
func (c *Console) incidents(id string) ([]*incident, error) {
	evs, err := c.allEvents()
	if err != nil {
		return nil, err
	}
	byID := map[string]*incident{}
	var order []*incident
	for _, e := range evs {
		if !strings.HasPrefix(e.Object, "incident ") || !strings.HasPrefix(e.Action, "incident.") || e.Result != audit.ResultOK {
			continue
		}
		iid := strings.TrimPrefix(e.Object, "incident ")
		in := byID[iid]
		switch e.Action {
		case "incident.open":
			if in != nil {
				continue
			}
			sev, title, _ := strings.Cut(e.Detail, " ")
			in = &incident{ID: iid, Title: title, Severity: sev, OpenedBy: e.Actor, Opened: e.Time}
			byID[iid] = in
			order = append(order, in)
		case "incident.close":
			if in != nil && in.Closed.IsZero() {
				in.Closed, in.ClosedBy = e.Time, e.Actor
			}
		case "incident.rootcause":
			if in != nil {
				in.RootCause = e.Detail
			}
		}
	}
	slices.Reverse(order)
	if id == "" {
		return order, nil
	}
	in := byID[id]
	if in == nil {
		return nil, nil
	}
	for _, e := range evs {
		if e.Time.Before(in.Opened) || (!in.Closed.IsZero() && e.Time.After(in.Closed)) {
			continue
		}
		own := e.Object == "incident "+id
		related := slices.ContainsFunc(incidentActions, func(p string) bool { return strings.HasPrefix(e.Action, p) })
		if own || (related && !strings.HasPrefix(e.Object, "incident ")) {
			in.Timeline = append(in.Timeline, e)
		}
	}
	return []*incident{in}, nil
}

func (c *Console) incidentList(w http.ResponseWriter, r *http.Request, wh *who) {
	list, err := c.incidents("")
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	c.render(w, r, wh, http.StatusOK, "incidents", "inc.title", map[string]any{"Incidents": list, "CanWrite": can(wh.op.Role, capRequest)})
}

func (c *Console) incidentOpen(w http.ResponseWriter, r *http.Request, wh *who) {
	title, sev := strings.TrimSpace(r.PostFormValue("title")), r.PostFormValue("severity")
	if title == "" || len(title) > 300 || !slices.Contains([]string{"info", "warning", "critical"}, sev) {
		c.fail(w, r, wh, http.StatusBadRequest, "err.request")
		return
	}
	id := "inc-" + c.now().In(jst).Format("20060102-150405")
	if _, err := c.cfg.Audit.Record(r.Context(), audit.Event{Actor: wh.op.ID, Action: "incident.open", Object: "incident " + id, From: remote(r), Result: audit.ResultOK, Detail: sev + " " + title}); err != nil {
		c.log.Error("console: incident open", "err", err)
		c.fail(w, r, wh, http.StatusBadRequest, "err.request")
		return
	}
	http.Redirect(w, r, "/incidents/"+id, http.StatusSeeOther)
}

// incidentVerb adds a note or the root cause, or closes the incident.
func (c *Console) incidentVerb(w http.ResponseWriter, r *http.Request, wh *who) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if !incidentIDRe.MatchString(id) || !slices.Contains([]string{"note", "rootcause", "close"}, verb) {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	if verb == "close" && !can(wh.op.Role, capApprove) {
		c.fail(w, r, wh, http.StatusForbidden, "err.forbidden")
		return
	}
	list, err := c.incidents(id)
	if err != nil || len(list) == 0 || !list[0].Closed.IsZero() {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	text := strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("text"), "\r\n", " "))
	if verb != "close" && (text == "" || len(text) > audit.MaxDetailLen) {
		c.fail(w, r, wh, http.StatusBadRequest, "err.request")
		return
	}
	if _, err := c.cfg.Audit.Record(r.Context(), audit.Event{Actor: wh.op.ID, Action: "incident." + verb, Object: "incident " + id, From: remote(r), Result: audit.ResultOK, Detail: text}); err != nil {
		// The audit log refuses what looks like personal data.
		c.fail(w, r, wh, http.StatusBadRequest, "err.request")
		return
	}
	http.Redirect(w, r, "/incidents/"+id, http.StatusSeeOther)
}

type incidentData struct {
	Incident   *incident
	CanWrite   bool
	CanClose   bool
	Checkpoint string
	Measures   []timelineEntry
	Generated  time.Time
	Who        *operator.Operator
}

func (c *Console) incidentPage(w http.ResponseWriter, r *http.Request, wh *who, report bool) {
	id := r.PathValue("id")
	if !incidentIDRe.MatchString(id) {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	list, err := c.incidents(id)
	if err != nil || len(list) == 0 {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	in := list[0]
	d := incidentData{Incident: in, CanWrite: can(wh.op.Role, capRequest) && in.Closed.IsZero(), CanClose: can(wh.op.Role, capApprove) && in.Closed.IsZero(), Generated: c.now(), Who: &wh.op}
	for _, e := range in.Timeline {
		if (e.Action == "approval.approve" && e.Result == audit.ResultOK) || strings.HasPrefix(e.Action, "directory.") || e.Action == "tenant.erase" {
			d.Measures = append(d.Measures, e)
		}
	}
	name := "incident"
	if report {
		name = "incident-report"
		cp, err := c.cfg.Audit.Checkpoint(r.Context())
		if err == nil {
			d.Checkpoint = string(cp.Note)
		}
		c.audit(r, wh.op.ID, "incident.report", "incident "+id, audit.ResultOK, fmt.Sprintf("%d timeline entries", len(in.Timeline)))
	}
	c.render(w, r, wh, http.StatusOK, name, "inc.title", d)
}
