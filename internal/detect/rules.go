package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Rule names: the Rule of the alerts the built-in rules raise. Each is a
// valid operator alert kind (dot-separated segments of [a-z][a-z0-9-]*).
const (
	RuleHandshakeFailures = "detect.handshake-failures" // burst of refused TLS handshakes (subject "tls")
	RuleSignInFailures    = "detect.signin-failures"    // burst of console sign-in failures (subject: address or operator)
	RuleUnknownPeer       = "detect.unknown-peer"       // handshake refused: identity not in the directory (subject: identity or address)
	RuleOffHours          = "detect.off-hours"          // record access outside business hours (subject: operator)
	RuleManyTenants       = "detect.many-tenants"       // one operator reading many tenants' records (subject: operator)
	RuleVolumeSpike       = "detect.volume-spike"       // traffic far above its baseline (subject: "accepted" or "recorded")
	RuleVolumeDrop        = "detect.volume-drop"        // traffic far below its baseline in business hours (subject as above)
	RuleDegradation       = "detect.degradation"        // p99 accept latency far above its baseline (subject "accept")
	RuleBacklog           = "detect.backlog"            // oldest waiting message too old (subject: recipient)
	RuleFailingRecipient  = "detect.failing-recipient"  // delivery failures growing sample after sample (subject: recipient)
	RuleSlowDisk          = "detect.slow-disk"          // fsync p99 above a threshold, sustained (subject "disk")
	RuleMalware           = "detect.malware"            // a stored payload was found infected (subject: tenant)
)

// Audit actions the rules recognise, besides the configurable action
// lists of OffHours and ManyTenants and the Events rules.
const (
	// ActionAuthFailure is a refused authentication. With Object
	// "console" it is a console sign-in failure (Actor: the operator, or
	// "anonymous"); with any other Object it is a refused TLS handshake on
	// the service listener (Actor "unknown", From the peer's address,
	// Detail the reason).
	ActionAuthFailure = "auth.failure"
	// ActionEnrolFailure is a refused console enrolment; it counts as a
	// sign-in failure.
	ActionEnrolFailure = "enrol.failure"
	// ActionHandshakeFailure is a refused TLS handshake recorded under
	// its own action; it counts like an auth.failure off the console.
	ActionHandshakeFailure = "tls.handshake-failure"
	// ActionUnknownPeer is a handshake refused because the peer's
	// identity is not in the directory, recorded under its own action
	// (Actor: the identity). Handshake failures whose Detail reads like
	// the directory check's refusal count too (see Rules.UnknownPeer).
	ActionUnknownPeer = "auth.unknown-peer"
	// ActionScanInfected is a payload the malware check quarantined
	// (Object "<tenant> <id>").
	ActionScanInfected = "scan.infected"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "90s", "10m" or "1h".
type Duration time.Duration

// MarshalJSON writes d as a duration string ("10m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a non-negative duration string ("10m"); anything
// else is an error.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("detect: duration: expected a string such as \"10m\", got %s", clip(string(b), 40))
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("detect: duration %q: expected a non-negative duration such as \"10m\"", clip(s, 40))
	}
	*d = Duration(v)
	return nil
}

// Burst raises an alert when at least Warning (or Critical) matching
// events fall within any sliding Window. A zero Warning and Critical
// disable the rule; a zero Critical means warnings only.
type Burst struct {
	Window   Duration `json:"window"`
	Warning  int      `json:"warning"`
	Critical int      `json:"critical"`
}

func (b Burst) enabled() bool { return b.Warning > 0 || b.Critical > 0 }

// Hours defines business hours: from Start to End ("HH:MM", End
// exclusive; End before Start spans midnight) in the fixed UTC offset
// Zone ("+09:00"), Monday to Friday when WeekendsOff, except the dates
// of Holidays ("2006-01-02", in Zone).
type Hours struct {
	Start       string   `json:"start"`
	End         string   `json:"end"`
	Zone        string   `json:"zone"`
	WeekendsOff bool     `json:"weekends_off"`
	Holidays    []string `json:"holidays,omitempty"`
}

// OffHours raises a warning for each operator who performs one of Actions
// outside Rules.BusinessHours (whatever the result: a refused attempt at
// night is as telling as a granted one).
type OffHours struct {
	Enabled bool     `json:"enabled"`
	Actions []string `json:"actions"`
}

// ManyTenants raises a critical alert when one operator performs Actions
// on records (Object "<tenant> <id>") of at least Tenants distinct
// tenants within a sliding Window, whatever the results. A zero Tenants
// disables it.
type ManyTenants struct {
	Tenants int      `json:"tenants"`
	Window  Duration `json:"window"`
	Actions []string `json:"actions"`
}

// Volume compares the per-minute rates of the Accepted and Recorded
// counters of each Sample with their baseline, an exponentially weighted
// mean of the previous rates (weight Alpha for the newest; every sample
// enters it, so a lasting change of level stops alerting after a while).
// Once Warmup rates have been seen and the baseline is at least
// MinBaseline per minute, a rate above Factor × baseline is a volume
// spike (warning), and a rate below baseline / Factor within business
// hours a volume drop (warning). A zero Factor disables it.
type Volume struct {
	Factor      float64 `json:"factor"`
	MinBaseline float64 `json:"min_baseline"`
	Alpha       float64 `json:"alpha"`
	Warmup      int     `json:"warmup"`
}

// Degradation compares Sample.P99AcceptMS with its baseline (an
// exponentially weighted mean, weight Alpha, of the normal samples only):
// once Warmup samples have been seen, Sustain consecutive samples above
// both Factor × baseline and MinMS raise a warning. Samples without a
// figure (zero) are ignored. A zero Factor disables it.
type Degradation struct {
	Factor  float64 `json:"factor"`
	MinMS   float64 `json:"min_ms"`
	Sustain int     `json:"sustain"`
	Alpha   float64 `json:"alpha"`
	Warmup  int     `json:"warmup"`
}

// BacklogRule watches each recipient's queue: the oldest message waiting
// longer than Warning is a warning, longer than Critical critical (zero
// disables either); delivery failures (Sample.DeliveryFailures, a counter)
// growing in each of FailingSamples consecutive samples is a warning
// "failing recipient" (zero disables it).
type BacklogRule struct {
	Warning        Duration `json:"warning"`
	Critical       Duration `json:"critical"`
	FailingSamples int      `json:"failing_samples"`
}

// SlowDisk raises a warning when Sample.FsyncP99MS is above ThresholdMS in
// Sustain consecutive samples. A zero ThresholdMS disables it.
type SlowDisk struct {
	ThresholdMS float64 `json:"threshold_ms"`
	Sustain     int     `json:"sustain"`
}

// EventRule raises an alert of Severity named Rule for every audit event
// of Action (and, if set, Result). Its subject is the event's Object, or
// its Actor when the Object is empty.
type EventRule struct {
	Action   string `json:"action"`
	Result   string `json:"result,omitempty"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
}

// Rules configures the built-in detections. DefaultRules gives the
// defaults; a configuration is usually DefaultRules with a JSON document
// unmarshalled over it. Zero thresholds disable the rule concerned.
type Rules struct {
	// BusinessHours is when people work; OffHours and the volume drop use it.
	BusinessHours Hours `json:"business_hours"`
	// HandshakeFailures counts refused TLS handshakes (auth.failure off
	// the console, tls.handshake-failure) over the whole process: subject "tls".
	HandshakeFailures Burst `json:"handshake_failures"`
	// SignInFailures counts console sign-in failures (auth.failure with
	// Object "console", enrol.failure) per source address (port dropped)
	// and per operator; the subject is the address or the operator ID.
	SignInFailures Burst `json:"signin_failures"`
	// UnknownPeer raises a warning for every handshake refused because the
	// peer is not in the directory: an auth.unknown-peer event, or a
	// handshake failure whose Detail carries the directory check's
	// refusal ("… is not a node in the directory", "only the hub … may
	// connect, not …", "directory: unknown …").
	UnknownPeer bool `json:"unknown_peer"`
	// OffHours flags record access outside business hours.
	OffHours OffHours `json:"off_hours"`
	// ManyTenants flags one operator reading many tenants' records.
	ManyTenants ManyTenants `json:"many_tenants"`
	// Volume flags unusual traffic volumes.
	Volume Volume `json:"volume"`
	// Degradation flags accept latency far above normal.
	Degradation Degradation `json:"degradation"`
	// Backlog flags old queues and failing recipients.
	Backlog BacklogRule `json:"backlog"`
	// SlowDisk flags slow fsyncs.
	SlowDisk SlowDisk `json:"slow_disk"`
	// Malware raises a critical alert for every scan.infected event
	// (subject: the tenant).
	Malware bool `json:"malware"`
	// Events raise an alert for single audit events of given actions.
	Events []EventRule `json:"events"`
}

// DefaultRecordActions are the audit actions of reading a record that
// OffHours and ManyTenants watch by default.
var DefaultRecordActions = []string{"record.view", "record.download", "record.print", "record.open"}

// DefaultRules returns the default rules (a fresh copy):
//
//   - business hours 07:00–22:00 +09:00 (JST), Monday to Friday;
//   - handshake failures: ≥ 20 in 1 min warning, ≥ 100 critical;
//   - sign-in failures: ≥ 5 in 5 min per address or operator, warning;
//   - unknown peer: on (warning);
//   - off hours: on for DefaultRecordActions (warning);
//   - many tenants: ≥ 5 distinct tenants within 1 h (critical);
//   - volume: factor 5, baseline at least 10/min, alpha 0.1, 5 samples of warm-up;
//   - degradation: factor 3, at least 20 ms, 3 samples in a row, alpha 0.1, warm-up 5;
//   - backlog: oldest > 10 min warning, > 1 h critical; failures growing over 3 samples;
//   - slow disk: fsync p99 > 50 ms in 3 samples in a row;
//   - malware: on (critical);
//   - events: ledger.inconsistent critical (detect.ledger-inconsistent),
//     directory.refuse warning (detect.directory-refused), auth.lockout
//     warning (detect.lockout).
func DefaultRules() Rules {
	return Rules{
		BusinessHours:     Hours{Start: "07:00", End: "22:00", Zone: "+09:00", WeekendsOff: true},
		HandshakeFailures: Burst{Window: Duration(time.Minute), Warning: 20, Critical: 100},
		SignInFailures:    Burst{Window: Duration(5 * time.Minute), Warning: 5},
		UnknownPeer:       true,
		OffHours:          OffHours{Enabled: true, Actions: append([]string(nil), DefaultRecordActions...)},
		ManyTenants:       ManyTenants{Tenants: 5, Window: Duration(time.Hour), Actions: append([]string(nil), DefaultRecordActions...)},
		Volume:            Volume{Factor: 5, MinBaseline: 10, Alpha: 0.1, Warmup: 5},
		Degradation:       Degradation{Factor: 3, MinMS: 20, Sustain: 3, Alpha: 0.1, Warmup: 5},
		Backlog:           BacklogRule{Warning: Duration(10 * time.Minute), Critical: Duration(time.Hour), FailingSamples: 3},
		SlowDisk:          SlowDisk{ThresholdMS: 50, Sustain: 3},
		Malware:           true,
		Events: []EventRule{
			{Action: "ledger.inconsistent", Rule: "detect.ledger-inconsistent", Severity: SeverityCritical},
			{Action: "directory.refuse", Rule: "detect.directory-refused", Severity: SeverityWarning},
			{Action: "auth.lockout", Rule: "detect.lockout", Severity: SeverityWarning},
		},
	}
}

// hours is Hours compiled.
type hours struct {
	loc         *time.Location
	start, end  int // minutes after midnight
	weekendsOff bool
	holidays    map[string]bool
}

// business reports whether t falls within business hours.
func (h *hours) business(t time.Time) bool {
	lt := t.In(h.loc)
	if h.weekendsOff && (lt.Weekday() == time.Saturday || lt.Weekday() == time.Sunday) {
		return false
	}
	if h.holidays[lt.Format(time.DateOnly)] {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	if h.start <= h.end {
		return m >= h.start && m < h.end
	}
	return m >= h.start || m < h.end
}

func parseClock(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// parseZone reads a fixed offset "+09:00" / "-05:30", or "UTC" / "Z".
func parseZone(s string) (*time.Location, bool) {
	switch s {
	case "UTC", "Z":
		return time.UTC, true
	}
	t, err := time.Parse("-07:00", s)
	if err != nil {
		return nil, false
	}
	_, off := t.Zone()
	return time.FixedZone(s, off), true
}

func (h Hours) compile() (*hours, error) {
	start, ok1 := parseClock(h.Start)
	end, ok2 := parseClock(h.End)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("business_hours: start %q, end %q: expected HH:MM", clip(h.Start, 20), clip(h.End, 20))
	}
	loc, ok := parseZone(h.Zone)
	if !ok {
		return nil, fmt.Errorf("business_hours: zone %q: expected a UTC offset such as \"+09:00\"", clip(h.Zone, 20))
	}
	c := &hours{loc: loc, start: start, end: end, weekendsOff: h.WeekendsOff, holidays: map[string]bool{}}
	for _, d := range h.Holidays {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("business_hours: holiday %q: expected YYYY-MM-DD", clip(d, 20))
		}
		c.holidays[d] = true
	}
	return c, nil
}

// validate checks r; the error names the offending field.
func (r *Rules) validate() (*hours, error) {
	h, err := r.BusinessHours.compile()
	if err != nil {
		return nil, err
	}
	for name, b := range map[string]Burst{"handshake_failures": r.HandshakeFailures, "signin_failures": r.SignInFailures} {
		if b.Warning < 0 || b.Critical < 0 {
			return nil, fmt.Errorf("%s: negative threshold", name)
		}
		if b.enabled() && b.Window <= 0 {
			return nil, fmt.Errorf("%s: window must be positive", name)
		}
		if b.Warning > 0 && b.Critical > 0 && b.Critical < b.Warning {
			return nil, fmt.Errorf("%s: critical %d below warning %d", name, b.Critical, b.Warning)
		}
		if b.Warning > 100_000 || b.Critical > 100_000 {
			return nil, fmt.Errorf("%s: thresholds above 100000", name)
		}
	}
	if r.OffHours.Enabled && len(r.OffHours.Actions) == 0 {
		return nil, fmt.Errorf("off_hours: no actions")
	}
	if m := r.ManyTenants; m.Tenants < 0 || m.Tenants > 10_000 || m.Tenants > 0 && (m.Window <= 0 || len(m.Actions) == 0) {
		return nil, fmt.Errorf("many_tenants: tenants 0..10000 with a positive window and actions")
	}
	if v := r.Volume; v.Factor != 0 && (v.Factor <= 1 || v.MinBaseline < 0 || v.Alpha <= 0 || v.Alpha > 1 || v.Warmup < 0) {
		return nil, fmt.Errorf("volume: factor above 1, min_baseline ≥ 0, alpha in (0, 1], warmup ≥ 0 (factor 0 disables)")
	}
	if g := r.Degradation; g.Factor != 0 && (g.Factor <= 1 || g.MinMS < 0 || g.Sustain < 1 || g.Alpha <= 0 || g.Alpha > 1 || g.Warmup < 0) {
		return nil, fmt.Errorf("degradation: factor above 1, min_ms ≥ 0, sustain ≥ 1, alpha in (0, 1], warmup ≥ 0 (factor 0 disables)")
	}
	if b := r.Backlog; b.Warning < 0 || b.Critical < 0 || b.FailingSamples < 0 || b.FailingSamples > 1000 {
		return nil, fmt.Errorf("backlog: negative durations or failing_samples outside 0..1000")
	}
	if s := r.SlowDisk; s.ThresholdMS < 0 || s.ThresholdMS > 0 && s.Sustain < 1 {
		return nil, fmt.Errorf("slow_disk: threshold_ms ≥ 0 and sustain ≥ 1")
	}
	for i, e := range r.Events {
		if e.Action == "" || !ValidRule(e.Rule) || severityRank(e.Severity) == 0 {
			return nil, fmt.Errorf("events[%d]: an action, a rule name of dot-separated [a-z][a-z0-9-]* segments and a severity (info, warning, critical) are required", i)
		}
	}
	return h, nil
}

// ValidRule reports whether s is a well-formed rule name: at most 64
// bytes of dot-separated segments matching [a-z][a-z0-9-]* (the form of
// an operator alert kind).
func ValidRule(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
			return false
		}
		for i := 1; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
