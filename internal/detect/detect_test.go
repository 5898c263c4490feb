package detect

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/audit"
)

var jst = time.FixedZone("JST", 9*3600)

// wed10 is Wednesday 2026-03-11 10:00 JST, within business hours.
var wed10 = time.Date(2026, 3, 11, 10, 0, 0, 0, jst)

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newDetector returns a Detector with DefaultRules changed by edit, no
// sinks, and a clock at start.
func newDetector(t *testing.T, start time.Time, edit func(r *Rules)) (*Detector, *clock) {
	t.Helper()
	c := &clock{t: start}
	r := DefaultRules()
	if edit != nil {
		edit(&r)
	}
	d, err := New(Config{Rules: &r, Now: c.Now, Process: "hub-01"})
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// got returns the alerts raised so far, oldest first, as
// "rule severity subject".
func got(d *Detector) []string {
	rs := d.Recent(recentCap)
	out := []string{}
	for i := len(rs) - 1; i >= 0; i-- {
		out = append(out, rs[i].Rule+" "+rs[i].Severity+" "+rs[i].Subject)
	}
	return out
}

func want(t *testing.T, d *Detector, w ...string) {
	t.Helper()
	if w == nil {
		w = []string{}
	}
	if g := got(d); !reflect.DeepEqual(g, w) {
		t.Fatalf("alerts:\n got  %q\n want %q", g, w)
	}
}

func tlsFailure(from, reason string) audit.Event {
	return audit.Event{Actor: "unknown", Action: "auth.failure", From: from, Result: audit.ResultDenied, Detail: reason}
}

func signInFailure(op, from string) audit.Event {
	return audit.Event{Actor: op, Action: "auth.failure", Object: "console", From: from, Result: audit.ResultDenied, Detail: "assertion refused"}
}

func recordView(op, tenant string) audit.Event {
	return audit.Event{Actor: op, Action: "record.view", Object: tenant + " 01JABCDEF", From: "192.0.2.7:5000", Result: audit.ResultOK, Detail: "withholding"}
}

func TestHandshakeFailures(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		every time.Duration
		want  []string
	}{
		{"19 in a minute", 19, time.Second, nil},
		{"20 in a minute", 20, time.Second, []string{"detect.handshake-failures warning tls"}},
		{"99 in a minute: one warning", 99, 500 * time.Millisecond, []string{"detect.handshake-failures warning tls"}},
		{"100 in a minute: escalates", 100, 500 * time.Millisecond, []string{"detect.handshake-failures warning tls", "detect.handshake-failures critical tls"}},
		{"20 spread over two minutes", 20, 6 * time.Second, nil},
		{"200 spread over an hour", 200, 18 * time.Second, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newDetector(t, wed10, nil)
			for range tc.n {
				d.Event(tlsFailure("203.0.113.9:4431", "tls: client didn't provide a certificate"))
				c.Add(tc.every)
			}
			want(t, d, tc.want...)
		})
	}
	t.Run("console sign-in failures do not count", func(t *testing.T) {
		d, _ := newDetector(t, wed10, func(r *Rules) { r.SignInFailures = Burst{} })
		for range 30 {
			d.Event(signInFailure("op:tanaka", "192.0.2.7:5000"))
		}
		want(t, d)
	})
	t.Run("tls.handshake-failure counts", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for range 20 {
			d.Event(audit.Event{Actor: "unknown", Action: "tls.handshake-failure", From: "203.0.113.9:1", Result: audit.ResultDenied})
		}
		want(t, d, "detect.handshake-failures warning tls")
	})
	t.Run("again after the cooldown", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for range 3 {
			for range 25 {
				d.Event(tlsFailure("203.0.113.9:4431", "tls: bad certificate"))
			}
			c.Add(6 * time.Minute) // bursts 6 min apart, cooldown 10 min
		}
		want(t, d, "detect.handshake-failures warning tls", "detect.handshake-failures warning tls")
		if st := d.Stats(); st.Alerts != 2 || st.Suppressed == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		d, _ := newDetector(t, wed10, func(r *Rules) { r.HandshakeFailures = Burst{} })
		for range 200 {
			d.Event(tlsFailure("203.0.113.9:4431", "tls: bad certificate"))
		}
		want(t, d)
	})
}

func TestSignInFailures(t *testing.T) {
	t.Run("per operator from many addresses", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for i := range 5 {
			d.Event(signInFailure("op:tanaka", fmt.Sprintf("192.0.2.%d:5000", 10+i)))
			c.Add(time.Minute)
		}
		want(t, d, "detect.signin-failures warning op:tanaka")
	})
	t.Run("per address for many operators", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for i := range 5 {
			d.Event(signInFailure(fmt.Sprintf("op:%d", i), fmt.Sprintf("192.0.2.7:%d", 5000+i)))
			c.Add(50 * time.Second)
		}
		want(t, d, "detect.signin-failures warning 192.0.2.7")
	})
	t.Run("anonymous counts per address only", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for range 5 {
			d.Event(audit.Event{Actor: "anonymous", Action: "auth.failure", Object: "console", From: "[2001:db8::1]:443", Result: audit.ResultDenied})
		}
		want(t, d, "detect.signin-failures warning 2001:db8::1")
	})
	t.Run("window slides", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for range 4 { // at 0, 1, 2, 3 min
			d.Event(signInFailure("op:tanaka", "local"))
			c.Add(time.Minute)
		}
		c.Add(90 * time.Second)
		d.Event(signInFailure("op:tanaka", "local")) // at 5.5 min: the one at 0 left the 5-min window
		want(t, d)
		d.Event(signInFailure("op:tanaka", "local")) // 5 within (0.5, 5.5]
		want(t, d, "detect.signin-failures warning op:tanaka")
	})
	t.Run("enrolment failures count", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for range 5 {
			d.Event(audit.Event{Actor: "op:new", Action: "enrol.failure", Object: "console", From: "local", Result: audit.ResultDenied})
		}
		want(t, d, "detect.signin-failures warning op:new")
	})
	t.Run("handshake failures do not count", func(t *testing.T) {
		d, _ := newDetector(t, wed10, func(r *Rules) { r.HandshakeFailures = Burst{} })
		for range 10 {
			d.Event(tlsFailure("192.0.2.7:5000", "tls: bad certificate"))
		}
		want(t, d)
	})
	t.Run("zero times take the clock", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for i := range 5 {
			e := signInFailure("op:tanaka", "local")
			if i == 4 {
				e.Time = c.Now().Add(-time.Hour) // an explicit time is honoured: too old to count
			}
			d.Event(e)
		}
		want(t, d)
	})
}

func TestUnknownPeer(t *testing.T) {
	cases := []struct {
		name string
		e    audit.Event
		want []string
	}{
		{"hub refuses a node not in the directory", tlsFailure("198.51.100.4:3000", "node-x is not a node in the directory"),
			[]string{"detect.unknown-peer warning node-x"}},
		{"node refuses a peer other than its hub", tlsFailure("198.51.100.4:3000", "only the hub hub-01 may connect, not node-z"),
			[]string{"detect.unknown-peer warning node-z"}},
		{"directory error", tlsFailure("198.51.100.4:3000", "directory: unknown participant 1234567890123"),
			[]string{"detect.unknown-peer warning 1234567890123"}},
		{"unparsed identity: the address", tlsFailure("198.51.100.4:3000", "peer not in the directory"),
			[]string{"detect.unknown-peer warning 198.51.100.4"}},
		{"own action", audit.Event{Actor: "node-q", Action: "auth.unknown-peer", From: "198.51.100.4:3000", Result: audit.ResultDenied},
			[]string{"detect.unknown-peer warning node-q"}},
		{"other handshake failure", tlsFailure("198.51.100.4:3000", "tls: certificate signed by unknown authority"), nil},
		{"console failure", signInFailure("op:x", "198.51.100.4:3000"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDetector(t, wed10, nil)
			d.Event(tc.e)
			want(t, d, tc.want...)
		})
	}
	t.Run("de-duplicated per identity", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for range 3 {
			d.Event(tlsFailure("198.51.100.4:3000", "node-x is not a node in the directory"))
			c.Add(time.Minute)
		}
		d.Event(tlsFailure("198.51.100.4:3000", "node-y is not a node in the directory"))
		c.Add(10 * time.Minute)
		d.Event(tlsFailure("198.51.100.4:3000", "node-x is not a node in the directory"))
		want(t, d, "detect.unknown-peer warning node-x", "detect.unknown-peer warning node-y", "detect.unknown-peer warning node-x")
	})
	t.Run("disabled", func(t *testing.T) {
		d, _ := newDetector(t, wed10, func(r *Rules) { r.UnknownPeer = false })
		d.Event(tlsFailure("198.51.100.4:3000", "node-x is not a node in the directory"))
		want(t, d)
	})
}

func TestOffHours(t *testing.T) {
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 3, day, hour, minute, 0, 0, jst) }
	cases := []struct {
		name string
		t    time.Time
		e    audit.Event
		edit func(*Rules)
		want bool
	}{
		{"Wednesday 10:00", at(11, 10, 0), recordView("op:tanaka", "t1"), nil, false},
		{"Wednesday 07:00", at(11, 7, 0), recordView("op:tanaka", "t1"), nil, false},
		{"Wednesday 06:59", at(11, 6, 59), recordView("op:tanaka", "t1"), nil, true},
		{"Wednesday 21:59", at(11, 21, 59), recordView("op:tanaka", "t1"), nil, false},
		{"Wednesday 22:00", at(11, 22, 0), recordView("op:tanaka", "t1"), nil, true},
		{"Wednesday 13:30 UTC is 22:30 JST", time.Date(2026, 3, 11, 13, 30, 0, 0, time.UTC), recordView("op:tanaka", "t1"), nil, true},
		{"Saturday 10:00", at(14, 10, 0), recordView("op:tanaka", "t1"), nil, true},
		{"Saturday with weekends on", at(14, 10, 0), recordView("op:tanaka", "t1"), func(r *Rules) { r.BusinessHours.WeekendsOff = false }, false},
		{"holiday", at(20, 10, 0), recordView("op:tanaka", "t1"), func(r *Rules) { r.BusinessHours.Holidays = []string{"2026-03-20"} }, true},
		{"download", at(11, 23, 0), audit.Event{Actor: "op:tanaka", Action: "record.download", Object: "t1 x", From: "local", Result: audit.ResultOK}, nil, true},
		{"refused attempt", at(11, 23, 0), audit.Event{Actor: "op:tanaka", Action: "record.view", Object: "t1 x", From: "local", Result: audit.ResultDenied}, nil, true},
		{"not a record action", at(11, 23, 0), audit.Event{Actor: "op:tanaka", Action: "history.view", Object: "console", From: "local", Result: audit.ResultOK}, nil, false},
		{"system actor", at(11, 23, 0), audit.Event{Actor: "system", Action: "record.view", Object: "t1 x", From: "local", Result: audit.ResultOK}, nil, false},
		{"disabled", at(11, 23, 0), recordView("op:tanaka", "t1"), func(r *Rules) { r.OffHours.Enabled = false }, false},
		{"night shift 22:00-06:00, at 23:00", at(11, 23, 0), recordView("op:tanaka", "t1"),
			func(r *Rules) { r.BusinessHours.Start, r.BusinessHours.End = "22:00", "06:00" }, false},
		{"night shift 22:00-06:00, at 12:00", at(11, 12, 0), recordView("op:tanaka", "t1"),
			func(r *Rules) { r.BusinessHours.Start, r.BusinessHours.End = "22:00", "06:00" }, true},
		{"UTC zone", at(11, 10, 0), recordView("op:tanaka", "t1"), func(r *Rules) { r.BusinessHours.Zone = "UTC" }, true}, // 01:00 UTC
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDetector(t, tc.t, tc.edit)
			d.Event(tc.e)
			if tc.want {
				want(t, d, "detect.off-hours warning op:tanaka")
				if a := d.Recent(1)[0]; !strings.Contains(a.Detail, "outside business hours") || a.Process != "hub-01" {
					t.Fatalf("alert %+v", a)
				}
			} else {
				want(t, d)
			}
		})
	}
}

func TestManyTenants(t *testing.T) {
	t.Run("five tenants within the hour", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for i := range 4 {
			d.Event(recordView("op:sato", fmt.Sprintf("tenant-%d", i)))
			d.Event(recordView("op:sato", fmt.Sprintf("tenant-%d", i))) // repeats do not count
			c.Add(10 * time.Minute)
		}
		want(t, d)
		d.Event(recordView("op:sato", "tenant-4"))
		want(t, d, "detect.many-tenants critical op:sato")
		if a := d.Recent(1)[0]; !strings.Contains(a.Detail, "tenant-0, tenant-1, tenant-2, tenant-3, tenant-4") {
			t.Fatalf("detail %q", a.Detail)
		}
	})
	t.Run("window slides", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for i := range 4 { // at 0, 10, 20, 30 min
			d.Event(recordView("op:sato", fmt.Sprintf("tenant-%d", i)))
			c.Add(10 * time.Minute)
		}
		c.Set(wed10.Add(61 * time.Minute))
		d.Event(recordView("op:sato", "tenant-4")) // tenant-0 has left the hour
		want(t, d)
		d.Event(recordView("op:sato", "tenant-5"))
		want(t, d, "detect.many-tenants critical op:sato")
	})
	t.Run("per operator", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for i := range 3 {
			d.Event(recordView("op:a", fmt.Sprintf("tenant-%d", i)))
			d.Event(recordView("op:b", fmt.Sprintf("tenant-%d", i+3)))
		}
		want(t, d)
	})
	t.Run("mixed record actions and refusals", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for i, action := range []string{"record.view", "record.download", "record.print", "record.open", "record.view"} {
			d.Event(audit.Event{Actor: "op:c", Action: action, Object: fmt.Sprintf("t%d id", i), From: "local", Result: audit.ResultDenied})
		}
		want(t, d, "detect.many-tenants critical op:c")
	})
	t.Run("searches do not count by default", func(t *testing.T) {
		d, _ := newDetector(t, wed10, nil)
		for i := range 10 {
			d.Event(audit.Event{Actor: "op:c", Action: "record.search", Object: fmt.Sprintf("t%d", i), From: "local", Result: audit.ResultOK})
		}
		want(t, d)
	})
	t.Run("configured threshold", func(t *testing.T) {
		d, _ := newDetector(t, wed10, func(r *Rules) { r.ManyTenants.Tenants = 2 })
		d.Event(recordView("op:d", "t1"))
		d.Event(recordView("op:d", "t2"))
		want(t, d, "detect.many-tenants critical op:d")
	})
}

func TestMalwareAndEvents(t *testing.T) {
	infected := audit.Event{Actor: "system", Action: "scan.infected", Object: "tenant-9 01JXYZ", From: "local", Result: audit.ResultDenied, Detail: "quarantined: Eicar-Test-Signature"}
	cases := []struct {
		name string
		e    audit.Event
		edit func(*Rules)
		want []string
	}{
		{"malware", infected, nil, []string{"detect.malware critical tenant-9"}},
		{"malware off", infected, func(r *Rules) { r.Malware = false }, nil},
		{"ledger inconsistent", audit.Event{Actor: "hub-01", Action: "ledger.inconsistent", From: "hub", Result: audit.ResultDenied, Detail: "fork"}, nil,
			[]string{"detect.ledger-inconsistent critical hub-01"}},
		{"directory refused", audit.Event{Actor: "hub-01", Action: "directory.refuse", From: "hub", Result: audit.ResultDenied}, nil,
			[]string{"detect.directory-refused warning hub-01"}},
		{"lockout", audit.Event{Actor: "system", Action: "auth.lockout", Object: "op:tanaka", From: "local", Result: audit.ResultOK}, nil,
			[]string{"detect.lockout warning op:tanaka"}},
		{"result filter matches", audit.Event{Actor: "x", Action: "export.drop", Object: "t1", From: "local", Result: audit.ResultError},
			func(r *Rules) {
				r.Events = []EventRule{{Action: "export.drop", Result: audit.ResultError, Rule: "detect.export-failed", Severity: SeverityInfo}}
			},
			[]string{"detect.export-failed info t1"}},
		{"result filter does not match", audit.Event{Actor: "x", Action: "export.drop", Object: "t1", From: "local", Result: audit.ResultOK},
			func(r *Rules) {
				r.Events = []EventRule{{Action: "export.drop", Result: audit.ResultError, Rule: "detect.export-failed", Severity: SeverityInfo}}
			}, nil},
		{"ordinary event", audit.Event{Actor: "op:a", Action: "auth.success", Object: "console", From: "local", Result: audit.ResultOK}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDetector(t, wed10, tc.edit)
			d.Event(tc.e)
			want(t, d, tc.want...)
		})
	}
}

// feed sends one sample a minute, counters growing by the given
// per-minute amounts, starting at c's time; it returns the counter.
type feeder struct {
	d     *Detector
	c     *clock
	total float64
}

func (f *feeder) minute(perMinute float64) {
	f.c.Add(time.Minute)
	f.total += perMinute
	f.d.Sample(Sample{Accepted: f.total})
}

func TestVolume(t *testing.T) {
	cases := []struct {
		name  string
		start time.Time
		rates []float64
		want  []string
	}{
		{"steady", wed10, []float64{20, 20, 20, 20, 20, 20, 22, 18, 20, 25}, nil},
		{"spike", wed10, []float64{20, 20, 20, 20, 20, 20, 150}, []string{"detect.volume-spike warning accepted"}},
		{"below the factor", wed10, []float64{20, 20, 20, 20, 20, 20, 95}, nil},
		{"during warm-up", wed10, []float64{20, 20, 150}, nil},
		{"baseline below the minimum", wed10, []float64{5, 5, 5, 5, 5, 5, 100}, nil},
		{"drop in business hours", wed10, []float64{20, 20, 20, 20, 20, 20, 2}, []string{"detect.volume-drop warning accepted"}},
		{"drop at night", time.Date(2026, 3, 11, 23, 0, 0, 0, jst), []float64{20, 20, 20, 20, 20, 20, 2}, nil},
		{"drop on Sunday", time.Date(2026, 3, 15, 11, 0, 0, 0, jst), []float64{20, 20, 20, 20, 20, 20, 0}, nil},
		{"lasting spike alerts once per cooldown", wed10, []float64{20, 20, 20, 20, 20, 20, 200, 200, 200, 200}, []string{"detect.volume-spike warning accepted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newDetector(t, tc.start, nil)
			f := &feeder{d: d, c: c}
			d.Sample(Sample{}) // the first sample only sets the counters
			for _, r := range tc.rates {
				f.minute(r)
			}
			want(t, d, tc.want...)
		})
	}
	t.Run("counter reset is no drop", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		f := &feeder{d: d, c: c}
		d.Sample(Sample{})
		for range 6 {
			f.minute(20)
		}
		c.Add(time.Minute)
		d.Sample(Sample{Accepted: 3}) // restarted
		want(t, d)
	})
	t.Run("recorded on a node", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		total := 0.0
		for i := range 8 {
			c.Add(time.Minute)
			if i == 7 {
				total += 500
			} else {
				total += 30
			}
			d.Sample(Sample{Recorded: total})
		}
		want(t, d, "detect.volume-spike warning recorded")
	})
	t.Run("rates are per minute whatever the period", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		total := 0.0
		for range 8 {
			c.Add(5 * time.Minute)
			total += 100 // 20/min
			d.Sample(Sample{Accepted: total})
		}
		want(t, d)
	})
	t.Run("disabled", func(t *testing.T) {
		d, c := newDetector(t, wed10, func(r *Rules) { r.Volume.Factor = 0 })
		f := &feeder{d: d, c: c}
		for _, r := range []float64{20, 20, 20, 20, 20, 20, 500, 0} {
			f.minute(r)
		}
		want(t, d)
	})
}

func TestDegradation(t *testing.T) {
	cases := []struct {
		name string
		p99  []float64
		want []string
	}{
		{"steady", []float64{10, 12, 9, 10, 11, 10, 12, 10}, nil},
		{"two slow samples", []float64{10, 10, 10, 10, 10, 40, 40}, nil},
		{"three slow samples", []float64{10, 10, 10, 10, 10, 40, 40, 40}, []string{"detect.degradation warning accept"}},
		{"interrupted", []float64{10, 10, 10, 10, 10, 40, 40, 10, 40, 40}, nil},
		{"gaps are ignored", []float64{10, 10, 10, 10, 10, 40, 0, 40, 0, 40}, []string{"detect.degradation warning accept"}},
		{"under the floor", []float64{2, 2, 2, 2, 2, 8, 8, 8, 8}, nil},
		{"during warm-up", []float64{10, 10, 40, 40, 40}, nil},
		{"slow samples stay out of the baseline", []float64{10, 10, 10, 10, 10, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40},
			// alerts at the 3rd and (after the cooldown) the 13th slow sample: a baseline that took
			// the slow samples in would have risen past 40/3 ms by then
			[]string{"detect.degradation warning accept", "detect.degradation warning accept"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newDetector(t, wed10, nil)
			for _, p := range tc.p99 {
				c.Add(time.Minute)
				d.Sample(Sample{P99AcceptMS: p})
			}
			want(t, d, tc.want...)
		})
	}
	t.Run("again after the cooldown", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for _, p := range []float64{10, 10, 10, 10, 10} {
			c.Add(time.Minute)
			d.Sample(Sample{P99AcceptMS: p})
		}
		for range 14 { // 14 minutes slow: alerts at 3 and 13
			c.Add(time.Minute)
			d.Sample(Sample{P99AcceptMS: 50})
		}
		want(t, d, "detect.degradation warning accept", "detect.degradation warning accept")
	})
}

func TestSlowDisk(t *testing.T) {
	cases := []struct {
		name  string
		fsync []float64
		want  []string
	}{
		{"fast", []float64{2, 3, 2, 40, 2}, nil},
		{"two slow", []float64{60, 60}, nil},
		{"three slow", []float64{60, 60, 60}, []string{"detect.slow-disk warning disk"}},
		{"interrupted", []float64{60, 60, 10, 60, 60}, nil},
		{"at the threshold", []float64{50, 50, 50, 50}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newDetector(t, wed10, nil)
			for _, f := range tc.fsync {
				c.Add(time.Minute)
				d.Sample(Sample{FsyncP99MS: f})
			}
			want(t, d, tc.want...)
		})
	}
}

func TestBacklog(t *testing.T) {
	t.Run("ages", func(t *testing.T) {
		d, c := newDetector(t, wed10, nil)
		for _, age := range []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute} {
			c.Add(time.Minute)
			d.Sample(Sample{OldestAge: map[string]time.Duration{"p-1": age}, Backlog: map[string]uint64{"p-1": 12}})
		}
		want(t, d)
		c.Add(time.Minute)
		d.Sample(Sample{OldestAge: map[string]time.Duration{"p-1": 11 * time.Minute, "p-2": time.Second}, Backlog: map[string]uint64{"p-1": 340}})
		want(t, d, "detect.backlog warning p-1")
		if a := d.Recent(1)[0]; a.Detail != "oldest message for p-1 waiting 11m0s, 340 waiting" {
			t.Fatalf("detail %q", a.Detail)
		}
		c.Add(time.Minute)
		d.Sample(Sample{OldestAge: map[string]time.Duration{"p-1": 30 * time.Minute}})
		want(t, d, "detect.backlog warning p-1") // within the cooldown
		c.Add(time.Minute)
		d.Sample(Sample{OldestAge: map[string]time.Duration{"p-1": 61 * time.Minute}})
		want(t, d, "detect.backlog warning p-1", "detect.backlog critical p-1") // escalation passes the cooldown
	})
	failing := []struct {
		name   string
		counts []map[string]int64
		want   []string
	}{
		{"growing over three samples", []map[string]int64{{"p-1": 1}, {"p-1": 2}, {"p-1": 3}, {"p-1": 4}}, []string{"detect.failing-recipient warning p-1"}},
		{"growing over two samples", []map[string]int64{{"p-1": 1}, {"p-1": 2}, {"p-1": 3}}, nil},
		{"a pause", []map[string]int64{{"p-1": 1}, {"p-1": 2}, {"p-1": 2}, {"p-1": 3}, {"p-1": 4}}, nil},
		{"recipient gone and back", []map[string]int64{{"p-1": 1}, {"p-1": 2}, {}, {"p-1": 3}, {"p-1": 4}}, nil},
		{"only the failing one", []map[string]int64{{"p-1": 1, "p-2": 5}, {"p-1": 2, "p-2": 5}, {"p-1": 3, "p-2": 6}, {"p-1": 9, "p-2": 6}},
			[]string{"detect.failing-recipient warning p-1"}},
	}
	for _, tc := range failing {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newDetector(t, wed10, nil)
			for _, m := range tc.counts {
				c.Add(time.Minute)
				d.Sample(Sample{DeliveryFailures: m})
			}
			want(t, d, tc.want...)
		})
	}
}

func TestCooldown(t *testing.T) {
	d, c := newDetector(t, wed10, nil)
	infected := func(tenant string) audit.Event {
		return audit.Event{Actor: "system", Action: "scan.infected", Object: tenant + " x", From: "local", Result: audit.ResultDenied}
	}
	d.Event(infected("t1"))
	c.Add(9*time.Minute + 59*time.Second)
	d.Event(infected("t1")) // suppressed
	d.Event(infected("t2")) // another subject
	c.Add(time.Second)
	d.Event(infected("t1")) // the cooldown is over
	want(t, d, "detect.malware critical t1", "detect.malware critical t2", "detect.malware critical t1")
	if st := d.Stats(); st.Alerts != 3 || st.Suppressed != 1 {
		t.Fatalf("stats %+v", st)
	}

	c2 := &clock{t: wed10}
	d2, err := New(Config{Now: c2.Now, Cooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for range 7 { // at 0, 10, …, 60 min
		d2.Event(infected("t1"))
		c2.Add(10 * time.Minute)
	}
	want(t, d2, "detect.malware critical t1", "detect.malware critical t1")
}

func TestMaxPerRule(t *testing.T) {
	c := &clock{t: wed10}
	d, err := New(Config{Now: c.Now, MaxPerRule: 3})
	if err != nil {
		t.Fatal(err)
	}
	peers := func(from, to int) {
		for i := from; i < to; i++ {
			d.Event(tlsFailure("198.51.100.4:3000", fmt.Sprintf("node-%d is not a node in the directory", i)))
		}
	}
	peers(0, 10)
	want(t, d, "detect.unknown-peer warning node-0", "detect.unknown-peer warning node-1", "detect.unknown-peer warning node-2",
		"detect.unknown-peer warning *")
	if a := d.Recent(1)[0]; !strings.Contains(a.Detail, "3 alerts of detect.unknown-peer") || !strings.Contains(a.Detail, "node-3") {
		t.Fatalf("summary %q", a.Detail)
	}
	if st := d.Stats(); st.Alerts != 4 || st.Suppressed != 7 {
		t.Fatalf("stats %+v", st)
	}
	// Other rules are not affected.
	d.Event(audit.Event{Actor: "system", Action: "scan.infected", Object: "t1 x", From: "local", Result: audit.ResultDenied})
	c.Add(10 * time.Minute)
	peers(10, 11)
	want(t, d, "detect.unknown-peer warning node-0", "detect.unknown-peer warning node-1", "detect.unknown-peer warning node-2",
		"detect.unknown-peer warning *", "detect.malware critical t1", "detect.unknown-peer warning node-10")
}

func TestRulesJSON(t *testing.T) {
	def := DefaultRules()
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	var back Rules
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, def) {
		t.Fatalf("round trip:\n%s\n%+v", b, back)
	}
	if !strings.Contains(string(b), `"window":"1m0s"`) {
		t.Fatalf("durations are not strings: %s", b)
	}

	r := DefaultRules()
	if err := json.Unmarshal([]byte(`{"signin_failures":{"window":"10m","warning":3},"many_tenants":{"tenants":8},"off_hours":{"enabled":false}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.SignInFailures != (Burst{Window: Duration(10 * time.Minute), Warning: 3}) || r.ManyTenants.Tenants != 8 ||
		r.ManyTenants.Window != Duration(time.Hour) || r.OffHours.Enabled || len(r.OffHours.Actions) != 4 || !r.Malware {
		t.Fatalf("override: %+v", r)
	}
	if _, err := New(Config{Rules: &r}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"signin_failures":{"window":5}}`, `{"signin_failures":{"window":"-5m"}}`, `{"signin_failures":{"window":"soon"}}`} {
		r := DefaultRules()
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Rules)
		want string
	}{
		{"hours", func(r *Rules) { r.BusinessHours.Start = "7am" }, "business_hours"},
		{"zone", func(r *Rules) { r.BusinessHours.Zone = "Tokyo" }, "zone"},
		{"holiday", func(r *Rules) { r.BusinessHours.Holidays = []string{"20260101"} }, "holiday"},
		{"negative burst", func(r *Rules) { r.SignInFailures.Warning = -1 }, "signin_failures"},
		{"no window", func(r *Rules) { r.HandshakeFailures.Window = 0 }, "handshake_failures"},
		{"critical below warning", func(r *Rules) { r.HandshakeFailures.Critical = 5 }, "critical 5 below warning 20"},
		{"off hours without actions", func(r *Rules) { r.OffHours.Actions = nil }, "off_hours"},
		{"many tenants without window", func(r *Rules) { r.ManyTenants.Window = 0 }, "many_tenants"},
		{"volume factor", func(r *Rules) { r.Volume.Factor = 0.5 }, "volume"},
		{"degradation alpha", func(r *Rules) { r.Degradation.Alpha = 2 }, "degradation"},
		{"slow disk sustain", func(r *Rules) { r.SlowDisk.Sustain = 0 }, "slow_disk"},
		{"event rule name", func(r *Rules) {
			r.Events = append(r.Events, EventRule{Action: "x", Rule: "Bad Name", Severity: SeverityInfo})
		}, "events[3]"},
		{"event severity", func(r *Rules) {
			r.Events = append(r.Events, EventRule{Action: "x", Rule: "detect.x", Severity: "urgent"})
		}, "events[3]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := DefaultRules()
			tc.edit(&r)
			_, err := New(Config{Rules: &r})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("all disabled is fine", func(t *testing.T) {
		if _, err := New(Config{Rules: &Rules{BusinessHours: DefaultRules().BusinessHours}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRuleNames(t *testing.T) {
	for _, r := range []string{RuleHandshakeFailures, RuleSignInFailures, RuleUnknownPeer, RuleOffHours, RuleManyTenants, RuleVolumeSpike,
		RuleVolumeDrop, RuleDegradation, RuleBacklog, RuleFailingRecipient, RuleSlowDisk, RuleMalware} {
		if !ValidRule(r) || len(r) > 32 {
			t.Errorf("%q", r)
		}
	}
	for _, r := range []string{"", "Detect.x", "detect..x", "detect.", "9x", "a b"} {
		if ValidRule(r) {
			t.Errorf("%q valid", r)
		}
	}
}

func TestKeysAreBounded(t *testing.T) {
	c := &clock{t: wed10}
	d, err := New(Config{Now: c.Now, MaxKeys: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		d.Event(signInFailure(fmt.Sprintf("op:%d", i), fmt.Sprintf("198.51.%d.%d:1", i/256, i%256)))
		d.Event(recordView(fmt.Sprintf("op:%d", i), "t1"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.signAddr) > 100 || len(d.signOp) > 100 || len(d.tenants) > 100 {
		t.Fatalf("tracked %d addresses, %d operators, %d readers", len(d.signAddr), len(d.signOp), len(d.tenants))
	}
}

func TestCleanAndClip(t *testing.T) {
	if got := clean("a\nb\u202ec\xff", 100); got != "a b c\uFFFD" {
		t.Fatalf("clean: %q", got)
	}
	s := strings.Repeat("あ", 100) // 300 bytes
	if got := clip(s, 100); len(got) > 100 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "あ") {
		t.Fatalf("clip: %q", got)
	}
}
