package directory

import (
	"fmt"
	"regexp"
	"time"

	"taxlink/internal/lgdata"
)

// Window is the hub's acceptance calendar, in Japan time. The zero Window
// (or Always) accepts at all times, as eLTAX now runs; otherwise the hub
// accepts on the listed weekdays between Open and Close, except on Japanese
// public holidays and 12/29–1/3 when those are closed, and except on
// ClosedDays; OpenDays open exceptional days (a filing-season weekend) with
// the same hours.
type Window struct {
	Always bool `json:"always,omitempty"`
	// Weekdays lists the days open, 0 = Sunday … 6 = Saturday.
	Weekdays []int `json:"weekdays,omitempty"`
	// Open and Close are "HH:MM" in Japan time; Close "24:00" is midnight.
	Open  string `json:"open,omitempty"`
	Close string `json:"close,omitempty"`
	// ClosedOnHolidays closes Japanese public holidays.
	ClosedOnHolidays bool `json:"closed_on_holidays,omitempty"`
	// ClosedYearEnd closes 12/29 to 1/3.
	ClosedYearEnd bool `json:"closed_year_end,omitempty"`
	// OpenDays and ClosedDays are "YYYY-MM-DD" exceptions; OpenDays win.
	OpenDays   []string `json:"open_days,omitempty"`
	ClosedDays []string `json:"closed_days,omitempty"`
}

var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-4]):([0-5][0-9])$`)

func minutes(s string) (int, bool) {
	m := hhmm.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v := int(m[1][0]-'0')*600 + int(m[1][1]-'0')*60 + int(m[2][0]-'0')*10 + int(m[2][1]-'0')
	return v, v <= 24*60
}

// validate checks w.
func (w *Window) validate() error {
	if w.Always || w.empty() {
		return nil
	}
	open, ok1 := minutes(w.Open)
	closeAt, ok2 := minutes(w.Close)
	if !ok1 || !ok2 || open >= closeAt {
		return invalid("window: open %q and close %q must be HH:MM with open before close", w.Open, w.Close)
	}
	if len(w.Weekdays) == 0 {
		return invalid("window: weekdays empty (use always for 24/7)")
	}
	for _, d := range w.Weekdays {
		if d < 0 || d > 6 {
			return invalid("window: weekday %d: expected 0 (Sunday) to 6", d)
		}
	}
	for _, days := range [][]string{w.OpenDays, w.ClosedDays} {
		for _, d := range days {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				return invalid("window: day %q: expected YYYY-MM-DD", d)
			}
		}
	}
	return nil
}

func (w *Window) empty() bool {
	return len(w.Weekdays) == 0 && w.Open == "" && w.Close == "" && !w.ClosedOnHolidays && !w.ClosedYearEnd && len(w.OpenDays) == 0 && len(w.ClosedDays) == 0
}

// Accepting reports whether the hub accepts at time now, and when not, the
// next time it opens (within 14 days; zero if none is found).
func (w *Window) Accepting(now time.Time, hol *lgdata.Holidays) (bool, time.Time) {
	if w == nil || w.Always || w.empty() {
		return true, time.Time{}
	}
	jst := lgdata.JST()
	t := now.In(jst)
	if w.openAt(t, hol) {
		return true, time.Time{}
	}
	// Find the next opening minute by minute steps over days: check the
	// opening time of today and the next 14 days.
	open, _ := minutes(w.Open)
	for d := 0; d <= 14; d++ {
		day := time.Date(t.Year(), t.Month(), t.Day()+d, 0, 0, 0, 0, jst)
		at := day.Add(time.Duration(open) * time.Minute)
		if at.After(t) && w.openAt(at, hol) {
			return false, at
		}
	}
	return false, time.Time{}
}

func (w *Window) openAt(t time.Time, hol *lgdata.Holidays) bool {
	date := t.Format(time.DateOnly)
	open, _ := minutes(w.Open)
	closeAt, _ := minutes(w.Close)
	m := t.Hour()*60 + t.Minute()
	if m < open || m >= closeAt {
		return false
	}
	for _, d := range w.OpenDays {
		if d == date {
			return true
		}
	}
	for _, d := range w.ClosedDays {
		if d == date {
			return false
		}
	}
	if w.ClosedYearEnd {
		if (t.Month() == time.December && t.Day() >= 29) || (t.Month() == time.January && t.Day() <= 3) {
			return false
		}
	}
	if w.ClosedOnHolidays && hol != nil {
		if _, ok := hol.IsHoliday(t); ok {
			return false
		}
	}
	for _, d := range w.Weekdays {
		if int(t.Weekday()) == d {
			return true
		}
	}
	return false
}

// String describes w for operators.
func (w *Window) String() string {
	if w == nil || w.Always || w.empty() {
		return "always open"
	}
	return fmt.Sprintf("weekdays %v %s–%s JST, holidays closed: %v, 12/29–1/3 closed: %v", w.Weekdays, w.Open, w.Close, w.ClosedOnHolidays, w.ClosedYearEnd)
}
