// Package detect watches a taxlink hub or node for failures, degraded
// performance and suspected intrusion, and raises alerts.
//
// A Detector consumes every audit event the process records (Event) and
// periodic figures (Sample), applies the built-in rules (Rules,
// DefaultRules): bursts of TLS handshake or console sign-in failures,
// unknown peers, record access outside business hours, one operator
// reading many tenants' records, traffic far above or below its baseline,
// accept latency far above its baseline, old queues, failing recipients,
// slow disks, malware, and single events such as an inconsistent ledger.
//
// Alerts are de-duplicated (the same rule and subject at most once per
// cooldown, unless the severity rises) and fanned out to every Sink: a
// Webhook, an Email, a Syslog collector, and the console's alert store
// through SinkFunc. Each sink has its own bounded queue and sender (run by
// Run): a slow or failing sink is retried with backoff and never blocks
// the others nor the producer; alerts that find its queue full are dropped
// and counted (Stats).
//
// Alerts never carry personal data: subjects are operator, tenant,
// participant or recipient IDs, addresses and fixed words; details are
// counts, times, actions and the audit log's own (already vetted) text.
package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"taxlink/internal/audit"
)

// Severities of an Alert, in increasing order of urgency. They are the
// operator store's alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Defaults of Config.
const (
	DefaultCooldown   = 10 * time.Minute // Config.Cooldown
	DefaultQueueSize  = 256              // Config.QueueSize
	DefaultMaxKeys    = 10_000           // Config.MaxKeys
	DefaultMaxPerRule = 100              // Config.MaxPerRule
)

// Limits of Alert fields: longer values are clipped (at a rune boundary).
const (
	MaxSubjectLen = 256
	MaxDetailLen  = 1024
)

// Alert is one detection.
type Alert struct {
	Time     time.Time // when it was detected: the time of the event or sample that triggered it
	Rule     string    // which rule (RuleHandshakeFailures…, or an EventRule's Rule)
	Severity string    // SeverityInfo, SeverityWarning or SeverityCritical
	Subject  string    // who or what: an operator, tenant, recipient or address ID, or a fixed word; never personal data
	Detail   string    // one line for people, no personal data
	Process  string    // the process that detected it (Config.Process), may be empty
}

// Sink receives alerts. Send delivers one alert, honouring ctx (the
// Detector sets a deadline per attempt), and returns nil only once it has
// been handed over; an error is retried with backoff. Errors and Name
// never reveal secrets (passwords, webhook secrets, secret URL paths).
// A sink is used by one sender goroutine at a time.
type Sink interface {
	Send(ctx context.Context, a Alert) error
	Name() string
}

// checker is implemented by sinks whose configuration New validates.
type checker interface{ Check() error }

// funcSink is SinkFunc's Sink.
type funcSink struct {
	name string
	send func(context.Context, Alert) error
}

func (f funcSink) Send(ctx context.Context, a Alert) error { return f.send(ctx, a) }
func (f funcSink) Name() string                            { return f.name }

// SinkFunc returns a Sink named name that calls send for each alert; the
// console's alert store is wired this way, e.g.
//
//	detect.SinkFunc("console", func(ctx context.Context, a detect.Alert) error {
//		_, err := ops.Alert(ctx, operator.Alert{Kind: a.Rule, Severity: a.Severity, Subject: a.Subject, Detail: a.Detail})
//		return err
//	})
func SinkFunc(name string, send func(ctx context.Context, a Alert) error) Sink {
	return funcSink{name: name, send: send}
}

// minSeverity is AtLeast's Sink.
type minSeverity struct {
	rank int
	Sink
}

func (m minSeverity) Send(ctx context.Context, a Alert) error {
	if severityRank(a.Severity) < m.rank {
		return nil
	}
	return m.Sink.Send(ctx, a)
}

func (m minSeverity) Check() error {
	if c, ok := m.Sink.(checker); ok {
		return c.Check()
	}
	return nil
}

// AtLeast returns a Sink that passes to s only the alerts of severity sev
// or above (others count as sent), e.g. e-mail for critical alerts only.
// An unknown sev passes everything.
func AtLeast(sev string, s Sink) Sink {
	return minSeverity{rank: severityRank(sev), Sink: s}
}

// Retry is how a sink's failed Send is retried: at most Attempts attempts
// in all, each limited to Timeout, waiting Min after the first failure and
// twice as long after each next one, up to Max.
type Retry struct {
	Attempts int
	Min, Max time.Duration
	Timeout  time.Duration
}

// DefaultRetry is the Retry used for zero fields of Config.Retry: 5
// attempts, 1 s doubling up to 1 min, 30 s per attempt.
var DefaultRetry = Retry{Attempts: 5, Min: time.Second, Max: time.Minute, Timeout: 30 * time.Second}

// Config configures a Detector.
type Config struct {
	// Rules are the rules in force; nil means DefaultRules().
	Rules *Rules
	// Sinks receive every alert.
	Sinks []Sink
	// Now is the clock for events and samples without a time; nil: time.Now.
	Now func() time.Time
	// Logger receives every alert and every delivery failure; nil: discard.
	Logger *slog.Logger
	// Cooldown is how long an alert of a rule and subject silences the
	// next ones of no higher severity; 0: DefaultCooldown.
	Cooldown time.Duration
	// Process names this process (the hub's or node's ID) in alerts.
	Process string
	// QueueSize bounds each sink's queue; 0: DefaultQueueSize.
	QueueSize int
	// Retry governs retries of failed sends; zero fields take DefaultRetry's.
	Retry Retry
	// MaxKeys bounds the addresses, operators and keys each rule tracks
	// (beyond it the stalest are forgotten); 0: DefaultMaxKeys.
	MaxKeys int
	// MaxPerRule bounds the alerts of one rule (all subjects together)
	// per cooldown: past it, one summary alert of the rule with subject
	// "*" is raised and the others are suppressed until the cooldown
	// started by the rule's first alert ends; 0: DefaultMaxPerRule.
	MaxPerRule int
}

// SinkStats counts one sink's deliveries.
type SinkStats struct {
	Name    string
	Sent    uint64 // alerts handed over
	Failed  uint64 // alerts given up after every attempt (or at shutdown)
	Dropped uint64 // alerts that found the queue full
	Retries uint64 // failed attempts that were retried
	Queued  int    // alerts waiting now
}

// Stats counts a Detector's alerts, and its sinks' deliveries in the
// order of Config.Sinks.
type Stats struct {
	Alerts     uint64 // alerts raised (after de-duplication)
	Suppressed uint64 // alerts silenced by the cooldown
	Sinks      []SinkStats
}

type sinkQueue struct {
	sink                           Sink
	q                              chan Alert
	sent, failed, dropped, retries atomic.Uint64
}

// Detector applies the rules to events and samples and fans the alerts
// out. Its methods are safe for concurrent use.
type Detector struct {
	rules    Rules
	hours    *hours
	now      func() time.Time
	log      *slog.Logger
	cooldown time.Duration
	process  string
	retry    Retry
	maxKeys  int
	perRule  int
	sinks    []*sinkQueue
	running  atomic.Bool

	offHours, manyTenants map[string]bool // action sets

	mu          sync.Mutex
	handshakes  window
	signAddr    map[string]*window
	signOp      map[string]*window
	tenants     map[string]*tenantSet
	prev        *Sample
	volume      map[string]*ewma
	latency     ewma
	latencyHigh int
	diskHigh    int
	failures    map[string][]int64
	sent        map[string]sentMark
	ruleCounts  map[string]*ruleCount
	recent      []Alert // ring, newest at recentAt-1
	recentAt    int
	alerts      uint64
	suppressed  uint64
}

type sentMark struct {
	at   time.Time
	rank int
}

// ruleCount counts a rule's alerts since start.
type ruleCount struct {
	start   time.Time
	n       int
	flooded bool
}

// recentCap is how many alerts Recent keeps.
const recentCap = 100

// New returns a Detector for cfg. It checks the rules and every sink that
// can check its configuration (Webhook, Email, Syslog); the error names
// what is wrong without revealing secrets.
func New(cfg Config) (*Detector, error) {
	rules := DefaultRules()
	if cfg.Rules != nil {
		rules = *cfg.Rules
	}
	h, err := rules.validate()
	if err != nil {
		return nil, fmt.Errorf("detect: rules: %w", err)
	}
	for i, s := range cfg.Sinks {
		if s == nil {
			return nil, fmt.Errorf("detect: sink %d is nil", i)
		}
		if c, ok := s.(checker); ok {
			if err := c.Check(); err != nil {
				return nil, fmt.Errorf("detect: sink %d (%s): %w", i, s.Name(), err)
			}
		}
	}
	if cfg.Cooldown < 0 || cfg.QueueSize < 0 || cfg.MaxKeys < 0 || cfg.MaxPerRule < 0 {
		return nil, errors.New("detect: negative cooldown, queue size, max keys or max per rule")
	}
	d := &Detector{
		rules:       rules,
		hours:       h,
		now:         cfg.Now,
		log:         cfg.Logger,
		cooldown:    cfg.Cooldown,
		process:     cfg.Process,
		retry:       cfg.Retry,
		maxKeys:     cfg.MaxKeys,
		perRule:     cfg.MaxPerRule,
		offHours:    set(rules.OffHours.Actions),
		manyTenants: set(rules.ManyTenants.Actions),
		signAddr:    map[string]*window{},
		signOp:      map[string]*window{},
		tenants:     map[string]*tenantSet{},
		volume:      map[string]*ewma{},
		failures:    map[string][]int64{},
		sent:        map[string]sentMark{},
		ruleCounts:  map[string]*ruleCount{},
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.cooldown == 0 {
		d.cooldown = DefaultCooldown
	}
	if d.maxKeys == 0 {
		d.maxKeys = DefaultMaxKeys
	}
	if d.perRule == 0 {
		d.perRule = DefaultMaxPerRule
	}
	if d.retry.Attempts <= 0 {
		d.retry.Attempts = DefaultRetry.Attempts
	}
	if d.retry.Min <= 0 {
		d.retry.Min = DefaultRetry.Min
	}
	if d.retry.Max <= 0 {
		d.retry.Max = DefaultRetry.Max
	}
	if d.retry.Max < d.retry.Min {
		d.retry.Max = d.retry.Min
	}
	if d.retry.Timeout <= 0 {
		d.retry.Timeout = DefaultRetry.Timeout
	}
	qs := cfg.QueueSize
	if qs == 0 {
		qs = DefaultQueueSize
	}
	for _, s := range cfg.Sinks {
		d.sinks = append(d.sinks, &sinkQueue{sink: s, q: make(chan Alert, qs)})
	}
	return d, nil
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// Event applies the event rules to e, one audit event as recorded. It
// never blocks on a sink; it is meant to be called for every event. A
// zero e.Time is taken as now (audit.Log.Record stamps its own copy).
func (d *Detector) Event(e audit.Event) {
	t := e.Time
	if t.IsZero() {
		t = d.now()
	}
	r := &d.rules
	d.mu.Lock()
	defer d.mu.Unlock()

	handshake := e.Action == ActionHandshakeFailure || e.Action == ActionUnknownPeer ||
		e.Action == ActionAuthFailure && e.Object != "console"
	signIn := e.Action == ActionAuthFailure && e.Object == "console" || e.Action == ActionEnrolFailure

	if handshake && r.HandshakeFailures.enabled() {
		b := r.HandshakeFailures
		n := d.handshakes.add(t, time.Duration(b.Window), burstCap(b))
		if sev := burstSeverity(b, n); sev != "" {
			d.emit(Alert{Time: t, Rule: RuleHandshakeFailures, Severity: sev, Subject: "tls",
				Detail: fmt.Sprintf("at least %d TLS handshakes refused within %s (warning at %d, critical at %d); latest from %s: %s",
					n, time.Duration(b.Window), b.Warning, b.Critical, e.From, e.Detail)})
		}
	}
	if handshake && r.UnknownPeer {
		if id, ok := unknownPeer(e); ok {
			subject := id
			if subject == "" {
				subject = hostOf(e.From)
			}
			d.emit(Alert{Time: t, Rule: RuleUnknownPeer, Severity: SeverityWarning, Subject: subject,
				Detail: fmt.Sprintf("handshake from %s refused: identity not in the directory (%s)", e.From, e.Detail)})
		}
	}
	if signIn && r.SignInFailures.enabled() {
		b := r.SignInFailures
		if addr := hostOf(e.From); addr != "" && addr != "local" {
			n := d.keyed(d.signAddr, addr, t, b)
			if sev := burstSeverity(b, n); sev != "" {
				d.emit(Alert{Time: t, Rule: RuleSignInFailures, Severity: sev, Subject: addr,
					Detail: fmt.Sprintf("at least %d console sign-in failures from address %s within %s; latest for %s: %s",
						n, addr, time.Duration(b.Window), e.Actor, e.Detail)})
			}
		}
		if person(e.Actor) {
			n := d.keyed(d.signOp, e.Actor, t, b)
			if sev := burstSeverity(b, n); sev != "" {
				d.emit(Alert{Time: t, Rule: RuleSignInFailures, Severity: sev, Subject: e.Actor,
					Detail: fmt.Sprintf("at least %d console sign-in failures for operator %s within %s; latest from %s: %s",
						n, e.Actor, time.Duration(b.Window), e.From, e.Detail)})
			}
		}
	}
	if r.OffHours.Enabled && d.offHours[e.Action] && person(e.Actor) && !d.hours.business(t) {
		lt := t.In(d.hours.loc)
		d.emit(Alert{Time: t, Rule: RuleOffHours, Severity: SeverityWarning, Subject: e.Actor,
			Detail: fmt.Sprintf("%s of %s (%s) by %s from %s at %s %s, outside business hours %s–%s",
				e.Action, tenantOf(e.Object), e.Result, e.Actor, e.From, lt.Format("2006-01-02 15:04"), lt.Weekday().String()[:3],
				r.BusinessHours.Start, r.BusinessHours.End)})
	}
	if m := r.ManyTenants; m.Tenants > 0 && d.manyTenants[e.Action] && person(e.Actor) {
		if tenant := tenantOf(e.Object); tenant != "" {
			ts := d.tenants[e.Actor]
			if ts == nil {
				if len(d.tenants) >= d.maxKeys {
					d.pruneTenants(t)
				}
				ts = &tenantSet{last: map[string]time.Time{}}
				d.tenants[e.Actor] = ts
			}
			if n := ts.add(tenant, t, time.Duration(m.Window), m.Tenants); n >= m.Tenants {
				d.emit(Alert{Time: t, Rule: RuleManyTenants, Severity: SeverityCritical, Subject: e.Actor,
					Detail: fmt.Sprintf("operator %s read records of %d tenants within %s (threshold %d): %s",
						e.Actor, n, time.Duration(m.Window), m.Tenants, ts.list())})
			}
		}
	}
	if r.Malware && e.Action == ActionScanInfected {
		d.emit(Alert{Time: t, Rule: RuleMalware, Severity: SeverityCritical, Subject: orElse(tenantOf(e.Object), e.Actor),
			Detail: fmt.Sprintf("malware found in a stored payload of %s: %s", orElse(e.Object, "?"), e.Detail)})
	}
	for _, er := range r.Events {
		if er.Action == e.Action && (er.Result == "" || er.Result == e.Result) {
			d.emit(Alert{Time: t, Rule: er.Rule, Severity: er.Severity, Subject: orElse(e.Object, e.Actor),
				Detail: fmt.Sprintf("%s by %s from %s: %s %s", e.Action, e.Actor, e.From, e.Result, e.Detail)})
		}
	}
}

// Sample carries periodic figures of the process. Counters are
// cumulative since the process started (a counter that goes down is
// taken as a restart: no rate that sample); zero latencies mean no
// figure. Maps are keyed by recipient (participant or node ID).
type Sample struct {
	Time             time.Time                // when taken; zero: now
	Accepted         float64                  // counter: envelopes accepted (hub)
	Delivered        float64                  // counter: envelopes delivered (hub)
	Recorded         float64                  // counter: envelopes recorded (node)
	P99AcceptMS      float64                  // p99 latency of accepting an envelope, ms
	FsyncP99MS       float64                  // p99 latency of fsync, ms
	Backlog          map[string]uint64        // messages waiting per recipient
	OldestAge        map[string]time.Duration // age of the oldest waiting message per recipient
	DeliveryFailures map[string]int64         // counter: failed delivery attempts per recipient
}

// Sample applies the sample rules to s. It never blocks on a sink; call
// it periodically (every minute, say) with the same cadence throughout.
func (d *Detector) Sample(s Sample) {
	if s.Time.IsZero() {
		s.Time = d.now()
	}
	t := s.Time
	r := &d.rules
	d.mu.Lock()
	defer d.mu.Unlock()

	if v := r.Volume; v.Factor > 0 && d.prev != nil {
		if dt := t.Sub(d.prev.Time).Minutes(); dt > 0 {
			for _, c := range []struct {
				name      string
				cur, prev float64
			}{{"accepted", s.Accepted, d.prev.Accepted}, {"recorded", s.Recorded, d.prev.Recorded}} {
				if c.cur < c.prev {
					continue // restarted
				}
				d.volumeRule(c.name, (c.cur-c.prev)/dt, t)
			}
		}
	}
	if g := r.Degradation; g.Factor > 0 && s.P99AcceptMS > 0 && !math.IsNaN(s.P99AcceptMS) && !math.IsInf(s.P99AcceptMS, 0) {
		p := s.P99AcceptMS
		if d.latency.n >= g.Warmup && d.latency.n > 0 && p > g.Factor*d.latency.v && p >= g.MinMS {
			d.latencyHigh++
			if d.latencyHigh >= g.Sustain {
				d.emit(Alert{Time: t, Rule: RuleDegradation, Severity: SeverityWarning, Subject: "accept",
					Detail: fmt.Sprintf("p99 accept latency %.1f ms, over %.0f× its baseline %.1f ms for %d samples", p, g.Factor, d.latency.v, d.latencyHigh)})
			}
		} else {
			d.latencyHigh = 0
			d.latency.add(p, g.Alpha)
		}
	}
	if k := r.SlowDisk; k.ThresholdMS > 0 {
		if s.FsyncP99MS > k.ThresholdMS {
			d.diskHigh++
			if d.diskHigh >= k.Sustain {
				d.emit(Alert{Time: t, Rule: RuleSlowDisk, Severity: SeverityWarning, Subject: "disk",
					Detail: fmt.Sprintf("fsync p99 %.1f ms, over %.0f ms for %d samples", s.FsyncP99MS, k.ThresholdMS, d.diskHigh)})
			}
		} else {
			d.diskHigh = 0
		}
	}
	b := r.Backlog
	if b.Warning > 0 || b.Critical > 0 {
		for _, key := range sortedKeys(s.OldestAge) {
			age := s.OldestAge[key]
			sev := ""
			switch {
			case b.Critical > 0 && age > time.Duration(b.Critical):
				sev = SeverityCritical
			case b.Warning > 0 && age > time.Duration(b.Warning):
				sev = SeverityWarning
			}
			if sev != "" {
				detail := fmt.Sprintf("oldest message for %s waiting %s", key, age.Round(time.Second))
				if n, ok := s.Backlog[key]; ok {
					detail += fmt.Sprintf(", %d waiting", n)
				}
				d.emit(Alert{Time: t, Rule: RuleBacklog, Severity: sev, Subject: key, Detail: detail})
			}
		}
	}
	if n := b.FailingSamples; n > 0 {
		for key := range d.failures {
			if _, ok := s.DeliveryFailures[key]; !ok {
				delete(d.failures, key) // recipient gone: start afresh
			}
		}
		for _, key := range sortedKeys(s.DeliveryFailures) {
			old, known := d.failures[key]
			if !known && len(d.failures) >= d.maxKeys {
				continue
			}
			h := append(old, s.DeliveryFailures[key])
			if len(h) > n+1 {
				h = append(h[:0:0], h[len(h)-(n+1):]...)
			}
			d.failures[key] = h
			if len(h) == n+1 && growing(h) {
				d.emit(Alert{Time: t, Rule: RuleFailingRecipient, Severity: SeverityWarning, Subject: key,
					Detail: fmt.Sprintf("delivery failures to %s grew in each of the last %d samples, from %d to %d", key, n, h[0], h[n])})
			}
		}
	}
	prev := s
	prev.Backlog, prev.OldestAge, prev.DeliveryFailures = nil, nil, nil
	d.prev = &prev
}

// volumeRule checks one rate (per minute) against its baseline, then
// folds it in.
func (d *Detector) volumeRule(name string, rate float64, t time.Time) {
	v := d.rules.Volume
	e := d.volume[name]
	if e == nil {
		e = &ewma{}
		d.volume[name] = e
	}
	if e.n >= v.Warmup && e.n > 0 && e.v >= v.MinBaseline && e.v > 0 {
		switch {
		case rate > v.Factor*e.v:
			d.emit(Alert{Time: t, Rule: RuleVolumeSpike, Severity: SeverityWarning, Subject: name,
				Detail: fmt.Sprintf("%s %.1f/min, over %.0f× the baseline %.1f/min", name, rate, v.Factor, e.v)})
		case rate < e.v/v.Factor && d.hours.business(t):
			d.emit(Alert{Time: t, Rule: RuleVolumeDrop, Severity: SeverityWarning, Subject: name,
				Detail: fmt.Sprintf("%s %.1f/min, under 1/%.0f of the baseline %.1f/min in business hours", name, rate, v.Factor, e.v)})
		}
	}
	e.add(rate, v.Alpha)
}

func growing(h []int64) bool {
	for i := 1; i < len(h); i++ {
		if h[i] <= h[i-1] {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ewma is an exponentially weighted moving mean.
type ewma struct {
	v float64
	n int
}

func (e *ewma) add(x, alpha float64) {
	if e.n == 0 {
		e.v = x
	} else {
		e.v = alpha*x + (1-alpha)*e.v
	}
	e.n++
}

// emit de-duplicates a, applies the per-rule bound, and raises it. d.mu
// is held.
func (d *Detector) emit(a Alert) {
	a.Subject = clean(a.Subject, MaxSubjectLen)
	a.Detail = clean(a.Detail, MaxDetailLen)
	a.Process = d.process
	key := a.Rule + "\x00" + a.Subject
	rank := severityRank(a.Severity)
	if m, ok := d.sent[key]; ok && a.Time.Sub(m.at) < d.cooldown && rank <= m.rank {
		d.suppressed++
		return
	}
	rc := d.ruleCounts[a.Rule]
	if rc == nil || a.Time.Sub(rc.start) >= d.cooldown {
		rc = &ruleCount{start: a.Time}
		d.ruleCounts[a.Rule] = rc
	}
	if rc.n >= d.perRule {
		d.suppressed++
		if !rc.flooded {
			rc.flooded = true
			d.raise(Alert{Time: a.Time, Rule: a.Rule, Severity: a.Severity, Subject: "*", Process: d.process,
				Detail: fmt.Sprintf("%d alerts of %s since %s: further ones are suppressed until %s (latest subject %s)",
					rc.n, a.Rule, rc.start.UTC().Format(time.RFC3339), rc.start.Add(d.cooldown).UTC().Format(time.RFC3339), a.Subject)})
		}
		return
	}
	rc.n++
	if len(d.sent) >= d.maxKeys {
		for k, m := range d.sent {
			if a.Time.Sub(m.at) >= d.cooldown {
				delete(d.sent, k)
			}
		}
	}
	d.sent[key] = sentMark{at: a.Time, rank: rank}
	d.raise(a)
}

// raise records a and queues it for every sink. d.mu is held.
func (d *Detector) raise(a Alert) {
	d.alerts++
	if len(d.recent) < recentCap {
		d.recent = append(d.recent, a)
	} else {
		d.recent[d.recentAt] = a
	}
	d.recentAt = (d.recentAt + 1) % recentCap

	level := slog.LevelInfo
	switch a.Severity {
	case SeverityWarning:
		level = slog.LevelWarn
	case SeverityCritical:
		level = slog.LevelError
	}
	d.log.Log(context.Background(), level, "ALERT", "rule", a.Rule, "severity", a.Severity, "subject", a.Subject, "detail", a.Detail)
	for _, s := range d.sinks {
		select {
		case s.q <- a:
		default:
			s.dropped.Add(1)
		}
	}
}

// Recent returns up to n of the latest alerts raised (after
// de-duplication), newest first; it keeps the last 100.
func (d *Detector) Recent(n int) []Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	n = min(n, len(d.recent))
	out := make([]Alert, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		out = append(out, d.recent[(d.recentAt-i+recentCap)%recentCap])
	}
	return out
}

// Run delivers queued alerts to the sinks, one sender per sink, until ctx
// ends; then it returns once every sender has stopped (an alert being
// delivered then counts as failed; queued ones stay queued). Run is meant
// to be called once; a call while another runs returns at once.
func (d *Detector) Run(ctx context.Context) {
	if !d.running.CompareAndSwap(false, true) {
		return
	}
	defer d.running.Store(false)
	var wg sync.WaitGroup
	for _, s := range d.sinks {
		wg.Go(func() { d.sender(ctx, s) })
	}
	wg.Wait()
}

func (d *Detector) sender(ctx context.Context, s *sinkQueue) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-s.q:
			d.deliver(ctx, s, a)
		}
	}
}

func (d *Detector) deliver(ctx context.Context, s *sinkQueue, a Alert) {
	wait := d.retry.Min
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, d.retry.Timeout)
		err := s.sink.Send(actx, a)
		cancel()
		if err == nil {
			s.sent.Add(1)
			return
		}
		if ctx.Err() != nil {
			s.failed.Add(1)
			return
		}
		if attempt >= d.retry.Attempts {
			s.failed.Add(1)
			d.log.Error("detect: alert not delivered", "sink", s.sink.Name(), "rule", a.Rule, "subject", a.Subject, "attempts", attempt, "err", err)
			return
		}
		s.retries.Add(1)
		d.log.Warn("detect: alert delivery failed; retrying", "sink", s.sink.Name(), "rule", a.Rule, "attempt", attempt, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.failed.Add(1)
			return
		case <-t.C:
		}
		wait = min(2*wait, d.retry.Max)
	}
}

// Stats returns the counts of alerts and of each sink's deliveries.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	st := Stats{Alerts: d.alerts, Suppressed: d.suppressed}
	d.mu.Unlock()
	for _, s := range d.sinks {
		st.Sinks = append(st.Sinks, SinkStats{
			Name: s.sink.Name(), Sent: s.sent.Load(), Failed: s.failed.Load(),
			Dropped: s.dropped.Load(), Retries: s.retries.Load(), Queued: len(s.q),
		})
	}
	return st
}

// window holds the latest times of a burst, oldest first.
type window struct{ ts []time.Time }

// add records t, forgets times at or before (the newest time − span) and
// keeps at most max times (the newest); it returns how many remain, or 0
// when t itself is too old to count.
func (w *window) add(t time.Time, span time.Duration, max int) int {
	ref := t
	if n := len(w.ts); n > 0 && w.ts[n-1].After(ref) {
		ref = w.ts[n-1]
	}
	cut := ref.Add(-span)
	w.expire(cut)
	if !t.After(cut) {
		return 0
	}
	i := len(w.ts) // events come nearly in order: insert from the end
	for i > 0 && w.ts[i-1].After(t) {
		i--
	}
	w.ts = slices.Insert(w.ts, i, t)
	if len(w.ts) > max {
		n := copy(w.ts, w.ts[len(w.ts)-max:])
		w.ts = w.ts[:n]
	}
	return len(w.ts)
}

func (w *window) expire(cut time.Time) {
	i := 0
	for i < len(w.ts) && !w.ts[i].After(cut) {
		i++
	}
	if i > 0 {
		n := copy(w.ts, w.ts[i:])
		w.ts = w.ts[:n]
	}
}

func burstCap(b Burst) int { return max(b.Warning, b.Critical) }

func burstSeverity(b Burst, n int) string {
	switch {
	case b.Critical > 0 && n >= b.Critical:
		return SeverityCritical
	case b.Warning > 0 && n >= b.Warning:
		return SeverityWarning
	}
	return ""
}

// keyed adds t to the window of key in m, bounding m by d.maxKeys.
func (d *Detector) keyed(m map[string]*window, key string, t time.Time, b Burst) int {
	w := m[key]
	if w == nil {
		if len(m) >= d.maxKeys {
			cut := t.Add(-time.Duration(b.Window))
			for k, w := range m {
				if w.expire(cut); len(w.ts) == 0 {
					delete(m, k)
				}
			}
			for k := range m { // still full: forget arbitrary keys, down to half
				if len(m) < d.maxKeys/2 {
					break
				}
				delete(m, k)
			}
		}
		w = &window{}
		m[key] = w
	}
	return w.add(t, time.Duration(b.Window), burstCap(b))
}

// tenantSet holds when an operator last read each tenant's records.
type tenantSet struct{ last map[string]time.Time }

// add records tenant at t, forgets those not seen within span, and keeps
// at most max tenants (the latest); it returns how many remain.
func (s *tenantSet) add(tenant string, t time.Time, span time.Duration, max int) int {
	if at, ok := s.last[tenant]; !ok || t.After(at) {
		s.last[tenant] = t
	}
	ref := t
	for _, at := range s.last {
		if at.After(ref) {
			ref = at
		}
	}
	cut := ref.Add(-span)
	for k, at := range s.last {
		if !at.After(cut) {
			delete(s.last, k)
		}
	}
	for len(s.last) > max {
		oldest, first := "", true
		for k, at := range s.last {
			if first || at.Before(s.last[oldest]) {
				oldest, first = k, false
			}
		}
		delete(s.last, oldest)
	}
	return len(s.last)
}

func (s *tenantSet) list() string {
	ks := sortedKeys(s.last)
	return strings.Join(ks, ", ")
}

func (d *Detector) pruneTenants(t time.Time) {
	cut := t.Add(-time.Duration(d.rules.ManyTenants.Window))
	for op, s := range d.tenants {
		newest := time.Time{}
		for _, at := range s.last {
			if at.After(newest) {
				newest = at
			}
		}
		if !newest.After(cut) {
			delete(d.tenants, op)
		}
	}
	for op := range d.tenants {
		if len(d.tenants) < d.maxKeys/2 {
			break
		}
		delete(d.tenants, op)
	}
}

// unknownPeer reports whether e is a handshake refused because the peer
// is not in the directory, and the peer's identity if it can tell.
func unknownPeer(e audit.Event) (string, bool) {
	if e.Action == ActionUnknownPeer {
		if person(e.Actor) {
			return e.Actor, true
		}
		return "", true
	}
	reason := e.Detail
	if i := strings.Index(reason, " is not a node in the directory"); i >= 0 {
		return lastWord(reason[:i]), true
	}
	if i := strings.Index(reason, " may connect, not "); i >= 0 {
		return firstWord(reason[i+len(" may connect, not "):]), true
	}
	if i := strings.Index(reason, "directory: unknown participant "); i >= 0 {
		return firstWord(reason[i+len("directory: unknown participant "):]), true
	}
	if i := strings.Index(reason, "directory: unknown node "); i >= 0 {
		return firstWord(reason[i+len("directory: unknown node "):]), true
	}
	if strings.Contains(reason, "not in the directory") || strings.Contains(reason, "directory: unknown") {
		return "", true
	}
	return "", false
}

func lastWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, " :"); i >= 0 {
		s = s[i+1:]
	}
	return identity(s)
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " ,;:)"); i >= 0 {
		s = s[:i]
	}
	return identity(s)
}

// identity keeps s if it looks like a participant or node ID: 1..128
// bytes of printable ASCII without spaces or quotes.
func identity(s string) string {
	if len(s) == 0 || len(s) > 128 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '\'' {
			return ""
		}
	}
	return s
}

// person reports whether actor names someone (not "system", "unknown",
// "anonymous", a subsystem or nobody).
func person(actor string) bool {
	switch actor {
	case "", "system", "unknown", "anonymous", "retention", "local", "-":
		return false
	}
	return true
}

// hostOf returns the host of a "host:port" address, or addr as it is.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// tenantOf returns the first word of a record object "<tenant> <id>".
func tenantOf(object string) string {
	t, _, _ := strings.Cut(strings.TrimSpace(object), " ")
	return t
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func severityRank(s string) int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// clean replaces control and invisible formatting characters and invalid
// UTF-8 with spaces/U+FFFD and clips s to max bytes at a rune boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
	return clip(s, max)
}

// clip cuts s to at most max bytes at a rune boundary, marking the cut
// with "…" when there is room.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	if max > 3 {
		cut = max - 3
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if max > 3 {
		return s[:cut] + "…"
	}
	return s[:cut]
}
