package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
	"taxlink/internal/svgchart"
)

// view is what every page template receives.
type view struct {
	Lang, Title, ID, Env, Kind string
	Who                        *operator.Operator
	CSRF                       string
	Nav                        []navItem
	Flash, Error               string
	Data                       any
	Now                        time.Time
}

type navItem struct{ Href, Label string }

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("GET /enrol", c.enrolPage)
	m.HandleFunc("GET /enrol/done", c.enrolDone)
	m.HandleFunc("GET /reauth", c.reauthPage)
	m.HandleFunc("POST /webauthn/enrol/begin", c.enrolBegin)
	m.HandleFunc("POST /webauthn/enrol/finish", c.enrolFinish)
	m.HandleFunc("POST /webauthn/login/begin", c.loginBegin)
	m.HandleFunc("POST /webauthn/login/finish", c.loginFinish)
	m.HandleFunc("POST /webauthn/login/abort", c.loginAbort)
	m.HandleFunc("POST /card/enrol", c.cardEnrol)
	m.HandleFunc("POST /card/login", c.cardLogin)
	m.HandleFunc("POST /card/pin", c.cardPIN)
	m.HandleFunc("POST /logout", c.page(capDashboard, c.logout))
	m.HandleFunc("POST /logout/all", c.page(capDashboard, c.logoutAll))
	m.HandleFunc("GET /{$}", c.page(capDashboard, c.dashboard))
	m.HandleFunc("GET /operators", c.page(capOperators, c.operators))
	m.HandleFunc("POST /operators/invite", c.page(capAdmin, c.invite))
	// Approving an enrolment is a security officer's or administrator's
	// act; an administrator's enrolment needs one other than the inviter.
	m.HandleFunc("POST /operators/{id}/approve", c.page(capApprove, func(w http.ResponseWriter, r *http.Request, wh *who) {
		c.operatorDo(w, r, wh, "approve")
	}))
	m.HandleFunc("POST /operators/{id}/{verb}", c.page(capAdmin, c.operatorVerb))
	m.HandleFunc("GET /approvals", c.page(capRequest, c.approvals))
	m.HandleFunc("POST /request/{kind}", c.page(capRequest, c.request))
	m.HandleFunc("POST /approvals/{id}/decide", c.page(capApprove, c.decide))
	m.HandleFunc("GET /alerts", c.page(capAlerts, c.alerts))
	m.HandleFunc("POST /alerts/{id}/ack", c.page(capAckAlert, c.ackAlert))
	m.HandleFunc("GET /incidents", c.page(capAlerts, c.incidentList))
	m.HandleFunc("POST /incidents/open", c.page(capRequest, c.incidentOpen))
	m.HandleFunc("GET /incidents/{id}", c.page(capAlerts, func(w http.ResponseWriter, r *http.Request, wh *who) { c.incidentPage(w, r, wh, false) }))
	m.HandleFunc("GET /incidents/{id}/report", c.page(capAlerts, func(w http.ResponseWriter, r *http.Request, wh *who) { c.incidentPage(w, r, wh, true) }))
	m.HandleFunc("POST /incidents/{id}/{verb}", c.page(capRequest, c.incidentVerb))
	m.HandleFunc("GET /attestations", c.page(capAlerts, c.attestations))
	m.HandleFunc("POST /attestations", c.page(capApprove, c.attest))
	m.HandleFunc("GET /history", c.page(capHistory, c.history))
	m.HandleFunc("GET /history.csv", c.page(capHistory, c.historyCSV))
	m.HandleFunc("GET /records", c.page(capData, c.records))
	m.HandleFunc("GET /records/{tenant}/{id}", c.page(capData, c.record))
	m.HandleFunc("GET /records/{tenant}/{id}/download", c.page(capData, c.download))
	m.HandleFunc("GET /records/{tenant}/{id}/print", c.page(capData, c.print))
	c.mux = m
}

// render writes page name with data.
func (c *Console) render(w http.ResponseWriter, r *http.Request, wh *who, status int, name, title string, data any) {
	lang := c.lang(r)
	v := view{Lang: lang, Title: msg(lang, title), ID: c.cfg.ID, Env: c.cfg.Environment, Kind: c.cfg.Backend.Kind(), Data: data, Now: c.now()}
	if wh != nil {
		op := wh.op
		v.Who, v.CSRF = &op, wh.s.CSRF
		v.Nav = c.nav(lang, op.Role)
	}
	if q := r.URL.Query().Get("lang"); q == "en" || q == "ja" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: q, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
	}
	if e, ok := data.(pageError); ok {
		v.Error, v.Data = msg(lang, string(e)), nil
	}
	var buf bytes.Buffer
	t := c.tmpl[name]
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, v); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, msg(lang, "err.internal"), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageError is a message key shown as a page's error.
type pageError string

// fail shows an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, wh *who, status int, key string) {
	c.render(w, r, wh, status, "message", "app", pageError(key))
}

func (c *Console) nav(lang string, role operator.Role) []navItem {
	var n []navItem
	add := func(ok bool, href, key string) {
		if ok {
			n = append(n, navItem{href, msg(lang, key)})
		}
	}
	add(true, "/", "nav.dashboard")
	add(can(role, capData) && c.cfg.Records != nil, "/records", "nav.records")
	add(can(role, capRequest), "/approvals", "nav.approvals")
	add(can(role, capAlerts), "/alerts", "nav.alerts")
	add(can(role, capAlerts), "/incidents", "nav.incidents")
	add(can(role, capAlerts) && c.cfg.Attestations != nil, "/attestations", "nav.attestations")
	add(can(role, capHistory), "/history", "nav.history")
	add(can(role, capOperators), "/operators", "nav.operators")
	return n
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, http.StatusOK, "login", "login.title", map[string]any{"Mode": "login", "Card": c.cfg.CardLogin})
}

func (c *Console) reauthPage(w http.ResponseWriter, r *http.Request) {
	s, op, ok := c.currentSession(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	next := safeNext(r.URL.Query().Get("next"))
	c.render(w, r, nil, http.StatusOK, "login", "reauth.title", map[string]any{"Mode": "reauth", "Operator": op.ID, "Next": next, "Since": s.LastSeen, "Card": c.cfg.CardLogin})
}

func (c *Console) enrolPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, http.StatusOK, "enrol", "enrol.title", map[string]any{"Card": c.cfg.CardLogin})
}

// safeNext keeps a local path to return to after re-authentication.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (c *Console) enrolDone(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, http.StatusOK, "message", "enrol.title", map[string]string{"Message": msg(c.lang(r), "enrol.done")})
}

// grantedTenants is the part of the backend's tenants op may see.
func (c *Console) grantedTenants(op operator.Operator) []string {
	var out []string
	for _, t := range c.cfg.Backend.Tenants() {
		if op.Grant.AllowsTenant(t) {
			out = append(out, t)
		}
	}
	return out
}

type dashData struct {
	Bulletins                []Bulletin
	Holds                    []string
	Throughput, BacklogChart []byte
	Backlog                  []Backlog
	Certificates             []Certificate
	DiskFree                 string
	Facts                    []Fact
	Alerts                   []operator.Alert
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, wh *who) {
	st, err := c.cfg.Backend.Status(r.Context())
	if err != nil {
		c.log.Warn("console: status", "err", err)
	}
	d := dashData{Certificates: st.Certificates, Facts: st.Facts, DiskFree: bytesText(st.DiskFree), Holds: st.Holds}
	for _, b := range st.Bulletins {
		if slices.Contains(b.Audience, "*") || slices.ContainsFunc(b.Audience, wh.op.Grant.AllowsTenant) || c.cfg.Backend.Kind() == "hub" {
			d.Bulletins = append(d.Bulletins, b)
		}
	}
	var bars []svgchart.Bar
	for _, b := range st.Backlog {
		if !wh.op.Grant.AllowsTenant(b.Recipient) {
			continue
		}
		d.Backlog = append(d.Backlog, b)
		bars = append(bars, svgchart.Bar{Label: b.Recipient, V: float64(b.Count)})
	}
	lang := wh.lang
	var series []svgchart.Series
	for _, name := range []string{"accepted", "delivered", "recorded", "submitted", "refused"} {
		if _, ok := st.Counters[name]; ok {
			s := c.samples.Rate(name)
			s.Name = name
			series = append(series, s)
		}
	}
	d.Throughput = svgchart.Line(series, svgchart.Options{Title: msg(lang, "dash.throughput"), Unit: "/s", Loc: jst})
	d.BacklogChart = svgchart.Bars(bars, svgchart.Options{Title: msg(lang, "dash.backlog"), Unit: msg(lang, "dash.count")})
	if can(wh.op.Role, capAlerts) {
		d.Alerts, _ = c.cfg.Operators.Alerts(r.Context(), 10, false)
	}
	c.render(w, r, wh, http.StatusOK, "dashboard", "dash.title", d)
}

func bytesText(b float64) string {
	switch {
	case b >= 1<<30:
		return strconv.FormatFloat(b/(1<<30), 'f', 1, 64) + " GiB"
	case b >= 1<<20:
		return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + " B"
}

// Operators page.

func (c *Console) operators(w http.ResponseWriter, r *http.Request, wh *who) {
	c.operatorsWith(w, r, wh, http.StatusOK, "", "")
}

func (c *Console) operatorsWith(w http.ResponseWriter, r *http.Request, wh *who, status int, flash, code string) {
	ops, err := c.cfg.Operators.List(r.Context())
	if err != nil {
		c.log.Error("console: list operators", "err", err)
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	c.render(w, r, wh, status, "operators", "op.title", map[string]any{
		"Admin": can(wh.op.Role, capAdmin), "Operators": ops, "Roles": operator.Roles(), "Flash": flash, "Code": code, "Tenants": c.cfg.Backend.Tenants(), "Types": c.cfg.Backend.Types(),
	})
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

func (c *Console) invite(w http.ResponseWriter, r *http.Request, wh *who) {
	op := operator.Operator{
		ID: r.PostFormValue("id"), Name: r.PostFormValue("name"), Role: operator.Role(r.PostFormValue("role")),
		Grant: operator.Grant{Tenants: splitList(r.PostFormValue("tenants")), Types: splitList(r.PostFormValue("types"))},
	}
	code, err := c.cfg.Operators.Invite(r.Context(), wh.op.ID, op)
	if err != nil {
		c.audit(r, wh.op.ID, "operator.invite", safeObject(op.ID), audit.ResultError, "refused: "+errText(err))
		c.operatorsWith(w, r, wh, http.StatusBadRequest, errText(err), "")
		return
	}
	c.audit(r, wh.op.ID, "operator.invite", op.ID, audit.ResultOK, "role "+string(op.Role)+" tenants "+trimDetail(strings.Join(op.Grant.Tenants, ","))+" types "+trimDetail(strings.Join(op.Grant.Types, ",")))
	c.operatorsWith(w, r, wh, http.StatusOK, msg(wh.lang, "op.invited"), code)
}

// operatorVerb unlocks or disables an operator.
func (c *Console) operatorVerb(w http.ResponseWriter, r *http.Request, wh *who) {
	if v := r.PathValue("verb"); v == "unlock" || v == "disable" {
		c.operatorDo(w, r, wh, v)
		return
	}
	c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
}

// operatorDo approves, unlocks or disables an operator.
func (c *Console) operatorDo(w http.ResponseWriter, r *http.Request, wh *who, verb string) {
	id := r.PathValue("id")
	var err error
	switch verb {
	case "approve":
		err = c.cfg.Operators.Approve(r.Context(), wh.op.ID, id)
	case "unlock":
		err = c.cfg.Operators.Unlock(r.Context(), wh.op.ID, id)
	case "disable":
		if id == wh.op.ID {
			err = operator.ErrSelfApproval
		} else {
			err = c.cfg.Operators.Disable(r.Context(), id)
		}
	default:
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	action := "operator." + verb
	if err != nil {
		c.audit(r, wh.op.ID, action, safeObject(id), audit.ResultDenied, errText(err))
		flash := errText(err)
		if errors.Is(err, operator.ErrSelfApproval) {
			flash = msg(wh.lang, "err.self")
		}
		c.operatorsWith(w, r, wh, http.StatusConflict, flash, "")
		return
	}
	c.audit(r, wh.op.ID, action, id, audit.ResultOK, "")
	http.Redirect(w, r, "/operators", http.StatusSeeOther)
}

// safeObject keeps an operator-typed identifier fit for the audit log.
func safeObject(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func trimDetail(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// errText is an error's message for an operator: the store's messages
// name the problem, never a secret.
func errText(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// Approvals.

type approvalsData struct {
	Actions   []Action
	Approvals []operator.Approval
	Flash     string
	CanDecide bool
	Tenants   []string
}

func (c *Console) approvals(w http.ResponseWriter, r *http.Request, wh *who) {
	c.approvalsWith(w, r, wh, http.StatusOK, "")
}

func (c *Console) approvalsWith(w http.ResponseWriter, r *http.Request, wh *who, status int, flash string) {
	all, err := c.cfg.Operators.Approvals(r.Context(), "", 200)
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	var shown []operator.Approval
	for _, a := range all {
		if c.approvalVisible(wh.op, a) {
			shown = append(shown, a)
		}
	}
	c.render(w, r, wh, status, "approvals", "ap.title", approvalsData{
		Actions: c.cfg.Backend.Actions(), Approvals: shown, Flash: flash, CanDecide: can(wh.op.Role, capApprove), Tenants: c.grantedTenants(wh.op),
	})
}

// approvalVisible hides requests about tenants op is not granted.
func (c *Console) approvalVisible(op operator.Operator, a operator.Approval) bool {
	act, ok := c.action(a.Kind)
	if !ok || act.Tenant == "" {
		return true
	}
	return op.Grant.AllowsTenant(tenantOf(a.Object))
}

// tenantOf is the tenant an approval's object names (its first word).
func tenantOf(object string) string {
	t, _, _ := strings.Cut(object, " ")
	return t
}

func (c *Console) action(kind string) (Action, bool) {
	for _, a := range c.cfg.Backend.Actions() {
		if a.Kind == kind {
			return a, true
		}
	}
	return Action{}, false
}

func (c *Console) request(w http.ResponseWriter, r *http.Request, wh *who) {
	act, ok := c.action(r.PathValue("kind"))
	if !ok {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	values := map[string]string{}
	for _, f := range act.Fields {
		v := r.PostFormValue(f.Name)
		if f.Kind == "file" {
			if file, _, err := r.FormFile(f.Name); err == nil {
				var b bytes.Buffer
				_, _ = b.ReadFrom(file)
				file.Close()
				v = b.String()
			}
		}
		if f.Max > 0 && len(v) > f.Max {
			c.approvalsWith(w, r, wh, http.StatusBadRequest, f.Name+": too long")
			return
		}
		values[f.Name] = v
	}
	if act.Tenant != "" && !wh.op.Grant.AllowsTenant(values[act.Tenant]) {
		c.audit(r, wh.op.ID, "approval.request", act.Kind, audit.ResultDenied, "tenant not granted")
		c.fail(w, r, wh, http.StatusForbidden, "err.forbidden")
		return
	}
	object, summary, err := act.Check(r.Context(), values)
	if err != nil {
		c.audit(r, wh.op.ID, "approval.request", act.Kind, audit.ResultDenied, trimDetail(errText(err)))
		c.approvalsWith(w, r, wh, http.StatusBadRequest, errText(err))
		return
	}
	params, err := jsonMarshal(values)
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	a, err := c.cfg.Operators.Request(r.Context(), operator.Approval{Kind: act.Kind, Object: object, Params: params, Summary: summary, RequestedBy: wh.op.ID})
	if err != nil {
		c.approvalsWith(w, r, wh, http.StatusBadRequest, errText(err))
		return
	}
	c.audit(r, wh.op.ID, "approval.request", a.Kind+" "+a.ID, audit.ResultOK, trimDetail(object))
	c.approvalsWith(w, r, wh, http.StatusOK, msg(wh.lang, "ap.requested"))
}

func (c *Console) decide(w http.ResponseWriter, r *http.Request, wh *who) {
	id := r.PathValue("id")
	a, err := c.cfg.Operators.Approval(r.Context(), id)
	if err != nil || !c.approvalVisible(wh.op, a) {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	act, ok := c.action(a.Kind)
	if !ok {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	approve := r.PostFormValue("decision") == "approve"
	res, err := c.cfg.Operators.Decide(r.Context(), id, wh.op.ID, approve, func(ctx context.Context, a operator.Approval) (string, error) {
		values := map[string]string{}
		if err := jsonUnmarshal(a.Params, &values); err != nil {
			return "", err
		}
		// Who asked and who approved, for actions that issue evidence.
		values[ParamRequestedBy], values[ParamApprovedBy], values[ParamApproval] = a.RequestedBy, wh.op.ID, a.ID
		return act.Exec(ctx, values)
	})
	verb := "approval.reject"
	if approve {
		verb = "approval.approve"
	}
	if err != nil {
		c.audit(r, wh.op.ID, verb, a.Kind+" "+a.ID, audit.ResultDenied, trimDetail(errText(err)))
		flash := errText(err)
		if errors.Is(err, operator.ErrSelfApproval) {
			flash = msg(wh.lang, "err.self")
		}
		c.approvalsWith(w, r, wh, http.StatusConflict, flash)
		return
	}
	result := audit.ResultOK
	if res.State == operator.ApprovalFailed {
		result = audit.ResultError
	}
	c.audit(r, wh.op.ID, verb, a.Kind+" "+a.ID, result, "requested by "+a.RequestedBy+": "+trimDetail(res.Result))
	http.Redirect(w, r, "/approvals", http.StatusSeeOther)
}

// Alerts.

func (c *Console) alerts(w http.ResponseWriter, r *http.Request, wh *who) {
	as, err := c.cfg.Operators.Alerts(r.Context(), 200, false)
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	c.render(w, r, wh, http.StatusOK, "alerts", "alert.title", map[string]any{"Alerts": as, "CanAck": can(wh.op.Role, capAckAlert)})
}

func (c *Console) ackAlert(w http.ResponseWriter, r *http.Request, wh *who) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err == nil {
		err = c.cfg.Operators.AckAlert(r.Context(), id, wh.op.ID)
	}
	if err != nil {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	c.audit(r, wh.op.ID, "alert.ack", r.PathValue("id"), audit.ResultOK, "")
	http.Redirect(w, r, "/alerts", http.StatusSeeOther)
}

// History.

type historyFilter struct {
	Actor, Action, Object, Result string
	From, To                      string
}

func (f historyFilter) match(e audit.Event) bool {
	if f.Actor != "" && e.Actor != f.Actor {
		return false
	}
	if f.Action != "" && !strings.HasPrefix(e.Action, f.Action) {
		return false
	}
	if f.Object != "" && !strings.Contains(e.Object, f.Object) {
		return false
	}
	if f.Result != "" && e.Result != f.Result {
		return false
	}
	if t, err := time.ParseInLocation("2006-01-02", f.From, jst); err == nil && e.Time.Before(t) {
		return false
	}
	if t, err := time.ParseInLocation("2006-01-02", f.To, jst); err == nil && !e.Time.Before(t.AddDate(0, 0, 1)) {
		return false
	}
	return true
}

// historyEvents returns the newest events op may see that match f, at most
// limit of them, newest first. An operator granted only some tenants sees
// the events whose object names one of them.
func (c *Console) historyEvents(op operator.Operator, f historyFilter, limit int) ([]audit.Event, error) {
	size := c.cfg.Audit.Size()
	from := max(0, size-audit.MaxEvents)
	evs, err := c.cfg.Audit.Events(from, size)
	if err != nil {
		return nil, err
	}
	all := slices.Contains(op.Grant.Tenants, "*")
	var out []audit.Event
	for i := len(evs) - 1; i >= 0 && len(out) < limit; i-- {
		e := evs[i]
		if !all && !op.Grant.AllowsTenant(tenantOf(e.Object)) {
			continue
		}
		if f.match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func readFilter(r *http.Request) historyFilter {
	q := r.URL.Query()
	cut := func(s string) string {
		if len(s) > 128 {
			return s[:128]
		}
		return s
	}
	return historyFilter{Actor: cut(q.Get("actor")), Action: cut(q.Get("action")), Object: cut(q.Get("object")), Result: cut(q.Get("result")), From: cut(q.Get("from")), To: cut(q.Get("to"))}
}

func (c *Console) history(w http.ResponseWriter, r *http.Request, wh *who) {
	f := readFilter(r)
	evs, err := c.historyEvents(wh.op, f, historyPage)
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	c.audit(r, wh.op.ID, "history.view", "console", audit.ResultOK, "")
	c.render(w, r, wh, http.StatusOK, "history", "hist.title", map[string]any{"Events": evs, "Filter": f, "Query": r.URL.RawQuery})
}

func (c *Console) historyCSV(w http.ResponseWriter, r *http.Request, wh *who) {
	evs, err := c.historyEvents(wh.op, readFilter(r), audit.MaxEvents)
	if err != nil {
		c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
		return
	}
	c.audit(r, wh.op.ID, "history.export", "console", audit.ResultOK, itoa(len(evs))+" events")
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="taxlink-history.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "actor", "action", "object", "from", "result", "detail"})
	for _, e := range evs {
		_ = cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), csvSafe(e.Actor), csvSafe(e.Action), csvSafe(e.Object), csvSafe(e.From), e.Result, csvSafe(e.Detail)})
	}
	cw.Flush()
}

// csvSafe defuses a cell a spreadsheet would take for a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
