package console

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
)

// maxPIN bounds a PIN field in bytes before it reaches the policy.
const maxPIN = 64

// The smart card + PIN sign-in: the browser presents the operator's
// certificate (from a smart card) in the TLS handshake, verified against
// the configured client CA, and the operator types the PIN, which the
// console checks against its Argon2id hash. A wrong PIN counts as a failed
// attempt like a refused WebAuthn assertion.

// peerCert is the client certificate of the request, if any.
func peerCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

func certHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// formPIN reads a PIN field, refusing an oversized one.
func formPIN(r *http.Request, name string) (string, bool) {
	p := r.PostFormValue(name)
	return p, len(p) <= maxPIN
}

// cardEnrol completes an invited operator's enrolment with the presented
// certificate and a new PIN that meets the policy.
func (c *Console) cardEnrol(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	show := func(status int, m string) {
		c.render(w, r, nil, status, "enrol", "enrol.title", map[string]any{"Card": true, "Error": m})
	}
	if !c.cfg.CardLogin {
		show(http.StatusNotFound, msg(lang, "err.notfound"))
		return
	}
	if err := parseForm(r); err != nil {
		show(http.StatusBadRequest, msg(lang, "err.request"))
		return
	}
	cert := peerCert(r)
	if cert == nil {
		show(http.StatusForbidden, msg(lang, "err.nocard"))
		return
	}
	id, code := r.PostFormValue("operator"), r.PostFormValue("code")
	pin, ok1 := formPIN(r, "pin")
	pin2, ok2 := formPIN(r, "pin2")
	if !ok1 || !ok2 || pin != pin2 {
		show(http.StatusBadRequest, msg(lang, "err.pinmatch"))
		return
	}
	if err := c.cfg.Operators.CheckEnrolmentCode(r.Context(), id, code); err != nil {
		locked := errors.Is(err, operator.ErrLocked)
		c.audit(r, safeObject(id), "enrol.failure", "console", audit.ResultDenied, "wrong or expired enrolment code (smart card)")
		c.alertFailure(r, safeObject(id), locked)
		show(http.StatusForbidden, c.failMsg(lang, locked))
		return
	}
	if err := c.cfg.Operators.SetPIN(r.Context(), id, pin); err != nil {
		show(http.StatusBadRequest, pinText(lang, err))
		return
	}
	if err := c.cfg.Operators.RegisterCertificate(r.Context(), id, certHash(cert)); err != nil {
		show(http.StatusConflict, msg(lang, "err.state"))
		return
	}
	c.audit(r, id, "enrol.register", id, audit.ResultOK, "smart card certificate registered")
	next := "/enrol/done"
	if activated, err := c.bootstrap(r.Context(), id); err == nil && activated {
		c.audit(r, SystemActor, "operator.bootstrap", id, audit.ResultOK, "first administrator activated")
		next = "/login"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// pinText explains a refused PIN without repeating it.
func pinText(lang string, err error) string {
	var pe *operator.PINError
	switch {
	case errors.As(err, &pe):
		return msg(lang, "err.pinpolicy") + " (" + pe.Reason + ")"
	case errors.Is(err, operator.ErrPINReused):
		return msg(lang, "err.pinreused")
	}
	return msg(lang, "err.state")
}

// cardLogin signs in (or re-authenticates the session of) the operator
// bound to the presented certificate, with the PIN.
func (c *Console) cardLogin(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	show := func(status int, m string) {
		c.render(w, r, nil, status, "login", "login.title", map[string]any{"Mode": "login", "Card": c.cfg.CardLogin, "Error": m})
	}
	if !c.cfg.CardLogin {
		show(http.StatusNotFound, msg(lang, "err.notfound"))
		return
	}
	if err := parseForm(r); err != nil {
		show(http.StatusBadRequest, msg(lang, "err.request"))
		return
	}
	cert := peerCert(r)
	if cert == nil {
		show(http.StatusForbidden, msg(lang, "err.nocard"))
		return
	}
	op, err := c.cfg.Operators.ByCertificate(r.Context(), certHash(cert))
	if err != nil {
		c.audit(r, "anonymous", "auth.failure", "console", audit.ResultDenied, "certificate bound to no operator")
		show(http.StatusForbidden, msg(lang, "err.signin"))
		return
	}
	if err := c.cfg.Operators.CanSignIn(r.Context(), op.ID); err != nil {
		m := msg(lang, "err.signin")
		if errors.Is(err, operator.ErrLocked) {
			m = msg(lang, "err.locked")
		}
		c.audit(r, op.ID, "auth.failure", "console", audit.ResultDenied, "operator cannot sign in")
		show(http.StatusForbidden, m)
		return
	}
	pin, ok := formPIN(r, "pin")
	if !ok {
		show(http.StatusBadRequest, msg(lang, "err.request"))
		return
	}
	switch err := c.cfg.Operators.CheckPIN(r.Context(), op.ID, pin); {
	case errors.Is(err, operator.ErrPINExpired):
		c.audit(r, op.ID, "auth.pin-expired", "console", audit.ResultDenied, "PIN expired; a new one is required")
		c.render(w, r, nil, http.StatusOK, "pin", "pin.title", map[string]any{"Operator": op.ID})
		return
	case err != nil:
		locked := c.failed(r, op.ID, "auth.failure", "wrong PIN (smart card)")
		show(http.StatusForbidden, c.failMsg(lang, locked))
		return
	}
	_ = c.cfg.Operators.RecordSuccess(r.Context(), op.ID)
	if s, sop, ok := c.currentSession(r); ok && sop.ID == op.ID {
		if err := c.cfg.Operators.Reauthenticated(r.Context(), s.token); err == nil {
			c.audit(r, op.ID, "auth.reauth", "console", audit.ResultOK, "smart card and PIN")
			http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
			return
		}
	}
	c.startSession(w, r, op.ID, "smart card and PIN")
}

// cardPIN replaces an expired PIN: the current PIN, then a new one that
// meets the policy; then the operator is signed in.
func (c *Console) cardPIN(w http.ResponseWriter, r *http.Request) {
	lang := c.lang(r)
	if !c.cfg.CardLogin {
		c.fail(w, r, nil, http.StatusNotFound, "err.notfound")
		return
	}
	if err := parseForm(r); err != nil {
		c.fail(w, r, nil, http.StatusBadRequest, "err.request")
		return
	}
	cert := peerCert(r)
	if cert == nil {
		c.fail(w, r, nil, http.StatusForbidden, "err.nocard")
		return
	}
	op, err := c.cfg.Operators.ByCertificate(r.Context(), certHash(cert))
	if err == nil {
		err = c.cfg.Operators.CanSignIn(r.Context(), op.ID)
	}
	if err != nil {
		c.fail(w, r, nil, http.StatusForbidden, "err.signin")
		return
	}
	show := func(status int, m string) {
		c.render(w, r, nil, status, "pin", "pin.title", map[string]any{"Operator": op.ID, "Error": m})
	}
	cur, ok1 := formPIN(r, "pin")
	next, ok2 := formPIN(r, "new")
	next2, ok3 := formPIN(r, "new2")
	if !ok1 || !ok2 || !ok3 || next != next2 {
		show(http.StatusBadRequest, msg(lang, "err.pinmatch"))
		return
	}
	if err := c.cfg.Operators.CheckPIN(r.Context(), op.ID, cur); err != nil && !errors.Is(err, operator.ErrPINExpired) {
		locked := c.failed(r, op.ID, "auth.failure", "wrong PIN at PIN change")
		show(http.StatusForbidden, c.failMsg(lang, locked))
		return
	}
	if err := c.cfg.Operators.SetPIN(r.Context(), op.ID, next); err != nil {
		show(http.StatusBadRequest, pinText(lang, err))
		return
	}
	_ = c.cfg.Operators.RecordSuccess(r.Context(), op.ID)
	c.audit(r, op.ID, "auth.pin-change", "console", audit.ResultOK, "")
	c.startSession(w, r, op.ID, "smart card and new PIN")
}

// startSession opens a session for id and goes to the dashboard.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, id, how string) {
	s, err := c.cfg.Operators.NewSession(r.Context(), id, remote(r))
	if err != nil {
		c.fail(w, r, nil, http.StatusInternalServerError, "err.internal")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.ID, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.audit(r, id, "auth.success", "console", audit.ResultOK, how)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
