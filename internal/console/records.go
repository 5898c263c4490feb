package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"taxlink/internal/audit"
	"taxlink/internal/searchindex"
	"taxlink/internal/store"
)

// maxView bounds the part of a document the viewer shows as text.
const maxView = 2 << 20

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type recordsData struct {
	Tenants, Types []string
	Form           map[string]string
	Entries        []searchindex.Entry
	Total          int
	Searched       bool
	Flash          string
}

// records is the data users' search: by tenant, type, tax year, recorded
// date and taxpayer number (through the blind index), over the tenants and
// types the operator is granted only.
func (c *Console) records(w http.ResponseWriter, r *http.Request, wh *who) {
	q := r.URL.Query()
	tenants := c.grantedTenants(wh.op)
	var types []string
	for _, t := range c.cfg.Backend.Types() {
		if wh.op.Grant.AllowsType(t) {
			types = append(types, t)
		}
	}
	form := map[string]string{}
	for _, k := range []string{"tenant", "type", "year", "from", "to", "taxpayer"} {
		v := q.Get(k)
		if len(v) > 64 {
			v = v[:64]
		}
		form[k] = v
	}
	d := recordsData{Tenants: tenants, Types: types, Form: form}
	if q.Has("search") {
		d.Searched = true
		sq := searchindex.Query{Tenants: tenants, Types: types, Limit: 100}
		if t := form["tenant"]; t != "" {
			if !wh.op.Grant.AllowsTenant(t) {
				sq.Tenants = nil
			} else {
				sq.Tenants = []string{t}
			}
		}
		sq.Type = form["type"]
		if y, err := strconv.Atoi(form["year"]); err == nil {
			sq.TaxYear = y
		}
		if t, err := time.ParseInLocation("2006-01-02", form["from"], jst); err == nil {
			sq.From = t
		}
		if t, err := time.ParseInLocation("2006-01-02", form["to"], jst); err == nil {
			sq.To = t.AddDate(0, 0, 1)
		}
		sq.Taxpayer = form["taxpayer"]
		if len(sq.Tenants) > 0 {
			var err error
			d.Entries, d.Total, err = c.cfg.Records.Search(r.Context(), sq)
			if err != nil {
				if errors.Is(err, searchindex.ErrInvalid) {
					d.Flash = errText(err)
				} else {
					c.log.Warn("console: search", "err", err)
					d.Flash = msg(wh.lang, "err.internal")
				}
			}
		}
		detail := "by"
		for _, k := range []string{"tenant", "type", "year", "from", "to"} {
			if form[k] != "" {
				detail += " " + k + "=" + safeObject(form[k])
			}
		}
		if form["taxpayer"] != "" {
			detail += " taxpayer=(blind)"
		}
		c.audit(r, wh.op.ID, "record.search", firstOr(sq.Tenants, "none"), audit.ResultOK, detail+"; "+itoa(d.Total)+" found")
	}
	c.render(w, r, wh, http.StatusOK, "records", "rec.title", d)
}

func firstOr(xs []string, def string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	if len(xs) > 1 {
		return strconv.Itoa(len(xs)) + " tenants"
	}
	return def
}

// openRecord opens a record the operator is granted, or answers not found
// for anything else, so that another tenant's records cannot even be
// confirmed to exist.
func (c *Console) openRecord(w http.ResponseWriter, r *http.Request, wh *who, action string) (io.ReadCloser, Opened, bool) {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	object := safeObject(tenant) + " " + safeObject(id)
	if !wh.op.Grant.AllowsTenant(tenant) || !slicesContains(c.cfg.Backend.Tenants(), tenant) {
		c.audit(r, wh.op.ID, action, object, audit.ResultDenied, "tenant not granted")
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return nil, Opened{}, false
	}
	rc, o, err := c.cfg.Records.Open(r.Context(), wh.op.ID, remote(r), tenant, id)
	switch {
	case errors.Is(err, ErrQuarantined):
		c.audit(r, wh.op.ID, action, object, audit.ResultDenied, "quarantined by the malware check")
		c.fail(w, r, wh, http.StatusForbidden, "err.quarantined")
		return nil, Opened{}, false
	case errors.Is(err, ErrScanPending):
		c.audit(r, wh.op.ID, action, object, audit.ResultDenied, "malware check pending")
		c.fail(w, r, wh, http.StatusConflict, "err.scanpending")
		return nil, Opened{}, false
	}
	if err != nil {
		res := audit.ResultError
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			res = audit.ResultDenied
		}
		c.audit(r, wh.op.ID, action, object, res, "not opened")
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return nil, Opened{}, false
	}
	if !wh.op.Grant.AllowsType(o.Type) {
		rc.Close()
		c.audit(r, wh.op.ID, action, object, audit.ResultDenied, "type not granted")
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return nil, Opened{}, false
	}
	c.audit(r, wh.op.ID, action, object, audit.ResultOK, o.Type)
	return rc, o, true
}

func slicesContains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

type recordData struct {
	Tenant, ID string
	Opened     Opened
	Text       string
	Truncated  bool
	Binary     bool
	Watermark  string
	Print      bool
}

func (c *Console) showRecord(w http.ResponseWriter, r *http.Request, wh *who, action string, print bool) {
	rc, o, ok := c.openRecord(w, r, wh, action)
	if !ok {
		return
	}
	defer rc.Close()
	d := recordData{Tenant: r.PathValue("tenant"), ID: r.PathValue("id"), Opened: o, Print: print,
		Watermark: wh.op.Name + " (" + wh.op.ID + ") " + c.now().In(jst).Format("2006-01-02 15:04:05 JST")}
	if strings.HasSuffix(o.ContentType, "xml") || strings.HasPrefix(o.ContentType, "text/") {
		b, err := io.ReadAll(io.LimitReader(rc, maxView+1))
		if err != nil {
			c.fail(w, r, wh, http.StatusInternalServerError, "err.internal")
			return
		}
		d.Truncated = len(b) > maxView
		if d.Truncated {
			b = b[:maxView]
		}
		if utf8.Valid(b) {
			d.Text = string(b)
		} else {
			d.Binary = true
		}
	} else {
		d.Binary = true
	}
	name := "record"
	if print {
		name = "print"
	}
	c.render(w, r, wh, http.StatusOK, name, "rec.title", d)
}

func (c *Console) record(w http.ResponseWriter, r *http.Request, wh *who) {
	c.showRecord(w, r, wh, "record.view", false)
}

func (c *Console) print(w http.ResponseWriter, r *http.Request, wh *who) {
	c.showRecord(w, r, wh, "record.print", true)
}

// download sends the document itself, as an attachment never rendered by
// the console's origin.
func (c *Console) download(w http.ResponseWriter, r *http.Request, wh *who) {
	rc, o, ok := c.openRecord(w, r, wh, "record.download")
	if !ok {
		return
	}
	defer rc.Close()
	ext := ".bin"
	switch {
	case strings.HasSuffix(o.ContentType, "xml"):
		ext = ".xml"
	case o.ContentType == "application/pdf":
		ext = ".pdf"
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+fileSafe(r.PathValue("id"))+ext+`"`)
	w.Header().Set("Content-Length", strconv.FormatInt(o.Size, 10))
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	_, _ = io.Copy(w, rc)
}

// fileSafe keeps the letters and digits of s (an envelope ID) for a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s)
}
