package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/ledger"
)

const testOrigin = "test.taxlink.invalid/audit"

// testClock returns a clock that advances one millisecond per reading.
func testClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}

// testOptions returns ledger options with a fresh key and testClock.
func testOptions(t *testing.T) ledger.Options {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Options{Origin: testOrigin, Signer: s, Verifier: v, Now: testClock()}
}

func okEvent() Event {
	return Event{Actor: "op:tanaka", Action: "auth.success", Object: "console", From: "192.0.2.7:51234", Result: ResultOK}
}

func TestRecordEventsReopenVerify(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	events := []Event{
		{Actor: "system", Action: "start", From: "local", Result: ResultOK, Detail: "taxlink hub v0.1"},
		okEvent(),
		{Actor: "op:sato", Action: "auth.failure", Object: "console", From: "[2001:db8::1]:443", Result: ResultDenied, Detail: "bad PIN (2 of 5)"},
		{Actor: "op:tanaka", Action: "record.open", Object: "01J9Z3K4M5N6P7Q8R9S0T1V2W3", From: "192.0.2.7:51234", Result: ResultOK, Detail: "団体 lg:011002 の通知を表示"},
		{Actor: "lg:011002", Action: "envelope.accept", Object: "01J9Z3K4M5N6P7Q8R9S0T1V2W4", From: "198.51.100.9:40000", Result: ResultError, Detail: "法人番号 1234567890123 <ok> & \"quoted\""},
	}
	for i, e := range events {
		e.Time = time.Unix(1, 0) // ignored
		idx, err := l.Record(ctx, e)
		if err != nil {
			t.Fatalf("Record(%d): %v", i, err)
		}
		if idx != int64(i) {
			t.Fatalf("Record(%d) returned index %d", i, idx)
		}
	}
	got, err := l.Events(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		want := events[i]
		want.Time = time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC).Add(time.Duration(i+1) * time.Millisecond)
		if e != want {
			t.Fatalf("event %d = %+v\nwant %+v", i, e, want)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Events(2, 9); !errors.Is(err, ledger.ErrRange) {
		t.Fatalf("Events beyond the log = %v, want ErrRange", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if again, err := l2.Events(3, 5); err != nil || again[0] != got[3] || again[1] != got[4] {
		t.Fatalf("Events(3, 5) after reopen = %v, %v", again, err)
	}
	l2.Close()
	rep, err := Verify(dir, opts)
	if err != nil || rep.Entries != 5 || rep.Checkpoints != 1 {
		t.Fatalf("Verify = %+v, %v; want 5 entries, 1 checkpoint", rep, err)
	}
}

func TestCanonicalEncoding(t *testing.T) {
	e := okEvent()
	e.Time = time.Date(2026, 3, 15, 18, 0, 0, 5, time.FixedZone("JST", 9*3600))
	e.Detail = `<b>"x"</b> & y`
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-03-15T09:00:00.000000005Z","actor":"op:tanaka","action":"auth.success","object":"console","from":"192.0.2.7:51234","result":"ok","detail":"<b>\"x\"</b> & y"}`
	if string(b) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, want)
	}
	back, err := ParseEvent(b)
	if err != nil {
		t.Fatalf("ParseEvent(Marshal): %v", err)
	}
	if !back.Time.Equal(e.Time) || back.Detail != e.Detail {
		t.Fatalf("ParseEvent = %+v", back)
	}
	for _, bad := range []string{
		strings.Replace(want, `"actor"`, `"Actor"`, 1),
		strings.Replace(want, `{`, `{"extra":1,`, 1),
		strings.Replace(want, `,"detail"`, ` ,"detail"`, 1),
		strings.Replace(want, `.000000005Z`, `.000000005+00:00`, 1),
		strings.Replace(want, `<b>`, `\u003cb>`, 1),
		want + "\n",
	} {
		if _, err := ParseEvent([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseEvent(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Event)
		field string // "" means valid
		pd    bool   // personal data
	}{
		{"valid", func(e *Event) {}, "", false},
		{"system actor, local", func(e *Event) { e.Actor, e.From = "system", "local" }, "", false},
		{"empty actor", func(e *Event) { e.Actor = "" }, "actor", false},
		{"actor with a space", func(e *Event) { e.Actor = "op tanaka" }, "actor", false},
		{"actor too long", func(e *Event) { e.Actor = strings.Repeat("a", MaxActorLen+1) }, "actor", false},
		{"action uppercase", func(e *Event) { e.Action = "Auth.Success" }, "action", false},
		{"action double dot", func(e *Event) { e.Action = "auth..success" }, "action", false},
		{"action trailing dot", func(e *Event) { e.Action = "auth." }, "action", false},
		{"no from", func(e *Event) { e.From = "" }, "from", false},
		{"unknown result", func(e *Event) { e.Result = "maybe" }, "result", false},
		{"newline in detail", func(e *Event) { e.Detail = "a\nforged line" }, "detail", false},
		{"escape in object", func(e *Event) { e.Object = "x\x1b[31m" }, "object", false},
		{"bidi override in detail", func(e *Event) { e.Detail = "abc\u202edcba" }, "detail", false},
		{"zero-width space in object", func(e *Event) { e.Object = "ten\u200bant" }, "object", false},
		{"invalid UTF-8", func(e *Event) { e.Detail = "\xff" }, "detail", false},
		{"detail too long", func(e *Event) { e.Detail = strings.Repeat("x", MaxDetailLen+1) }, "detail", false},
		{"My Number in detail", func(e *Event) { e.Detail = "taxpayer 123456789018 opened" }, "detail", true},
		{"My Number in object", func(e *Event) { e.Object = "mn:123456789018" }, "object", true},
		{"12 digits, bad check digit", func(e *Event) { e.Detail = "batch 123456789012" }, "", false},
		{"13-digit corporate number", func(e *Event) { e.Detail = "corp:1234567890123" }, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := okEvent()
			tt.edit(&e)
			err := e.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "field "+tt.field) {
				t.Fatalf("Validate = %v, want ErrInvalid naming field %s", err, tt.field)
			}
			if errors.Is(err, ErrPersonalData) != tt.pd {
				t.Fatalf("Validate = %v; ErrPersonalData match = %v, want %v", err, !tt.pd, tt.pd)
			}
		})
	}
}

func TestRecordRefusesAndAppendsNothing(t *testing.T) {
	l, err := Open(t.TempDir(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := okEvent()
	e.Detail = "個人番号 123456789018"
	if _, err := l.Record(context.Background(), e); !errors.Is(err, ErrPersonalData) {
		t.Fatalf("Record with a My Number = %v, want ErrPersonalData", err)
	}
	if l.Size() != 0 {
		t.Fatalf("a refused event was appended: size %d", l.Size())
	}
}

func TestConcurrentRecords(t *testing.T) {
	l, err := Open(t.TempDir(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := okEvent()
				e.Object = "tenant-" + string(rune('a'+w))
				e.Detail = strings.Repeat("x", i)
				if _, err := l.Record(context.Background(), e); err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	evs, err := l.Events(0, l.Size())
	if err != nil || len(evs) != workers*each {
		t.Fatalf("Events = %d events, %v; want %d", len(evs), err, workers*each)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := l.Record(context.Background(), okEvent()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()

	path := filepath.Join(dir, "entries")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(string(data), `"result":"ok"`)
	copy(data[i:], `"result":"no"`) // an operator turns a success into... anything
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(dir, opts)
	if !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), "entries record 4 at offset") {
		t.Fatalf("Verify of an edited event = %v, want ErrCorrupt naming entries record 4", err)
	}
}

func TestVerifyRefusesNonEvents(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	// A ledger with the audit log's origin whose entry is not an event.
	ll, err := ledger.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ll.Append(context.Background(), []byte(`{"time":"yesterday"}`)); err != nil {
		t.Fatal(err)
	}
	ll.Close()
	if _, err := Verify(dir, opts); !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), "entry 0 is not an audit event") {
		t.Fatalf("Verify = %v, want ErrCorrupt naming entry 0", err)
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Events(0, 1); !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("Events over a non-event = %v, want ErrCorrupt", err)
	}
}

func TestObserve(t *testing.T) {
	l, err := Open(t.TempDir(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var seen []string
	l.Observe(func(e Event) { seen = append(seen, e.Action) })
	if _, err := l.Record(context.Background(), Event{Actor: "op:a", Action: "auth.failure", From: "local", Result: ResultDenied}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(context.Background(), Event{Actor: "op:a", Action: "bad action!", From: "local", Result: ResultDenied}); err == nil {
		t.Fatal("an invalid event was recorded")
	}
	l.Observe(nil)
	if _, err := l.Record(context.Background(), Event{Actor: "op:a", Action: "auth.success", From: "local", Result: ResultOK}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "auth.failure" {
		t.Errorf("observed %v, want only the first recorded event", seen)
	}
}
