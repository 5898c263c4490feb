package selfcheck

import (
	"context"
	"fmt"
	"strings"
	"taxlink/internal/standard"
	"time"
)

// Status is the result of an item.
type Status string

// The results of an item: an automated item passes or fails; an
// attestation item is attested or unattested.
const (
	StatusPass       Status = "pass"
	StatusFail       Status = "fail"
	StatusAttested   Status = "attested"
	StatusUnattested Status = "unattested"
)

// CheckResult is the outcome of one check of an automated item.
type CheckResult struct {
	// Name is the check's name (see CheckNames).
	Name string `json:"name"`
	// Pass says whether the check passed.
	Pass bool `json:"pass"`
	// Reason says why, on one line, without secrets or personal data.
	Reason string `json:"reason"`
}

// ItemResult is the result of one item.
type ItemResult struct {
	// ID, Title and Kind are the item's, as in the catalogue.
	ID    string        `json:"id"`
	Title string        `json:"title"` // see ID
	Kind  standard.Kind `json:"kind"`  // see ID
	// Status is StatusPass or StatusFail for an automated item,
	// StatusAttested or StatusUnattested for an attestation item.
	Status Status `json:"status"`
	// Reason says why, on one line, without secrets or personal data.
	Reason string `json:"reason"`
	// Checks are the outcomes of an automated item's checks.
	Checks []CheckResult `json:"checks,omitempty"`
	// Attestation is the attestation in force (attested items only).
	Attestation *standard.Attestation `json:"attestation,omitempty"`
}

// Summary counts results. Items = Pass + Fail + Attested + Unattested.
type Summary struct {
	Items      int `json:"items"`      // items counted
	Pass       int `json:"pass"`       // automated items that passed
	Fail       int `json:"fail"`       // automated items that failed
	Attested   int `json:"attested"`   // attestation items in force
	Unattested int `json:"unattested"` // attestation items without one
}

func (s *Summary) add(st Status) {
	s.Items++
	switch st {
	case StatusPass:
		s.Pass++
	case StatusFail:
		s.Fail++
	case StatusAttested:
		s.Attested++
	case StatusUnattested:
		s.Unattested++
	}
}

// Report is the self-check of one hub or node.
type Report struct {
	// Config is the configuration file checked.
	Config string `json:"config"`
	// Role is "hub" or "node".
	Role string `json:"role"`
	// Participant is the process's participant ID.
	Participant string `json:"participant"`
	// Environment is production, test or dev.
	Environment string `json:"environment"`
	// Time is the time of the check (Env.Now).
	Time time.Time `json:"time"`
	// Running says whether the process answered on its service listener
	// (live probes made).
	Running bool `json:"running"`
	// Items are the results, in the catalogue's order.
	Items []ItemResult `json:"items"`
	// Summary counts Items.
	Summary Summary `json:"summary"`
}

// Run evaluates every item of the catalogue against e, in the
// catalogue's order. Each check runs once however many items use it.
func Run(ctx context.Context, e *Env) *Report {
	r := &runState{env: e}
	done := map[string]finding{}
	runCheck := func(name string) finding {
		if f, ok := done[name]; ok {
			return f
		}
		fn, ok := checkFuncs[name]
		var f finding
		if !ok {
			f = fail("internal error: no check named %s", name)
		} else {
			f = safe(ctx, r, fn)
		}
		f.reason = oneLine(f.reason)
		done[name] = f
		return f
	}
	rep := &Report{Config: e.ConfigPath, Role: e.Role, Participant: e.Common.ID, Environment: e.Common.Environment, Time: e.Now.UTC()}
	for _, it := range standard.Catalogue() {
		res := ItemResult{ID: it.ID, Title: it.Title, Kind: it.Kind}
		switch it.Kind {
		case standard.Automated:
			res.Status = StatusPass
			var failed, all []string
			for _, name := range it.Checks {
				f := runCheck(name)
				res.Checks = append(res.Checks, CheckResult{Name: name, Pass: f.ok, Reason: f.reason})
				all = append(all, name+": "+f.reason)
				if !f.ok {
					res.Status = StatusFail
					failed = append(failed, name+": "+f.reason)
				}
			}
			if len(failed) > 0 {
				res.Reason = strings.Join(failed, "; ")
			} else {
				res.Reason = strings.Join(all, "; ")
			}
		default:
			res.Status, res.Reason, res.Attestation = attestationStatus(e, it.ID)
		}
		rep.Items = append(rep.Items, res)
		rep.Summary.add(res.Status)
	}
	rep.Running = r.running(ctx)
	return rep
}

// safe runs a check, turning a panic into a failure of that check alone.
func safe(ctx context.Context, r *runState, fn checkFunc) (f finding) {
	defer func() {
		if p := recover(); p != nil {
			f = fail("internal error in the check: %v", p)
		}
	}()
	return fn(ctx, r)
}

// attestationStatus says whether item id is attested in e at e.Now.
func attestationStatus(e *Env, id string) (Status, string, *standard.Attestation) {
	if e.Attestations == nil {
		return StatusUnattested, "no attestation store", nil
	}
	if a, ok := e.Attestations.Current(id, e.Now); ok {
		return StatusAttested, oneLine(fmt.Sprintf("attested by %s on %s, in force until %s: %s",
			a.AttestedBy, a.Date.UTC().Format(time.DateOnly), a.Expires.UTC().Format(time.DateOnly), a.Statement)), &a
	}
	if a, ok := standard.LastOf(e.Attestations, id); ok {
		if a.Date.After(e.Now) {
			return StatusUnattested, fmt.Sprintf("the attestation by %s is dated %s, in the future", a.AttestedBy, a.Date.UTC().Format(time.DateOnly)), nil
		}
		return StatusUnattested, fmt.Sprintf("the attestation by %s of %s expired on %s", a.AttestedBy, a.Date.UTC().Format(time.DateOnly), a.Expires.UTC().Format(time.DateOnly)), nil
	}
	return StatusUnattested, "no attestation recorded", nil
}

// Combine counts the items of several reports (the processes of one
// network) as one: an automated item fails when it fails in any report,
// and an attestation item is attested only when it is attested in every
// report. Items is the catalogue's size.
func Combine(reports []*Report) Summary {
	var s Summary
	if len(reports) == 0 {
		return s
	}
	for i, it := range standard.Catalogue() {
		st := StatusPass
		if it.Kind == standard.AttestationKind {
			st = StatusAttested
		}
		for _, r := range reports {
			if i >= len(r.Items) {
				continue
			}
			switch r.Items[i].Status {
			case StatusFail:
				st = StatusFail
			case StatusUnattested:
				st = StatusUnattested
			}
		}
		s.add(st)
	}
	return s
}
