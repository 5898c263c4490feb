package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
)

const (
	tenant  = "lg:011002"
	taxType = "income-tax-return"
	day     = 24 * time.Hour
)

var now = time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func openStore(t *testing.T) store.Inbox {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "node.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// add records a record of tenant and typ recorded at now+at.
func add(t *testing.T, st store.Inbox, n int, tenant, typ string, at time.Duration) store.Record {
	t.Helper()
	id := fmt.Sprintf("01JQ%022d", n)
	rec := store.Record{
		ID: id, Type: typ, Sender: "nta:hq", Recipient: tenant,
		Created: now.Add(at - time.Minute), RecordedAt: now.Add(at),
		Header: []byte(`{"id":"` + id + `"}`), Signature: []byte("sig"), Receipt: []byte(`{}`),
		CiphertextSize: 3,
	}
	got, _, err := st.Record(t.Context(), rec, bytes.NewReader([]byte("abc")))
	if err != nil {
		t.Fatalf("Record(%s): %v", id, err)
	}
	return got
}

// events collects the audit events and checks that each is valid.
type events struct {
	mu  sync.Mutex
	got []audit.Event
	t   *testing.T
}

func (e *events) record(ev audit.Event) {
	if err := ev.Validate(); err != nil {
		e.t.Errorf("invalid audit event %+v: %v", ev, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func (e *events) list() []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Event(nil), e.got...)
}

func quiet(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

func exists(t *testing.T, st store.Inbox, r store.Record) bool {
	t.Helper()
	_, err := st.Get(t.Context(), r.Recipient, r.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s): %v", r.ID, err)
	}
	return err == nil
}

var rule7d = []config.RetentionRule{{Tenant: tenant, Type: taxType, Keep: "7d"}}

func TestErasesOnlyExpired(t *testing.T) {
	st := openStore(t)
	old := add(t, st, 1, tenant, taxType, -10*day)
	recent := add(t, st, 2, tenant, taxType, -1*day)
	otherType := add(t, st, 3, tenant, "kyuyo-shiharai", -10*day)
	otherTenant := add(t, st, 4, "lg:131016", taxType, -10*day)
	ev := &events{t: t}
	var logs bytes.Buffer
	if err := Run(t.Context(), st, rule7d, nil, clock, ev.record, quiet(&logs)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if exists(t, st, old) {
		t.Errorf("record at -10d not erased by a 7d rule")
	}
	for _, r := range []store.Record{recent, otherType, otherTenant} {
		if !exists(t, st, r) {
			t.Errorf("record %s (%s, %s, %v) erased", r.ID, r.Recipient, r.Type, r.RecordedAt)
		}
	}
	got := ev.list()
	if len(got) != 1 {
		t.Fatalf("audit events = %+v, want one", got)
	}
	e := got[0]
	cutoff := now.Add(-7 * day).Format(time.RFC3339)
	if e.Action != "record.erase" || e.Actor != "retention" || e.Object != tenant+" "+taxType || e.Result != audit.ResultOK ||
		e.Detail != "1 records recorded before "+cutoff+": "+old.ID+"…"+old.ID {
		t.Errorf("audit event = %+v", e)
	}

	// A second pass finds nothing and records nothing.
	if err := Run(t.Context(), st, rule7d, nil, clock, ev.record, quiet(&logs)); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if n := len(ev.list()); n != 1 {
		t.Errorf("a pass that erased nothing recorded %d events in all, want still 1", n)
	}
}

func TestBatches(t *testing.T) {
	st := openStore(t)
	n := BatchSize + 5
	for i := range n {
		add(t, st, i, tenant, taxType, -10*day+time.Duration(i)*time.Second)
	}
	ev := &events{t: t}
	var logs bytes.Buffer
	if err := Run(t.Context(), st, []config.RetentionRule{{Tenant: tenant, Keep: "7d"}}, nil, clock, ev.record, quiet(&logs)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c, _ := st.Count(t.Context(), tenant); c != 0 {
		t.Errorf("%d records left, want 0", c)
	}
	got := ev.list()
	if len(got) != 2 || !strings.HasPrefix(got[0].Detail, fmt.Sprintf("%d records", BatchSize)) || !strings.HasPrefix(got[1].Detail, "5 records") ||
		got[0].Object != tenant+" *" {
		t.Errorf("audit events = %+v, want a batch of %d and one of 5 for %q", got, BatchSize, tenant+" *")
	}
}

func TestLegalHolds(t *testing.T) {
	for _, c := range []struct {
		name  string
		hold  config.LegalHold
		erase bool
	}{
		{"hold of all types", config.LegalHold{Tenant: tenant, Reason: "audit"}, false},
		{"hold of the type", config.LegalHold{Tenant: tenant, Type: taxType, Reason: "audit"}, false},
		{"hold until a later day", config.LegalHold{Tenant: tenant, Until: "2026-06-01", Reason: "audit"}, false},
		{"hold that expired", config.LegalHold{Tenant: tenant, Until: "2026-05-31", Reason: "audit"}, true},
		{"hold of another type", config.LegalHold{Tenant: tenant, Type: "kyuyo-shiharai", Reason: "audit"}, true},
		{"hold of another tenant", config.LegalHold{Tenant: "lg:131016", Reason: "audit"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			old := add(t, st, 1, tenant, taxType, -10*day)
			ev := &events{t: t}
			var logs bytes.Buffer
			if err := Run(t.Context(), st, rule7d, []config.LegalHold{c.hold}, clock, ev.record, quiet(&logs)); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if erased := !exists(t, st, old); erased != c.erase {
				t.Errorf("erased = %v, want %v", erased, c.erase)
			}
			if n := len(ev.list()); (n == 1) != c.erase {
				t.Errorf("%d audit events, want %d", n, map[bool]int{true: 1}[c.erase])
			}
			if held := strings.Contains(logs.String(), "legal hold"); held == c.erase {
				t.Errorf("log %q: mentions a legal hold = %v, want %v", logs.String(), held, !c.erase)
			}
			if strings.Contains(logs.String(), "audit") {
				t.Errorf("the hold's reason was logged: %q", logs.String())
			}
		})
	}
}

func TestAllTypesRuleStoppedByAnyHold(t *testing.T) {
	st := openStore(t)
	old := add(t, st, 1, tenant, "kyuyo-shiharai", -10*day)
	ev := &events{t: t}
	var logs bytes.Buffer
	holds := []config.LegalHold{{Tenant: tenant, Type: taxType, Reason: "x"}}
	if err := Run(t.Context(), st, []config.RetentionRule{{Tenant: tenant, Keep: "7d"}}, holds, clock, ev.record, quiet(&logs)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !exists(t, st, old) {
		t.Error("a rule for all types erased records although a hold of one of its types is in force")
	}
}

// failing is an inbox whose Erase fails.
type failing struct{ store.Inbox }

func (failing) Erase(context.Context, store.EraseQuery) (store.Erased, error) {
	return store.Erased{}, errors.New("disk on fire")
}

func TestFailureRecorded(t *testing.T) {
	ev := &events{t: t}
	var logs bytes.Buffer
	err := Run(t.Context(), failing{openStore(t)}, rule7d, nil, clock, ev.record, quiet(&logs))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Run error = %v", err)
	}
	got := ev.list()
	if len(got) != 1 || got[0].Result != audit.ResultError {
		t.Errorf("audit events = %+v, want one with result error", got)
	}
	if !strings.Contains(logs.String(), "ALERT") {
		t.Errorf("log %q has no ALERT", logs.String())
	}
}

func TestLoop(t *testing.T) {
	st := openStore(t)
	old := add(t, st, 1, tenant, taxType, -10*day)
	ev := &events{t: t}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, time.Hour, st, rule7d, nil, clock, ev.record, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(ev.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if exists(t, st, old) || len(ev.list()) != 1 {
		t.Errorf("Loop did not erase at once: events %+v", ev.list())
	}
}
