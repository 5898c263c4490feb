package envelope

import (
	"fmt"
	"strings"
)

// Participant kinds, the part of a participant ID before the colon.
const (
	KindLG   = "lg"   // municipality (地方公共団体), rest is a 6-digit 全国地方公共団体コード
	KindNTA  = "nta"  // National Tax Agency system, rest is a lowercase name
	KindCorp = "corp" // corporation, rest is a 13-digit 法人番号
	KindHub  = "hub"  // relay hub, rest is a lowercase name
)

// maxParticipantIDLen bounds every participant ID: "nta:"/"hub:" plus a
// 63-character name is the longest form.
const maxParticipantIDLen = 4 + 63

// ValidParticipantID reports whether s is a well-formed participant ID of
// the form kind:rest, returning nil if it is and otherwise an error wrapping
// ErrBadParticipantID that says what is wrong. Accepted forms:
//
//   - lg:NNNNNN   a 全国地方公共団体コード accepted by ValidLGCode
//   - corp:NNNNNNNNNNNNN  a 法人番号 accepted by ValidCorporateNumber
//   - nta:name, hub:name  name matching ^[a-z0-9][a-z0-9-]{0,62}$
func ValidParticipantID(s string) error {
	if p := participantProblem(s); p != "" {
		return fmt.Errorf("%w: %s", ErrBadParticipantID, p)
	}
	return nil
}

// ParticipantKind returns the kind of a valid participant ID (KindLG,
// KindNTA, KindCorp or KindHub), or "" if s is not valid.
func ParticipantKind(s string) string {
	if participantProblem(s) != "" {
		return ""
	}
	kind, _, _ := strings.Cut(s, ":")
	return kind
}

// participantProblem returns "" if s is a valid participant ID and
// otherwise a description of the first problem found, without any error
// prefix so that callers can embed it in field-specific messages.
func participantProblem(s string) string {
	if len(s) > maxParticipantIDLen {
		return fmt.Sprintf("%s: longer than %d bytes", show(s), maxParticipantIDLen)
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Sprintf("%s: missing kind prefix (lg:, nta:, corp:, hub:)", show(s))
	}
	switch kind {
	case KindLG:
		if p := lgCodeProblem(rest); p != "" {
			return show(s) + ": " + p
		}
	case KindCorp:
		if p := corporateNumberProblem(rest); p != "" {
			return show(s) + ": " + p
		}
	case KindNTA, KindHub:
		if !isName(rest) {
			return fmt.Sprintf("%s: name does not match ^[a-z0-9][a-z0-9-]{0,62}$", show(s))
		}
	default:
		return fmt.Sprintf("%s: unknown kind %s (want lg, nta, corp or hub)", show(s), show(kind))
	}
	return ""
}

// isName matches ^[a-z0-9][a-z0-9-]{0,62}$.
func isName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidLGCode reports whether code is a valid 6-digit 全国地方公共団体コード
// (JIS X 0401/0402 with check digit): six ASCII digits, a prefecture code
// 01..47 in the first two, and a check digit d6 equal to (11 − S mod 11)
// mod 10 where S = 6·d1 + 5·d2 + 4·d3 + 3·d4 + 2·d5. Errors wrap
// ErrBadParticipantID.
func ValidLGCode(code string) error {
	if p := lgCodeProblem(code); p != "" {
		return fmt.Errorf("%w: %s: %s", ErrBadParticipantID, show(code), p)
	}
	return nil
}

func lgCodeProblem(code string) string {
	if len(code) != 6 || !allDigits(code) {
		return "local government code must be exactly 6 ASCII digits"
	}
	// Prefecture codes run 01 (Hokkaido) to 47 (Okinawa); anything else
	// cannot be a real municipality even if the check digit happens to fit.
	if pref := int(code[0]-'0')*10 + int(code[1]-'0'); pref < 1 || pref > 47 {
		return fmt.Sprintf("prefecture code %s is not in 01..47", code[:2])
	}
	s := 0
	for i, w := range [5]int{6, 5, 4, 3, 2} {
		s += int(code[i]-'0') * w
	}
	want := byte((11-s%11)%10) + '0'
	if code[5] != want {
		return fmt.Sprintf("check digit is %c, expected %c", code[5], want)
	}
	return ""
}

// ValidCorporateNumber reports whether n is a valid 13-digit 法人番号: the
// first digit is a check digit equal to 9 − (S mod 9), where S sums the 12
// following base digits weighted 1, 2, 1, 2, … starting from the rightmost
// base digit. Errors wrap ErrBadParticipantID.
func ValidCorporateNumber(n string) error {
	if p := corporateNumberProblem(n); p != "" {
		return fmt.Errorf("%w: %s: %s", ErrBadParticipantID, show(n), p)
	}
	return nil
}

func corporateNumberProblem(n string) string {
	if len(n) != 13 || !allDigits(n) {
		return "corporate number must be exactly 13 ASCII digits"
	}
	s := 0
	for i := 12; i >= 1; i-- {
		d := int(n[i] - '0')
		if (12-i)%2 == 1 {
			d *= 2
		}
		s += d
	}
	want := byte(9-s%9) + '0'
	if n[0] != want {
		return fmt.Sprintf("check digit is %c, expected %c", n[0], want)
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// show renders an untrusted identifier for an error message: bare when it
// consists only of characters that can appear in a valid ID (so messages
// read naturally, e.g. lg:011003: check digit is 3, expected 2), quoted and
// bounded otherwise so that control bytes or huge inputs cannot corrupt logs.
func show(s string) string {
	if len(s) > maxParticipantIDLen {
		return quote(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '-') {
			return quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
