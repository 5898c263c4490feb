package directory

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Hold is an incident measure (第2 4(1)(2)): notifications it matches are
// not accepted (senders are told to retry later and keep them in their
// outboxes) and what is already queued is kept, not delivered, until the
// hold is lifted in a later directory version. Suspending one participant
// is Participant.Suspended.
type Hold struct {
	ID string `json:"id"` // [a-z0-9-]{1,64}, unique
	// Scope is "network" (everything), "route" (From → To; either may be
	// empty for any) or "type" (one notification type).
	Scope  string    `json:"scope"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Type   string    `json:"type,omitempty"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Bulletin is a notice to participants' consoles (第2 4(1)): incidents,
// measures, root causes. Audience lists participant IDs, or "*" for all.
type Bulletin struct {
	ID       string    `json:"id"` // [a-z0-9-]{1,64}, unique
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"` // info, warning or critical
	Title    string    `json:"title"`
	Body     string    `json:"body"`
	Audience []string  `json:"audience"`
}

// Limits of holds and bulletins.
const (
	MaxHolds     = 100
	MaxBulletins = 200
	maxTitle     = 200
	maxBody      = 4000
)

// HeldBy returns the first hold that matches a notification of type typ
// from → to, or nil.
func (d *Directory) HeldBy(from, to, typ string) *Hold {
	for i := range d.Holds {
		h := &d.Holds[i]
		switch h.Scope {
		case "network":
			return h
		case "route":
			if (h.From == "" || h.From == from) && (h.To == "" || h.To == to) {
				return h
			}
		case "type":
			if h.Type == typ {
				return h
			}
		}
	}
	return nil
}

// BulletinsFor returns the bulletins addressed to any of ids or to all,
// newest first.
func (d *Directory) BulletinsFor(ids []string) []Bulletin {
	var out []Bulletin
	for _, b := range d.Bulletins {
		if slices.Contains(b.Audience, "*") || slices.ContainsFunc(b.Audience, func(a string) bool { return slices.Contains(ids, a) }) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Bulletin) int { return b.Time.Compare(a.Time) })
	return out
}

func printable(s string, max int, multiline bool) bool {
	if !utf8.ValidString(s) || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 && !(multiline && (r == '\n' || r == '\t')) || r == 0x7f {
			return false
		}
	}
	return true
}

func (d *Directory) validateIncidents() error {
	if len(d.Holds) > MaxHolds || len(d.Bulletins) > MaxBulletins {
		return invalid("at most %d holds and %d bulletins", MaxHolds, MaxBulletins)
	}
	ids := map[string]bool{}
	for i, h := range d.Holds {
		if !idRe.MatchString(h.ID) || ids["h:"+h.ID] {
			return invalid("holds[%d].id %q: expected a unique [a-z0-9-]{1,64}", i, h.ID)
		}
		ids["h:"+h.ID] = true
		switch h.Scope {
		case "network":
			if h.From != "" || h.To != "" || h.Type != "" {
				return invalid("holds[%d]: a network hold names no route or type", i)
			}
		case "route":
			if h.From == "" && h.To == "" {
				return invalid("holds[%d]: a route hold names a sender, a recipient or both", i)
			}
			for _, p := range []string{h.From, h.To} {
				if _, ok := d.participants[p]; p != "" && !ok {
					return invalid("holds[%d]: %q is not a participant", i, p)
				}
			}
		case "type":
			if _, ok := d.types[h.Type]; !ok {
				return invalid("holds[%d]: type %q is not defined", i, h.Type)
			}
		default:
			return invalid("holds[%d].scope %q: expected network, route or type", i, h.Scope)
		}
		if strings.TrimSpace(h.Reason) == "" || !printable(h.Reason, maxTitle, false) || h.Since.IsZero() {
			return invalid("holds[%d]: a reason (printable, at most %d bytes) and a since time are required", i, maxTitle)
		}
	}
	for i, b := range d.Bulletins {
		if !idRe.MatchString(b.ID) || ids["b:"+b.ID] {
			return invalid("bulletins[%d].id %q: expected a unique [a-z0-9-]{1,64}", i, b.ID)
		}
		ids["b:"+b.ID] = true
		if !slices.Contains([]string{"info", "warning", "critical"}, b.Severity) {
			return invalid("bulletins[%d].severity %q: expected info, warning or critical", i, b.Severity)
		}
		if strings.TrimSpace(b.Title) == "" || !printable(b.Title, maxTitle, false) || !printable(b.Body, maxBody, true) || b.Time.IsZero() {
			return invalid("bulletins[%d]: a title (at most %d bytes), a printable body (at most %d) and a time are required", i, maxTitle, maxBody)
		}
		if len(b.Audience) == 0 {
			return invalid("bulletins[%d].audience: empty", i)
		}
		for _, a := range b.Audience {
			if _, ok := d.participants[a]; a != "*" && !ok {
				return invalid("bulletins[%d].audience: %q is not a participant", i, a)
			}
		}
	}
	return nil
}
