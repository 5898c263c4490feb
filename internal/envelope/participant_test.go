package envelope

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidParticipantID(t *testing.T) {
	valid := []string{
		"lg:011002",          // 札幌市
		"lg:130001",          // 東京都
		"lg:012025",          // 函館市
		"lg:131016",          // 千代田区
		"lg:472018",          // 那覇市
		"corp:7000012050002", // 国税庁
		"corp:1180301018771", // トヨタ自動車
		"nta:e-tax",          //
		"nta:0",              //
		"hub:main",           //
		"hub:" + strings.Repeat("a", 63),
	}
	for _, id := range valid {
		if err := ValidParticipantID(id); err != nil {
			t.Errorf("ValidParticipantID(%q) = %v, want nil", id, err)
		}
	}

	invalid := []struct {
		id, want string // want: substring of the error message
	}{
		{"lg:011003", "lg:011003: check digit is 3, expected 2"},
		{"lg:130002", "check digit is 2, expected 1"},
		{"lg:01100", "exactly 6 ASCII digits"},
		{"lg:0110022", "exactly 6 ASCII digits"},
		{"lg:01100a", "exactly 6 ASCII digits"},
		{"lg:01100２", "exactly 6 ASCII digits"},
		{"lg:000001", "prefecture code 00"}, // check digit alone would accept it
		{"lg:480005", "prefecture code 48"},
		{"lg:", "exactly 6 ASCII digits"},
		{"corp:8000012050002", "check digit is 8, expected 7"},
		{"corp:0000012050002", "check digit is 0, expected 7"},
		{"corp:700001205000", "exactly 13 ASCII digits"},
		{"corp:70000120500021", "exactly 13 ASCII digits"},
		{"nta:E-tax", "does not match"},
		{"nta:-tax", "does not match"},
		{"nta:", "does not match"},
		{"nta:e_tax", "does not match"},
		{"hub:" + strings.Repeat("a", 64), "longer than 67 bytes"},
		{"city:011002", "unknown kind"},
		{"LG:011002", "unknown kind"},
		{"lg011002", "missing kind prefix"},
		{"", "missing kind prefix"},
		{" lg:011002", "unknown kind"},
		{"lg:011002\n", "exactly 6 ASCII digits"},
		{"hub:main\x00", "does not match"},
	}
	for _, tc := range invalid {
		err := ValidParticipantID(tc.id)
		switch {
		case err == nil:
			t.Errorf("ValidParticipantID(%q) = nil, want error containing %q", tc.id, tc.want)
		case !errors.Is(err, ErrBadParticipantID):
			t.Errorf("ValidParticipantID(%q) = %v, does not wrap ErrBadParticipantID", tc.id, err)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("ValidParticipantID(%q) = %q, want it to contain %q", tc.id, err, tc.want)
		case strings.ContainsAny(err.Error(), "\x00\n"):
			t.Errorf("ValidParticipantID(%q) error contains raw control bytes: %q", tc.id, err)
		}
	}
}

func TestParticipantKind(t *testing.T) {
	for id, want := range map[string]string{
		"lg:011002": KindLG, "corp:7000012050002": KindCorp, "nta:e-tax": KindNTA,
		"hub:main": KindHub, "lg:011003": "", "x:y": "",
	} {
		if got := ParticipantKind(id); got != want {
			t.Errorf("ParticipantKind(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestLGCheckDigitUnique checks the check-digit rule independently of the
// examples: for every 5-digit prefix of prefecture 01 and 47 exactly one of
// the ten possible last digits is accepted, and it is the documented one.
func TestLGCheckDigitUnique(t *testing.T) {
	for _, pref := range []int{1, 13, 47} {
		for rest := 0; rest < 1000; rest++ {
			prefix := fmt.Sprintf("%02d%03d", pref, rest)
			s := 0
			for i, w := range []int{6, 5, 4, 3, 2} {
				s += int(prefix[i]-'0') * w
			}
			want := (11 - s%11) % 10
			for d := 0; d <= 9; d++ {
				code := fmt.Sprintf("%s%d", prefix, d)
				err := ValidLGCode(code)
				if (err == nil) != (d == want) {
					t.Fatalf("ValidLGCode(%q) = %v; the check digit for %s is %d", code, err, prefix, want)
				}
			}
		}
	}
}

func TestCorporateNumberCheckDigitUnique(t *testing.T) {
	for _, base := range []string{"000012050002", "180301018771", "130001011420", "999999999999", "000000000000"} {
		accepted := 0
		for d := '0'; d <= '9'; d++ {
			if ValidCorporateNumber(string(d)+base) == nil {
				accepted++
			}
		}
		if accepted != 1 {
			t.Errorf("base %s: %d check digits accepted, want exactly 1", base, accepted)
		}
	}
	if err := ValidCorporateNumber("1130001011420"); err != nil { // 任天堂
		t.Errorf("ValidCorporateNumber(1130001011420) = %v", err)
	}
	if err := ValidCorporateNumber("113000101142x"); !errors.Is(err, ErrBadParticipantID) {
		t.Errorf("ValidCorporateNumber with a letter = %v, want ErrBadParticipantID", err)
	}
}
