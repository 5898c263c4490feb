package scan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	t0       = time.Date(2026, 4, 1, 9, 0, 0, 123456789, time.UTC)
	vClean   = Verdict{Clean: true, Scanner: "ClamAV 1.4.6"}
	vInfect  = Verdict{Signature: "Taxlink.Test.Signature-1.UNOFFICIAL", Scanner: "ClamAV 1.4.6"}
	vInfect2 = Verdict{Signature: "Other.Sig", Scanner: "ClamAV 1.4.6"}
)

func openLedger(t *testing.T, path string) *Ledger {
	t.Helper()
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatalf("OpenLedger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustRecord(t *testing.T, l *Ledger, tenant, id string, v Verdict, at time.Time) {
	t.Helper()
	if err := l.Record(tenant, id, v, at); err != nil {
		t.Fatalf("Record(%q, %q): %v", tenant, id, err)
	}
}

type wantState struct {
	tenant, id string
	state      State
	verdict    Verdict
	ok         bool
}

func checkStates(t *testing.T, l *Ledger, wants []wantState) {
	t.Helper()
	for _, w := range wants {
		st, v, ok := l.State(w.tenant, w.id)
		if st != w.state || v != w.verdict || ok != w.ok {
			t.Errorf("State(%q, %q) = %v, %+v, %v; want %v, %+v, %v", w.tenant, w.id, st, v, ok, w.state, w.verdict, w.ok)
		}
	}
}

func TestLedgerRecordReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scan.jsonl")
	l := openLedger(t, path)
	mustRecord(t, l, "t1", "a", vClean, t0)
	mustRecord(t, l, "t1", "b", vInfect, t0.Add(2*time.Hour))
	mustRecord(t, l, "t2", "b", vInfect2, t0.Add(time.Hour))
	mustRecord(t, l, "t2", "c", vClean, t0)
	// Quarantine is sticky: a later clean verdict does not release it.
	mustRecord(t, l, "t1", "b", vClean, t0.Add(3*time.Hour))
	// Between clean verdicts the latest wins; an infected one quarantines.
	vClean2 := Verdict{Clean: true, Scanner: "ClamAV 1.4.7"}
	mustRecord(t, l, "t2", "c", vClean2, t0.Add(time.Minute))
	mustRecord(t, l, "t1", "a", vInfect2, t0.Add(4*time.Hour))

	wants := []wantState{
		{"t1", "a", Quarantined, vInfect2, true},
		{"t1", "b", Quarantined, vInfect, true},
		{"t2", "b", Quarantined, vInfect2, true},
		{"t2", "c", Clean, vClean2, true},
		{"t1", "c", Pending, Verdict{}, false},
		{"t3", "a", Pending, Verdict{}, false},
	}
	wantQ := []Entry{
		{"t2", "b", vInfect2, t0.Add(time.Hour)},
		{"t1", "b", vInfect, t0.Add(2 * time.Hour)},
		{"t1", "a", vInfect2, t0.Add(4 * time.Hour)},
	}
	check := func(l *Ledger) {
		t.Helper()
		checkStates(t, l, wants)
		q := l.Quarantined()
		if len(q) != len(wantQ) {
			t.Fatalf("Quarantined() = %+v, want %+v", q, wantQ)
		}
		for i := range q {
			if q[i].Tenant != wantQ[i].Tenant || q[i].ID != wantQ[i].ID || q[i].Verdict != wantQ[i].Verdict || !q[i].At.Equal(wantQ[i].At) {
				t.Errorf("Quarantined()[%d] = %+v, want %+v", i, q[i], wantQ[i])
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record("t1", "z", vClean, t0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Record after Close = %v, want os.ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close = %v, want os.ErrClosed", err)
	}

	l2 := openLedger(t, path)
	check(l2)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 7 {
		t.Errorf("file has %d lines, want 7", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestLedgerTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scan.jsonl")
	l := openLedger(t, path)
	mustRecord(t, l, "t1", "a", vClean, t0)
	mustRecord(t, l, "t1", "b", vInfect, t0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	complete := lines[0] // a whole line, but without its newline
	tests := []struct {
		name string
		tail string
	}{
		{"partial json", `{"v":1,"tenant":"t1","id":"c","cle`},
		{"complete object without newline", strings.TrimSuffix(complete, "\n")},
		{"zero fill", "\x00\x00\x00\x00\x00\x00"},
		{"single byte", "{"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "scan.jsonl")
			if err := os.WriteFile(p, append(append([]byte(nil), good...), tc.tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			l := openLedger(t, p)
			checkStates(t, l, []wantState{
				{"t1", "a", Clean, vClean, true},
				{"t1", "b", Quarantined, vInfect, true},
				{"t1", "c", Pending, Verdict{}, false},
			})
			// The torn tail is cut off, so new lines append cleanly.
			mustRecord(t, l, "t1", "c", vInfect2, t0)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLedger(t, p)
			checkStates(t, l2, []wantState{{"t1", "c", Quarantined, vInfect2, true}})
			if n := len(l2.Quarantined()); n != 2 {
				t.Errorf("%d quarantined after reopen, want 2", n)
			}
		})
	}
}

func TestLedgerMalformedLine(t *testing.T) {
	ok := `{"v":1,"tenant":"t1","id":"a","clean":true,"scanner":"ClamAV","at":"2026-04-01T09:00:00Z"}`
	tests := []struct {
		name string
		bad  string
	}{
		{"garbage", "garbage"},
		{"blank", ""},
		{"truncated object", `{"v":1,"tenant":"t1"`},
		{"trailing data", ok + ` {}`},
		{"two objects", ok + ok},
		{"unknown field", `{"v":1,"tenant":"t1","id":"a","clean":true,"scanner":"","at":"2026-04-01T09:00:00Z","payload":"x"}`},
		{"missing clean", `{"v":1,"tenant":"t1","id":"a","scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"missing at", `{"v":1,"tenant":"t1","id":"a","clean":true,"scanner":""}`},
		{"missing version", `{"tenant":"t1","id":"a","clean":true,"scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"future version", `{"v":2,"tenant":"t1","id":"a","clean":true,"scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"empty tenant", `{"v":1,"tenant":"","id":"a","clean":true,"scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"control in id", `{"v":1,"tenant":"t1","id":"a\u0007","clean":true,"scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"clean with signature", `{"v":1,"tenant":"t1","id":"a","clean":true,"signature":"X","scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"infected without signature", `{"v":1,"tenant":"t1","id":"a","clean":false,"scanner":"","at":"2026-04-01T09:00:00Z"}`},
		{"bad time", `{"v":1,"tenant":"t1","id":"a","clean":true,"scanner":"","at":"yesterday"}`},
		{"zero time", `{"v":1,"tenant":"t1","id":"a","clean":true,"scanner":"","at":"0001-01-01T00:00:00Z"}`},
		{"not an object", `[1,2,3]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "scan.jsonl")
			content := ok + "\n" + ok + "\n" + tc.bad + "\n" + ok + "\n"
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := OpenLedger(p)
			if err == nil {
				l.Close()
				t.Fatalf("OpenLedger accepted malformed line %q", tc.bad)
			}
			if !strings.Contains(err.Error(), "line 3:") {
				t.Errorf("error %q does not name line 3", err)
			}
			// The file is left as it was.
			if b, _ := os.ReadFile(p); string(b) != content {
				t.Error("OpenLedger modified a refused file")
			}
		})
	}
	// A malformed last line that does end in a newline is not torn.
	t.Run("malformed complete last line", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "scan.jsonl")
		if err := os.WriteFile(p, []byte(ok+"\ngarbage\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenLedger(p); err == nil || !strings.Contains(err.Error(), "line 2:") {
			t.Fatalf("OpenLedger = %v, want an error naming line 2", err)
		}
	})
}

func TestLedgerValidation(t *testing.T) {
	l := openLedger(t, filepath.Join(t.TempDir(), "scan.jsonl"))
	long := strings.Repeat("x", 257)
	tests := []struct {
		name       string
		tenant, id string
		v          Verdict
		at         time.Time
		ok         bool
	}{
		{"valid clean", "tenant 1", "rec/1", vClean, t0, true},
		{"valid max lengths", strings.Repeat("t", 256), strings.Repeat("i", 256), Verdict{Signature: strings.Repeat("s", 200), Scanner: strings.Repeat("v", 256)}, t0, true},
		{"valid html chars", `<t&"\>`, `<i>`, Verdict{Signature: `Sig<&>"\`, Scanner: "<v>"}, t0, true},
		{"empty tenant", "", "a", vClean, t0, false},
		{"long tenant", long, "a", vClean, t0, false},
		{"non-ASCII tenant", "東京都", "a", vClean, t0, false},
		{"newline in tenant", "t\n1", "a", vClean, t0, false},
		{"empty id", "t", "", vClean, t0, false},
		{"long id", "t", long, vClean, t0, false},
		{"DEL in id", "t", "a\x7f", vClean, t0, false},
		{"clean with signature", "t", "a", Verdict{Clean: true, Signature: "X"}, t0, false},
		{"infected without signature", "t", "a", Verdict{}, t0, false},
		{"long signature", "t", "a", Verdict{Signature: strings.Repeat("s", 201)}, t0, false},
		{"non-printable signature", "t", "a", Verdict{Signature: "Sig\x00"}, t0, false},
		{"signature with leading space", "t", "a", Verdict{Signature: " Sig"}, t0, false},
		{"long scanner", "t", "a", Verdict{Clean: true, Scanner: long}, t0, false},
		{"zero time", "t", "a", vClean, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Record(tc.tenant, tc.id, tc.v, tc.at)
			if tc.ok && err != nil {
				t.Fatalf("Record: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("Record accepted invalid input")
				}
				if st, _, ok := l.State(tc.tenant, tc.id); ok || st != Pending {
					t.Errorf("refused record has state %v", st)
				}
			}
		})
	}
	// Everything accepted reads back.
	path := l.path
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLedger(t, path)
	checkStates(t, l2, []wantState{
		{"tenant 1", "rec/1", Clean, vClean, true},
		{`<t&"\>`, `<i>`, Quarantined, Verdict{Signature: `Sig<&>"\`, Scanner: "<v>"}, true},
	})
}

func TestLedgerConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scan.jsonl")
	l := openLedger(t, path)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				v := vClean
				if i%5 == 0 {
					v = vInfect
				}
				if err := l.Record(fmt.Sprintf("t%d", w), fmt.Sprintf("r%d", i), v, t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Error(err)
				}
				l.State("t0", "r0")
				l.Quarantined()
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLedger(t, path)
	if n := len(l2.Quarantined()); n != 20 {
		t.Errorf("%d quarantined, want 20", n)
	}
	if st, _, _ := l2.State("t3", "r24"); st != Clean {
		t.Errorf("State(t3, r24) = %v, want clean", st)
	}
}

func TestOpenLedgerMissingDir(t *testing.T) {
	if _, err := OpenLedger(filepath.Join(t.TempDir(), "no", "such", "scan.jsonl")); err == nil {
		t.Fatal("OpenLedger in a missing directory succeeded")
	}
}
