package detect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"taxlink/internal/audit"
)

// pingRules raise one info alert per "test.ping" event, its subject the
// event's Object, and nothing else.
func pingRules() *Rules {
	return &Rules{
		BusinessHours: DefaultRules().BusinessHours,
		Events:        []EventRule{{Action: "test.ping", Rule: "detect.test", Severity: SeverityInfo}},
	}
}

func ping(i int) audit.Event {
	return audit.Event{Actor: "system", Action: "test.ping", Object: fmt.Sprintf("s%d", i), From: "local", Result: audit.ResultOK}
}

// collector is a sink that keeps what it receives.
type collector struct {
	mu  sync.Mutex
	got []Alert
}

func (c *collector) sink(name string) Sink {
	return SinkFunc(name, func(_ context.Context, a Alert) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got = append(c.got, a)
		return nil
	})
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDropsWhenQueueFull(t *testing.T) {
	var a, b collector
	d, err := New(Config{Rules: pingRules(), Sinks: []Sink{a.sink("a"), b.sink("b")}, QueueSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d.Event(ping(i)) // no Run yet: nothing drains the queues
	}
	st := d.Stats()
	if st.Alerts != 10 || len(st.Sinks) != 2 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range st.Sinks {
		if s.Dropped != 7 || s.Queued != 3 || s.Sent != 0 {
			t.Fatalf("sink stats %+v", s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	eventually(t, "the queued alerts", func() bool { return a.len() == 3 && b.len() == 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if a.got[0].Subject != "s0" || a.got[2].Subject != "s2" || a.got[0].Rule != "detect.test" {
		t.Fatalf("got %+v", a.got)
	}
	if st := d.Stats(); st.Sinks[0].Sent != 3 || st.Sinks[0].Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFailingSinksDoNotBlock(t *testing.T) {
	var hits atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer failing.Close()

	release := make(chan struct{})
	var blockedCalls atomic.Int64
	blocked := SinkFunc("blocked", func(ctx context.Context, a Alert) error {
		blockedCalls.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var good collector
	const n = 50
	d, err := New(Config{
		Rules:     pingRules(),
		Sinks:     []Sink{Webhook{URL: failing.URL + "/hook"}, blocked, good.sink("good")},
		QueueSize: 4,
		Retry:     Retry{Attempts: 3, Min: time.Millisecond, Max: 2 * time.Millisecond, Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()

	d.Event(ping(0))
	eventually(t, "the blocked sink to take the first alert", func() bool { return blockedCalls.Load() == 1 })
	var inEvent time.Duration
	for i := 1; i < n; i++ {
		start := time.Now()
		d.Event(ping(i)) // never blocks, whatever the sinks do
		inEvent += time.Since(start)
		// The good sink keeps up with every alert while the others are stuck.
		eventually(t, fmt.Sprintf("the good sink to get alert %d", i), func() bool { return good.len() == i+1 })
	}
	if inEvent > 5*time.Second {
		t.Fatalf("Event took %s in all", inEvent)
	}
	eventually(t, "the failing webhook to settle", func() bool {
		s := d.Stats().Sinks[0]
		return s.Failed+s.Dropped == n && s.Queued == 0
	})
	st := d.Stats()
	wh, bl, gd := st.Sinks[0], st.Sinks[1], st.Sinks[2]
	if wh.Sent != 0 || wh.Failed == 0 || wh.Retries != 2*wh.Failed || hits.Load() != int64(3*wh.Failed) {
		t.Fatalf("webhook stats %+v, %d hits", wh, hits.Load())
	}
	// One alert in the blocked sink's hands, 4 queued, the rest dropped.
	if bl.Sent != 0 || bl.Queued != 4 || bl.Dropped != n-5 || blockedCalls.Load() != 1 {
		t.Fatalf("blocked stats %+v, %d calls", bl, blockedCalls.Load())
	}
	if gd.Sent != n || gd.Dropped != 0 || gd.Failed != 0 {
		t.Fatalf("good stats %+v", gd)
	}
	close(release)
	eventually(t, "the blocked sink to drain", func() bool { s := d.Stats().Sinks[1]; return s.Sent == 5 && s.Queued == 0 })

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestRunStopsBlockedSink(t *testing.T) {
	blocked := SinkFunc("blocked", func(ctx context.Context, a Alert) error {
		<-ctx.Done()
		return ctx.Err()
	})
	d, err := New(Config{Rules: pingRules(), Sinks: []Sink{blocked}, Retry: Retry{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	d.Event(ping(1))
	eventually(t, "the alert to be taken", func() bool { return d.Stats().Sinks[0].Queued == 0 })
	d.Run(ctx) // a second Run returns at once
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := d.Stats().Sinks[0]; s.Failed != 1 || s.Sent != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	var calls atomic.Int64
	flaky := SinkFunc("flaky", func(ctx context.Context, a Alert) error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	d, err := New(Config{Rules: pingRules(), Sinks: []Sink{flaky}, Retry: Retry{Attempts: 5, Min: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	d.Event(ping(1))
	eventually(t, "delivery", func() bool { return d.Stats().Sinks[0].Sent == 1 })
	if s := d.Stats().Sinks[0]; s.Retries != 2 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAtLeast(t *testing.T) {
	var c collector
	s := AtLeast(SeverityWarning, c.sink("mail"))
	for _, sev := range []string{SeverityInfo, SeverityWarning, SeverityCritical} {
		if err := s.Send(context.Background(), Alert{Severity: sev}); err != nil {
			t.Fatal(err)
		}
	}
	if c.len() != 2 || c.got[0].Severity != SeverityWarning || s.Name() != "mail" {
		t.Fatalf("got %+v", c.got)
	}
	// The wrapped sink's configuration is still checked.
	if _, err := New(Config{Sinks: []Sink{AtLeast(SeverityCritical, Webhook{URL: "http://example.com/x"})}}); err == nil {
		t.Fatal("plain http to a remote host accepted")
	}
}

func TestNewChecksSinks(t *testing.T) {
	cases := []struct {
		name string
		sink Sink
	}{
		{"nil", nil},
		{"webhook http remote", Webhook{URL: "http://hooks.example.jp/x"}},
		{"webhook bad scheme", Webhook{URL: "ftp://hooks.example.jp/x"}},
		{"webhook relative", Webhook{URL: "/x"}},
		{"webhook user info", Webhook{URL: "https://u:p@hooks.example.jp/x"}},
		{"email no recipient", Email{Addr: "mail.example.jp:587", From: "taxlink@example.jp"}},
		{"email bad from", Email{Addr: "mail.example.jp:587", From: "taxlink", To: []string{"ops@example.jp"}}},
		{"email bad to", Email{Addr: "mail.example.jp:587", From: "taxlink@example.jp", To: []string{"ops@example.jp\r\nBcc: x@example.jp"}}},
		{"email no port", Email{Addr: "mail.example.jp", From: "taxlink@example.jp", To: []string{"ops@example.jp"}}},
		{"syslog network", &Syslog{Network: "tcp+tls", Addr: "127.0.0.1:514"}},
		{"syslog address", &Syslog{Network: "udp", Addr: "127.0.0.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(Config{Sinks: []Sink{tc.sink}}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	ok := []Sink{
		Webhook{URL: "https://hooks.example.jp/x", Secret: "s"},
		Webhook{URL: "http://127.0.0.1:8080/x"},
		Webhook{URL: "http://[::1]:8080/x"},
		Webhook{URL: "http://localhost:8080/x"},
		Email{Addr: "mail.example.jp:587", From: "Taxlink <taxlink@example.jp>", To: []string{"ops@example.jp", "運用 <ops2@example.jp>"}},
		&Syslog{Network: "tcp", Addr: "127.0.0.1:6514"},
		&Syslog{Addr: "127.0.0.1:514"},
		&Syslog{Network: "unix", Addr: "/dev/log"},
	}
	if _, err := New(Config{Sinks: ok}); err != nil {
		t.Fatal(err)
	}
}
