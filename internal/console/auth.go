package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
)

// ceremony is a WebAuthn registration or sign-in in progress.
type ceremony struct {
	kind     string // "enrol", "login" or "reauth"
	operator string
	data     webauthn.SessionData
	expires  time.Time
	session  string // for reauth: the session token
}

// waUser adapts an operator and its credentials to webauthn.User.
type waUser struct {
	op    operator.Operator
	creds []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return []byte(u.op.ID) }
func (u *waUser) WebAuthnName() string                       { return u.op.ID }
func (u *waUser) WebAuthnDisplayName() string                { return u.op.Name }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func (c *Console) user(ctx context.Context, id string) (*waUser, error) {
	op, err := c.cfg.Operators.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	stored, err := c.cfg.Operators.Credentials(ctx, id)
	if err != nil {
		return nil, err
	}
	u := &waUser{op: op}
	for _, s := range stored {
		var cr webauthn.Credential
		if err := json.Unmarshal(s.Data, &cr); err != nil {
			return nil, err
		}
		u.creds = append(u.creds, cr)
	}
	return u, nil
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *Console) startCeremony(w http.ResponseWriter, cer *ceremony) {
	t := token()
	cer.expires = c.now().Add(ceremonyTTL)
	c.mu.Lock()
	for k, v := range c.ceremonies {
		if c.now().After(v.expires) {
			delete(c.ceremonies, k)
		}
	}
	c.ceremonies[t] = cer
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: ceremonyCookie, Value: t, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(ceremonyTTL / time.Second)})
}

// takeCeremony removes and returns the ceremony the request's cookie names,
// if it is of one of kinds and has not expired: each challenge is answered
// at most once, whatever the answer.
func (c *Console) takeCeremony(r *http.Request, kinds ...string) *ceremony {
	ck, err := r.Cookie(ceremonyCookie)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cer := c.ceremonies[ck.Value]
	delete(c.ceremonies, ck.Value)
	if cer == nil || !slices.Contains(kinds, cer.kind) || c.now().After(cer.expires) {
		return nil
	}
	return cer
}

// jsonReply writes v as JSON.
func jsonReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type failure struct {
	Error string `json:"error"`
}

type beginRequest struct {
	Operator string `json:"operator"`
	Code     string `json:"code,omitempty"`
}

func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxForm+1))
	if err != nil {
		return err
	}
	if len(body) > maxForm {
		return errors.New("request too large")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// enrolBegin checks an invited operator's enrolment code and starts the
// registration of their authenticator.
func (c *Console) enrolBegin(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	var req beginRequest
	if err := readJSON(r, &req); err != nil {
		jsonReply(w, http.StatusBadRequest, failure{msg(lang, "err.request")})
		return
	}
	if err := c.cfg.Operators.CheckEnrolmentCode(r.Context(), req.Operator, req.Code); err != nil {
		// The store counted the failure; an unknown operator looks the same.
		locked := errors.Is(err, operator.ErrLocked)
		c.audit(r, safeObject(req.Operator), "enrol.failure", "console", audit.ResultDenied, "wrong or expired enrolment code")
		c.alertFailure(r, safeObject(req.Operator), locked)
		jsonReply(w, http.StatusForbidden, failure{c.failMsg(lang, locked)})
		return
	}
	u, err := c.user(r.Context(), req.Operator)
	if err != nil {
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	opts, data, err := c.wa.BeginRegistration(u)
	if err != nil {
		c.log.Error("console: begin registration", "err", err)
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	c.startCeremony(w, &ceremony{kind: "enrol", operator: req.Operator, data: *data})
	jsonReply(w, http.StatusOK, opts)
}

// enrolFinish verifies the new credential and stores it; the operator then
// waits for an administrator's approval.
func (c *Console) enrolFinish(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	cer := c.takeCeremony(r, "enrol")
	if cer == nil {
		jsonReply(w, http.StatusBadRequest, failure{msg(lang, "err.ceremony")})
		return
	}
	u, err := c.user(r.Context(), cer.operator)
	if err != nil {
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	cred, err := c.wa.FinishRegistration(u, cer.data, r)
	if err != nil {
		c.audit(r, cer.operator, "enrol.failure", cer.operator, audit.ResultDenied, "authenticator registration refused")
		c.failed(r, cer.operator, "", "")
		jsonReply(w, http.StatusForbidden, failure{msg(lang, "err.register")})
		return
	}
	data, err := json.Marshal(cred)
	if err != nil {
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	if err := c.cfg.Operators.AddCredential(r.Context(), cer.operator, cred.ID, data); err != nil {
		jsonReply(w, http.StatusConflict, failure{msg(lang, "err.state")})
		return
	}
	c.audit(r, cer.operator, "enrol.register", cer.operator, audit.ResultOK, "authenticator registered")
	next := "/enrol/done"
	if activated, err := c.bootstrap(r.Context(), cer.operator); err == nil && activated {
		c.audit(r, "system", "operator.bootstrap", cer.operator, audit.ResultOK, "first administrator activated")
		next = "/login"
	}
	jsonReply(w, http.StatusOK, map[string]string{"next": next})
}

// bootstrap activates the first administrator: one the installation
// invited (InvitedBy "system") while no administrator is active. It has no
// second person to approve it by construction.
func (c *Console) bootstrap(ctx context.Context, id string) (bool, error) {
	op, err := c.cfg.Operators.Get(ctx, id)
	if err != nil || op.Role != operator.RoleAdmin || op.InvitedBy != SystemActor {
		return false, err
	}
	ops, err := c.cfg.Operators.List(ctx)
	if err != nil {
		return false, err
	}
	for _, o := range ops {
		if o.Role == operator.RoleAdmin && o.State == operator.StateActive {
			return false, nil
		}
	}
	return true, c.cfg.Operators.Bootstrap(ctx, id)
}

// SystemActor is the inviter of the first administrator, created by the
// installation (`taxlink console invite` or `taxlink dev`).
const SystemActor = "system"

// loginBegin starts a sign-in (or, with a session, a re-authentication).
func (c *Console) loginBegin(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	var req beginRequest
	if err := readJSON(r, &req); err != nil {
		jsonReply(w, http.StatusBadRequest, failure{msg(lang, "err.request")})
		return
	}
	kind, sessTok := "login", ""
	if s, _, ok := c.currentSession(r); ok {
		// Re-authentication: always for the session's own operator.
		kind, sessTok, req.Operator = "reauth", s.token, s.Operator
	}
	if err := c.cfg.Operators.CanSignIn(r.Context(), req.Operator); err != nil {
		detail := "operator cannot sign in"
		m := msg(lang, "err.signin")
		if errors.Is(err, operator.ErrLocked) {
			detail, m = "operator is locked", msg(lang, "err.locked")
		}
		c.audit(r, req.Operator, "auth.failure", "console", audit.ResultDenied, detail)
		jsonReply(w, http.StatusForbidden, failure{m})
		return
	}
	u, err := c.user(r.Context(), req.Operator)
	if err != nil || len(u.creds) == 0 {
		jsonReply(w, http.StatusForbidden, failure{msg(lang, "err.signin")})
		return
	}
	opts, data, err := c.wa.BeginLogin(u)
	if err != nil {
		c.log.Error("console: begin login", "err", err)
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	c.startCeremony(w, &ceremony{kind: kind, operator: req.Operator, data: *data, session: sessTok})
	jsonReply(w, http.StatusOK, opts)
}

// loginFinish verifies the assertion and opens (or refreshes) a session.
func (c *Console) loginFinish(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	cer := c.takeCeremony(r, "login", "reauth")
	if cer == nil {
		jsonReply(w, http.StatusBadRequest, failure{msg(lang, "err.ceremony")})
		return
	}
	reauth := cer.kind == "reauth"
	u, err := c.user(r.Context(), cer.operator)
	if err != nil {
		jsonReply(w, http.StatusForbidden, failure{msg(lang, "err.signin")})
		return
	}
	cred, err := c.wa.FinishLogin(u, cer.data, r)
	if err == nil {
		err = c.cfg.Operators.CanSignIn(r.Context(), cer.operator)
	}
	if err != nil {
		locked := c.failed(r, cer.operator, "auth.failure", "assertion refused")
		jsonReply(w, http.StatusForbidden, failure{c.failMsg(lang, locked)})
		return
	}
	if data, err := json.Marshal(cred); err == nil {
		_ = c.cfg.Operators.UpdateCredential(r.Context(), cred.ID, data)
	}
	_ = c.cfg.Operators.RecordSuccess(r.Context(), cer.operator)
	if reauth {
		if err := c.cfg.Operators.Reauthenticated(r.Context(), cer.session); err != nil {
			jsonReply(w, http.StatusForbidden, failure{msg(lang, "err.signin")})
			return
		}
		c.audit(r, cer.operator, "auth.reauth", "console", audit.ResultOK, "")
		jsonReply(w, http.StatusOK, map[string]string{"next": "/"})
		return
	}
	s, err := c.cfg.Operators.NewSession(r.Context(), cer.operator, remote(r))
	if err != nil {
		jsonReply(w, http.StatusInternalServerError, failure{msg(lang, "err.internal")})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.ID, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.audit(r, cer.operator, "auth.success", "console", audit.ResultOK, "webauthn with user verification")
	jsonReply(w, http.StatusOK, map[string]string{"next": "/"})
}

// loginAbort records a sign-in the browser could not complete (user
// verification failed, the authenticator refused or was removed): it
// counts as a failed attempt.
func (c *Console) loginAbort(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	var req struct {
		Reason string `json:"reason"`
	}
	_ = readJSON(r, &req)
	cer := c.takeCeremony(r, "login", "reauth")
	if cer == nil {
		jsonReply(w, http.StatusBadRequest, failure{msg(lang, "err.ceremony")})
		return
	}
	locked := c.failed(r, cer.operator, "auth.failure", "authenticator did not complete: "+safeReason(req.Reason))
	jsonReply(w, http.StatusForbidden, failure{c.failMsg(lang, locked)})
}

// safeReason keeps a DOMException name, nothing else.
func safeReason(s string) string {
	if len(s) > 40 {
		return "other"
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return "other"
		}
	}
	if s == "" {
		return "unspecified"
	}
	return s
}

// failed records a failed attempt of operator: the audit event, the
// failure count, and, when it locks the operator, the lockout with an
// alert. It reports whether the operator is now locked.
func (c *Console) failed(r *http.Request, id, action, detail string) bool {
	if action != "" {
		c.audit(r, id, action, "console", audit.ResultDenied, detail)
	}
	locked, err := c.cfg.Operators.RecordFailure(r.Context(), id)
	if err != nil {
		return false
	}
	c.alertFailure(r, id, locked)
	return locked
}

// alertFailure raises the alert of a failed attempt, critical when it
// locked the operator out.
func (c *Console) alertFailure(r *http.Request, id string, locked bool) {
	sev, kind := "warning", "auth.failure"
	if locked {
		sev, kind = "critical", "auth.lockout"
		c.audit(r, "system", "auth.lockout", id, audit.ResultOK, "operator locked and sessions ended after repeated failures")
	}
	_, _ = c.cfg.Operators.Alert(r.Context(), operator.Alert{Kind: kind, Severity: sev, Subject: id, Detail: "from " + remote(r)})
}

// failMsg is what a failed attempt tells the browser.
func (c *Console) failMsg(lang string, locked bool) string {
	if locked {
		return msg(lang, "err.locked")
	}
	return msg(lang, "err.signin")
}
