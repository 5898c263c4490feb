package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/standard"
)

// AttestationStore keeps the dated attestations of the standard's
// organisational items (training, building access, contracts …) that the
// self-check (第4 11) counts; standard.FileAttestations is one.
type AttestationStore interface {
	Add(a standard.Attestation) error
	Current(id string, now time.Time) (standard.Attestation, bool)
}

type attestRow struct {
	Item    standard.Item
	Current *standard.Attestation
}

// attestations lists the organisational items with the attestation in
// force for each.
func (c *Console) attestations(w http.ResponseWriter, r *http.Request, wh *who) {
	c.attestationsWith(w, r, wh, http.StatusOK, "")
}

func (c *Console) attestationsWith(w http.ResponseWriter, r *http.Request, wh *who, status int, flash string) {
	if c.cfg.Attestations == nil {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	var rows []attestRow
	for _, it := range standard.Catalogue() {
		if it.Kind != standard.AttestationKind {
			continue
		}
		row := attestRow{Item: it}
		if a, ok := c.cfg.Attestations.Current(it.ID, c.now()); ok {
			row.Current = &a
		}
		rows = append(rows, row)
	}
	c.render(w, r, wh, status, "attestations", "att.title", map[string]any{"Rows": rows, "CanAttest": can(wh.op.Role, capApprove), "Flash": flash})
}

// attest records an operator's attestation of one item.
func (c *Console) attest(w http.ResponseWriter, r *http.Request, wh *who) {
	if c.cfg.Attestations == nil {
		c.fail(w, r, wh, http.StatusNotFound, "err.notfound")
		return
	}
	days, err := strconv.Atoi(r.PostFormValue("days"))
	if err != nil || days < 1 || days > 3*365 {
		c.attestationsWith(w, r, wh, http.StatusBadRequest, msg(wh.lang, "att.days"))
		return
	}
	now := c.now().UTC()
	a := standard.Attestation{Item: r.PostFormValue("item"), AttestedBy: wh.op.ID, Statement: strings.TrimSpace(r.PostFormValue("statement")),
		Date: now, Expires: now.AddDate(0, 0, days)}
	if err := c.cfg.Attestations.Add(a); err != nil {
		c.audit(r, wh.op.ID, "attestation.add", safeObject(a.Item), audit.ResultDenied, trimDetail(errText(err)))
		c.attestationsWith(w, r, wh, http.StatusBadRequest, errText(err))
		return
	}
	c.audit(r, wh.op.ID, "attestation.add", a.Item, audit.ResultOK, "until "+a.Expires.Format(time.DateOnly)+": "+trimDetail(a.Statement))
	http.Redirect(w, r, "/attestations", http.StatusSeeOther)
}
