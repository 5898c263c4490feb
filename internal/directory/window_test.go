package directory

import (
	"testing"
	"time"

	"taxlink/internal/lgdata"
)

// TestWindow checks the eLTAX-like calendar: weekdays 8:30–24:00 JST,
// closed on holidays and 12/29–1/3, with an exceptional open Sunday.
func TestWindow(t *testing.T) {
	hol, err := lgdata.LoadHolidays()
	if err != nil {
		t.Fatal(err)
	}
	w := Window{Weekdays: []int{1, 2, 3, 4, 5}, Open: "08:30", Close: "24:00", ClosedOnHolidays: true, ClosedYearEnd: true, OpenDays: []string{"2027-03-14"}}
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
	jst := lgdata.JST()
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, jst)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		when     string
		open     bool
		nextOpen string
	}{
		{"2026-12-01 08:29", false, "2026-12-01 08:30"}, // Tuesday before opening
		{"2026-12-01 08:30", true, ""},
		{"2026-12-01 23:59", true, ""},
		{"2026-12-05 12:00", false, "2026-12-07 08:30"}, // Saturday → Monday
		{"2026-12-29 10:00", false, "2027-01-04 08:30"}, // year end → first business day
		{"2027-01-11 10:00", false, "2027-01-12 08:30"}, // 成人の日
		{"2027-03-14 09:00", true, ""},                  // exceptional open Sunday
	}
	for _, c := range cases {
		open, next := w.Accepting(at(c.when), hol)
		if open != c.open {
			t.Errorf("%s: open=%v, want %v", c.when, open, c.open)
		}
		if !c.open && !next.Equal(at(c.nextOpen)) {
			t.Errorf("%s: next opening %s, want %s", c.when, next.In(jst).Format("2006-01-02 15:04"), c.nextOpen)
		}
	}
	if open, _ := (&Window{Always: true}).Accepting(at("2026-12-31 03:00"), hol); !open {
		t.Errorf("an always-open window closed")
	}
	for _, bad := range []Window{
		{Weekdays: []int{1}, Open: "09:00", Close: "08:00"},
		{Weekdays: []int{7}, Open: "09:00", Close: "18:00"},
		{Open: "09:00", Close: "18:00"},
		{Weekdays: []int{1}, Open: "9:00", Close: "18:00"},
		{Weekdays: []int{1}, Open: "09:00", Close: "18:00", OpenDays: []string{"2026-13-01"}},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("window %+v accepted", bad)
		}
	}
}
