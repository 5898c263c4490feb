package lgdata

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// japaneseHolidaysCSV is the embedded calendar; a string, so it is immutable.
//
//go:embed japanese-holidays.csv
var japaneseHolidaysCSV string

// holidaysHeader is the exact header row a holidays CSV must have.
const holidaysHeader = "date,name,name_en"

// JST returns the Japan Standard Time zone (UTC+9, no daylight saving) as a
// fixed zone, so that date arithmetic does not depend on the host's tzdata.
func JST() *time.Location {
	return time.FixedZone("JST", 9*60*60)
}

// Holiday is one Japanese public holiday.
type Holiday struct {
	// Year, Month and Day give the calendar date in Japan.
	Year  int
	Month time.Month
	Day   int
	// Name is the Japanese name, e.g. "元日" or "こどもの日 振替休日".
	Name string
	// NameEN is the English name, e.g. "New Year's Day".
	NameEN string
}

// Date returns the holiday as midnight JST of its date.
func (h Holiday) Date() time.Time {
	return time.Date(h.Year, h.Month, h.Day, 0, 0, 0, 0, JST())
}

// Holidays is a parsed, immutable calendar of Japanese public holidays (国民の
// 祝日, 振替休日 and 国民の休日). It is safe for concurrent use. The year-end
// closure (12/29–1/3) is not a public holiday and is not in the calendar
// (1/1 is, as 元日). The embedded data covers 2000–2050; dates after the
// latest official announcement of the equinoxes are predictions, so a
// deployment can supply its own calendar through ParseHolidays.
type Holidays struct {
	byDate   map[int]Holiday // key: year*10000 + month*100 + day
	first    int             // first covered year
	last     int             // last covered year
	holidays []Holiday       // ascending date order
}

// LoadHolidays parses the embedded calendar (japanese-holidays.csv, 2000–2050).
func LoadHolidays() (*Holidays, error) {
	h, err := ParseHolidays(strings.NewReader(japaneseHolidaysCSV))
	if err != nil {
		return nil, fmt.Errorf("lgdata: japanese-holidays.csv: %w", err)
	}
	return h, nil
}

// ParseHolidays reads a holiday calendar in the embedded file's format, for
// deployments that override the embedded calendar. The input must be CSV with
// the exact header "date,name,name_en", then one row per holiday: a
// YYYY-MM-DD date, a non-empty Japanese name and an English name (may be
// empty), dates strictly ascending (hence unique). The calendar is taken to
// cover every year from the first row's to the last row's.
func ParseHolidays(r io.Reader) (*Holidays, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("empty input, want header %q", holidaysHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if got := strings.Join(header, ","); got != holidaysHeader {
		return nil, fmt.Errorf("header is %q, want %q", got, holidaysHeader)
	}
	h := &Holidays{byDate: make(map[int]Holiday)}
	prevKey := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // *csv.ParseError names the line
		}
		line, _ := cr.FieldPos(0)
		d, err := time.Parse(time.DateOnly, rec[0])
		if err != nil || d.Format(time.DateOnly) != rec[0] {
			return nil, fmt.Errorf("line %d: date %q is not a YYYY-MM-DD calendar date", line, rec[0])
		}
		if rec[1] == "" || !utf8.ValidString(rec[1]) || !utf8.ValidString(rec[2]) {
			return nil, fmt.Errorf("line %d: %s: name must be non-empty valid UTF-8", line, rec[0])
		}
		hol := Holiday{Year: d.Year(), Month: d.Month(), Day: d.Day(), Name: rec[1], NameEN: rec[2]}
		key := dateKey(hol.Year, hol.Month, hol.Day)
		if key <= prevKey {
			return nil, fmt.Errorf("line %d: date %s is not after the previous row's; rows must be in strictly ascending date order", line, rec[0])
		}
		prevKey = key
		h.byDate[key] = hol
		h.holidays = append(h.holidays, hol)
	}
	if len(h.holidays) == 0 {
		return nil, fmt.Errorf("no rows after the header")
	}
	h.first, h.last = h.holidays[0].Year, h.holidays[len(h.holidays)-1].Year
	return h, nil
}

// IsHoliday reports whether the calendar date of d in Japan (d converted to
// JST, whatever d's own location) is a public holiday, and if so its Japanese
// name. For dates outside the covered years (see Years) it reports false; use
// Covers to tell "not a holiday" from "unknown".
func (h *Holidays) IsHoliday(d time.Time) (name string, ok bool) {
	hol, ok := h.Lookup(d)
	return hol.Name, ok
}

// Lookup is like IsHoliday but returns the whole Holiday.
func (h *Holidays) Lookup(d time.Time) (Holiday, bool) {
	y, m, day := d.In(JST()).Date()
	hol, ok := h.byDate[dateKey(y, m, day)]
	return hol, ok
}

// Years returns the first and last year the calendar covers.
func (h *Holidays) Years() (first, last int) {
	return h.first, h.last
}

// Covers reports whether the JST date of d falls in a year the calendar
// covers, i.e. whether IsHoliday's answer for d is authoritative.
func (h *Holidays) Covers(d time.Time) bool {
	y := d.In(JST()).Year()
	return y >= h.first && y <= h.last
}

// All returns every holiday in ascending date order, as a copy the caller
// owns.
func (h *Holidays) All() []Holiday {
	return slices.Clone(h.holidays)
}

func dateKey(y int, m time.Month, d int) int {
	return y*10000 + int(m)*100 + d
}
