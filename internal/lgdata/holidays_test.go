package lgdata

import (
	"strings"
	"testing"
	"time"
)

func TestLoadHolidaysEmbedded(t *testing.T) {
	h, err := LoadHolidays()
	if err != nil {
		t.Fatalf("LoadHolidays: %v", err)
	}
	if n := len(h.All()); n != 895 {
		t.Errorf("calendar has %d holidays, want 895 (rows of japanese-holidays.csv)", n)
	}
	if first, last := h.Years(); first != 2000 || last != 2050 {
		t.Errorf("Years() = %d, %d; want 2000, 2050", first, last)
	}

	jst := JST()
	tests := []struct {
		date     time.Time
		wantName string // "" means not a holiday
	}{
		{time.Date(2024, 1, 1, 0, 0, 0, 0, jst), "元日"},
		{time.Date(2024, 1, 1, 23, 59, 59, 0, jst), "元日"},
		{time.Date(2024, 1, 2, 0, 0, 0, 0, jst), ""}, // year-end closure, not a holiday
		{time.Date(2024, 12, 29, 12, 0, 0, 0, jst), ""},
		{time.Date(2024, 5, 6, 9, 0, 0, 0, jst), "こどもの日 振替休日"},
		{time.Date(2024, 5, 7, 9, 0, 0, 0, jst), ""},
		{time.Date(2019, 5, 1, 9, 0, 0, 0, jst), "休日（祝日扱い）"},
		{time.Date(2020, 7, 24, 9, 0, 0, 0, jst), "スポーツの日"},
		{time.Date(2050, 11, 23, 9, 0, 0, 0, jst), "勤労感謝の日"},
		// The date is taken in JST, whatever the input's location:
		// 2023-12-31 15:00 UTC is 2024-01-01 00:00 JST.
		{time.Date(2023, 12, 31, 15, 0, 0, 0, time.UTC), "元日"},
		{time.Date(2023, 12, 31, 14, 59, 59, 0, time.UTC), ""},
		// 2024-01-01 20:00 in UTC-10 is 2024-01-02 15:00 JST.
		{time.Date(2024, 1, 1, 20, 0, 0, 0, time.FixedZone("HST", -10*3600)), ""},
		{time.Date(1999, 1, 1, 0, 0, 0, 0, jst), ""}, // not covered
	}
	for _, tt := range tests {
		name, ok := h.IsHoliday(tt.date)
		if ok != (tt.wantName != "") || name != tt.wantName {
			t.Errorf("IsHoliday(%s) = %q, %v; want %q, %v", tt.date.Format(time.RFC3339), name, ok, tt.wantName, tt.wantName != "")
		}
	}

	hol, ok := h.Lookup(time.Date(2024, 1, 1, 0, 0, 0, 0, jst))
	if !ok || hol.NameEN != "New Year's Day" || !hol.Date().Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, jst)) {
		t.Errorf("Lookup(2024-01-01) = %+v, %v; want 元日 / New Year's Day on 2024-01-01 JST", hol, ok)
	}
	if !h.Covers(time.Date(2000, 1, 1, 0, 0, 0, 0, jst)) || !h.Covers(time.Date(2050, 12, 31, 0, 0, 0, 0, jst)) {
		t.Error("Covers must be true for 2000-01-01 and 2050-12-31 JST")
	}
	if h.Covers(time.Date(1999, 12, 31, 14, 59, 0, 0, time.UTC)) || h.Covers(time.Date(2051, 1, 1, 0, 0, 0, 0, jst)) {
		t.Error("Covers must be false for 1999-12-31 23:59 JST and 2051-01-01 JST")
	}
}

func TestParseHolidaysRejects(t *testing.T) {
	const header = "date,name,name_en\n"
	tests := []struct {
		name, csv, wantErr string
	}{
		{"empty", "", "empty input"},
		{"header only", header, "no rows"},
		{"bad header", "day,name,name_en\n2024-01-01,元日,New Year's Day\n", "header is"},
		{"two columns", header + "2024-01-01,元日\n", "wrong number of fields"},
		{"bad date", header + "2024-02-30,元日,x\n", `line 2: date "2024-02-30"`},
		{"slash date", header + "2024/01/01,元日,x\n", `line 2: date "2024/01/01"`},
		{"empty name", header + "2024-01-01,,New Year's Day\n", "line 2: 2024-01-01: name must be"},
		{"duplicate", header + "2024-01-01,元日,x\n2024-01-01,元日,x\n", "line 3: date 2024-01-01 is not after"},
		{"out of order", header + "2024-01-08,成人の日,x\n2024-01-01,元日,x\n", "line 3: date 2024-01-01 is not after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHolidays(strings.NewReader(tt.csv))
			if err == nil {
				t.Fatalf("ParseHolidays accepted bad input (%d holidays); want error containing %q", len(h.All()), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseHolidaysOverride(t *testing.T) {
	h, err := ParseHolidays(strings.NewReader("date,name,name_en\n2030-01-01,元日,New Year's Day\n2030-12-31,大晦日（臨時）,\n"))
	if err != nil {
		t.Fatalf("ParseHolidays: %v", err)
	}
	if name, ok := h.IsHoliday(time.Date(2030, 12, 31, 10, 0, 0, 0, JST())); !ok || name != "大晦日（臨時）" {
		t.Errorf("override calendar: IsHoliday(2030-12-31) = %q, %v; want 大晦日（臨時）, true", name, ok)
	}
	if first, last := h.Years(); first != 2030 || last != 2030 {
		t.Errorf("override calendar Years() = %d, %d; want 2030, 2030", first, last)
	}
}
