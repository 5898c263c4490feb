package export

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"taxlink/internal/audit"
)

// myNumberLike returns 12 digits with a valid 個人番号 check digit.
func myNumberLike() string {
	d := "12345678901"
	sum := 0
	for n := 1; n <= 11; n++ {
		w := n + 1
		if n > 6 {
			w = n - 5
		}
		sum += int(d[11-n]-'0') * w
	}
	check := 0
	if r := sum % 11; r > 1 {
		check = 11 - r
	}
	return d + string(rune('0'+check))
}

// TestRecordAuditWithholds: an event the audit log refuses because an ID
// looks like a 個人番号 is still recorded, without the offending fields.
func TestRecordAuditWithholds(t *testing.T) {
	e := newTestEnv(t)
	id := "0" + myNumberLike() + strings.Repeat("A", 13)
	ev := audit.Event{Actor: "export:x", Action: "export.fetch", Object: tenantA + " " + id, From: "127.0.0.1:1", Result: audit.ResultOK, Detail: "seq " + myNumberLike()}
	if err := ev.Validate(); err == nil {
		t.Fatal("the test event should be refused as it is")
	}
	if err := recordAudit(context.Background(), e.al, slog.New(slog.DiscardHandler), ev); err != nil {
		t.Fatal(err)
	}
	got := e.events()
	if len(got) != 1 || got[0].Object != tenantA || got[0].Action != "export.fetch" || strings.Contains(got[0].Detail, myNumberLike()) {
		t.Fatalf("recorded %+v", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:443", "127.0.0.1:443"},
		{"[::1]:443", "[::1]:443"},
		{"", "unknown"},
		{"a b", "unknown"},
		{"\x00", "unknown"},
		{strings.Repeat("1", 200), "unknown"},
	} {
		if got := auditFrom(tc.in); got != tc.want {
			t.Errorf("auditFrom(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
