package console

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"

	"taxlink/internal/audit"
	"taxlink/internal/operator"
)

// sess is a signed-in session with the browser's token.
type sess struct {
	operator.Session
	token string
}

// who is the signed-in operator a page serves.
type who struct {
	s    sess
	op   operator.Operator
	lang string
}

// currentSession returns the request's live session and its operator. A
// session past its absolute lifetime, or of an operator who may no longer
// sign in (locked, disabled), is ended here.
func (c *Console) currentSession(r *http.Request) (sess, operator.Operator, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return sess{}, operator.Operator{}, false
	}
	s, err := c.cfg.Operators.Session(r.Context(), ck.Value)
	if err != nil {
		return sess{}, operator.Operator{}, false
	}
	if c.now().Sub(s.Created) > c.cfg.Lifetime {
		_ = c.cfg.Operators.EndSession(r.Context(), ck.Value)
		c.audit(r, s.Operator, "session.expire", "console", audit.ResultOK, "absolute lifetime reached")
		return sess{}, operator.Operator{}, false
	}
	op, err := c.cfg.Operators.Get(r.Context(), s.Operator)
	if err != nil {
		return sess{}, operator.Operator{}, false
	}
	if op.State != operator.StateActive {
		_ = c.cfg.Operators.EndSession(r.Context(), ck.Value)
		return sess{}, operator.Operator{}, false
	}
	return sess{Session: s, token: ck.Value}, op, true
}

// idle reports whether s must re-authenticate before it goes on.
func (c *Console) idle(s sess) bool {
	return c.now().Sub(s.LastSeen) > c.cfg.Idle
}

// page wraps a handler that needs a signed-in, recently active operator
// with capability need; a state-changing request must carry the session's
// CSRF token.
func (c *Console) page(need capability, h func(http.ResponseWriter, *http.Request, *who)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, op, ok := c.currentSession(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "sign-in required", http.StatusUnauthorized)
			return
		}
		if c.idle(s) {
			c.audit(r, op.ID, "session.idle", "console", audit.ResultOK, "re-authentication required")
			next := "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/reauth?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		wh := &who{s: s, op: op, lang: c.lang(r)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := parseForm(r); err != nil {
				c.fail(w, r, wh, http.StatusBadRequest, "err.request")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
				c.audit(r, op.ID, "console.csrf", r.URL.Path, audit.ResultDenied, "missing or wrong CSRF token")
				c.fail(w, r, wh, http.StatusForbidden, "err.csrf")
				return
			}
		}
		if !can(op.Role, need) {
			c.audit(r, op.ID, "console.denied", r.URL.Path, audit.ResultDenied, "role "+string(op.Role)+" lacks the permission")
			c.fail(w, r, wh, http.StatusForbidden, "err.forbidden")
			return
		}
		if err := c.cfg.Operators.Touch(r.Context(), s.token); err != nil {
			c.log.Error("console: session touch", "err", err)
			c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
			return
		}
		h(w, r, wh)
	}
}

// parseForm parses a url-encoded or multipart form within the body limit.
func parseForm(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); len(ct) >= 19 && ct[:19] == "multipart/form-data" {
		return r.ParseMultipartForm(maxUpload)
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	if r.PostForm == nil {
		return errors.New("no form")
	}
	return nil
}

// logout ends this session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, wh *who) {
	_ = c.cfg.Operators.EndSession(r.Context(), wh.s.token)
	c.audit(r, wh.op.ID, "auth.signout", "console", audit.ResultOK, "")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// logoutAll ends every session of the operator (sign out everywhere).
func (c *Console) logoutAll(w http.ResponseWriter, r *http.Request, wh *who) {
	n, _ := c.cfg.Operators.EndAllSessions(r.Context(), wh.op.ID)
	c.audit(r, wh.op.ID, "auth.signout-all", "console", audit.ResultOK, itoa(n)+" sessions ended")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
