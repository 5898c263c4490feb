// Package lgdata holds the reference data taxlink routes by: the 1,788
// Japanese local governments (47 prefectures and 1,741 municipalities) that
// receive national tax notifications, and the Japanese public-holiday
// calendar the hub's acceptance schedule is built on.
//
// Both tables are embedded in the binary (local-governments.csv and
// japanese-holidays.csv, MIT-licensed; see the LICENSE files next to them)
// and are parsed strictly on every Load, All or LoadHolidays call: a row that
// does not validate is an error, never silently skipped. The package keeps no
// mutable package-level state; callers that need the data repeatedly should
// Load once and keep the returned *Index or *Holidays, which are immutable and
// safe for concurrent use.
package lgdata

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// localGovernmentsCSV is the embedded table; a string, so it is immutable.
//
//go:embed local-governments.csv
var localGovernmentsCSV string

// Kinds of local government, as they appear in the kind column.
const (
	KindPrefecture     = "prefecture"      // 都道府県
	KindDesignatedCity = "designated-city" // 政令指定都市
	KindCity           = "city"            // 市
	KindTown           = "town"            // 町
	KindVillage        = "village"         // 村
	KindSpecialWard    = "special-ward"    // 東京都の特別区
)

// ParticipantPrefix is the prefix of a local government's participant ID on
// the taxlink hub; see Government.ParticipantID.
const ParticipantPrefix = "lg:"

// localGovernmentsHeader is the exact header row a local-governments CSV must
// have.
const localGovernmentsHeader = "code,prefecture,name,name_kana,kind"

// Government is one local government (地方公共団体).
type Government struct {
	// Code is the 6-digit 全国地方公共団体コード including its check digit,
	// e.g. "011002" for 札幌市. It always satisfies ValidCode.
	Code string
	// Prefecture is the name of the prefecture the government belongs to;
	// for a prefecture it equals Name.
	Prefecture string
	// Name is the official name, e.g. "札幌市" or "東京都".
	Name string
	// NameKana is the reading of Name in hiragana, e.g. "さっぽろし".
	NameKana string
	// Kind is one of the Kind* constants.
	Kind string
}

// ParticipantID returns the government's participant ID on the hub:
// ParticipantPrefix followed by Code, e.g. "lg:011002".
func (g Government) ParticipantID() string {
	return ParticipantPrefix + g.Code
}

// IsPrefecture reports whether g is a prefecture (都道府県) rather than a
// municipality.
func (g Government) IsPrefecture() bool {
	return g.Kind == KindPrefecture
}

// All parses the embedded table and returns every local government in
// ascending code order: exactly 1,788 entries for the shipped data. Each call
// parses afresh and returns a slice the caller owns; use Load to parse once and
// look codes up.
func All() ([]Government, error) {
	govs, err := parseGovernments(strings.NewReader(localGovernmentsCSV))
	if err != nil {
		return nil, fmt.Errorf("lgdata: local-governments.csv: %w", err)
	}
	return govs, nil
}

// Index is a parsed, immutable local-government table. It is safe for
// concurrent use. The zero value is an empty index; obtain a populated one
// from Load.
type Index struct {
	all    []Government   // ascending code order
	byCode map[string]int // code -> position in all
	prefs  []Government   // the prefectures, ascending code order
}

// Load parses the embedded table (see All) into an Index.
func Load() (*Index, error) {
	govs, err := All()
	if err != nil {
		return nil, err
	}
	ix := &Index{all: govs, byCode: make(map[string]int, len(govs))}
	for i, g := range govs {
		ix.byCode[g.Code] = i
		if g.IsPrefecture() {
			ix.prefs = append(ix.prefs, g)
		}
	}
	return ix, nil
}

// Lookup returns the local government with the given 6-digit code (check
// digit included). It reports false for unknown or malformed codes; it does
// not accept 5-digit codes without the check digit.
func (ix *Index) Lookup(code string) (Government, bool) {
	i, ok := ix.byCode[code]
	if !ok {
		return Government{}, false
	}
	return ix.all[i], true
}

// Len returns the number of local governments in the index.
func (ix *Index) Len() int {
	return len(ix.all)
}

// All returns every local government in ascending code order. The slice is a
// copy: modifying it does not affect the index.
func (ix *Index) All() []Government {
	return slices.Clone(ix.all)
}

// Prefectures returns the 47 prefectures in ascending code order (北海道
// first, 沖縄県 last). The slice is a copy the caller owns.
func (ix *Index) Prefectures() []Government {
	return slices.Clone(ix.prefs)
}

// parseGovernments reads a local-governments CSV strictly: the header must be
// exactly localGovernmentsHeader (no BOM, no extra columns); every row must have 5 non-empty, valid
// UTF-8 fields, a valid code (ValidCode), a known kind consistent with the
// code (prefecture codes are PP000C), codes must be strictly ascending (hence
// unique), and every row's prefecture must name the prefecture row of the
// same 2-digit prefecture code.
func parseGovernments(r io.Reader) ([]Government, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 5
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("empty input, want header %q", localGovernmentsHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	// With exactly 5 fields, 4 commas in the join means no field holds a comma.
	if got := strings.Join(header, ","); got != localGovernmentsHeader {
		return nil, fmt.Errorf("header is %q, want %q", got, localGovernmentsHeader)
	}
	var govs []Government
	lines := make(map[string]int) // code -> line, for messages
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // *csv.ParseError names the line
		}
		line, _ := cr.FieldPos(0)
		g := Government{Code: rec[0], Prefecture: rec[1], Name: rec[2], NameKana: rec[3], Kind: rec[4]}
		if err := checkGovernment(g); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if prev, dup := lines[g.Code]; dup {
			return nil, fmt.Errorf("line %d: code %s duplicates line %d", line, g.Code, prev)
		}
		if n := len(govs); n > 0 && g.Code < govs[n-1].Code {
			return nil, fmt.Errorf("line %d: code %s is out of order (after %s); rows must be in ascending code order", line, g.Code, govs[n-1].Code)
		}
		lines[g.Code] = line
		govs = append(govs, g)
	}
	if len(govs) == 0 {
		return nil, fmt.Errorf("no rows after the header")
	}
	prefByNumber := make(map[string]string) // 2-digit prefecture number -> name
	for _, g := range govs {
		if g.IsPrefecture() {
			prefByNumber[g.Code[:2]] = g.Name
		}
	}
	for _, g := range govs {
		want, ok := prefByNumber[g.Code[:2]]
		if !ok {
			return nil, fmt.Errorf("line %d: code %s: no prefecture row for prefecture number %s", lines[g.Code], g.Code, g.Code[:2])
		}
		if g.Prefecture != want {
			return nil, fmt.Errorf("line %d: code %s: prefecture is %q, but prefecture number %s is %q", lines[g.Code], g.Code, g.Prefecture, g.Code[:2], want)
		}
	}
	return govs, nil
}

// checkGovernment validates one row on its own.
func checkGovernment(g Government) error {
	if err := ValidCode(g.Code); err != nil {
		return err
	}
	for _, c := range [...]struct{ col, f string }{
		{"prefecture", g.Prefecture}, {"name", g.Name}, {"name_kana", g.NameKana}, {"kind", g.Kind},
	} {
		col, f := c.col, c.f
		if f == "" {
			return fmt.Errorf("code %s: empty %s", g.Code, col)
		}
		if !utf8.ValidString(f) {
			return fmt.Errorf("code %s: %s is not valid UTF-8", g.Code, col)
		}
		if strings.TrimSpace(f) != f {
			return fmt.Errorf("code %s: %s %q has surrounding white space", g.Code, col, f)
		}
	}
	prefCode := g.Code[2:5] == "000"
	switch g.Kind {
	case KindPrefecture:
		if !prefCode {
			return fmt.Errorf("code %s: kind %s but the code is not a prefecture code (PP000C)", g.Code, g.Kind)
		}
		if g.Name != g.Prefecture {
			return fmt.Errorf("code %s: prefecture row named %q but its prefecture column is %q", g.Code, g.Name, g.Prefecture)
		}
	case KindDesignatedCity, KindCity, KindTown, KindVillage, KindSpecialWard:
		if prefCode {
			return fmt.Errorf("code %s: kind %s but the code is a prefecture code (PP000C)", g.Code, g.Kind)
		}
	default:
		return fmt.Errorf("code %s: unknown kind %q", g.Code, g.Kind)
	}
	return nil
}

// CodeError is the error ValidCode and CheckDigit return for a malformed or
// wrong 全国地方公共団体コード.
type CodeError struct {
	// Code is the rejected input, verbatim.
	Code string
	// Reason says what is wrong, e.g. "check digit 3, expected 2".
	Reason string
}

// Error returns e.g. "local government code 011003: check digit 3, expected 2".
// Inputs that are not plain digits are quoted.
func (e *CodeError) Error() string {
	c := e.Code
	if c == "" || strings.Trim(c, "0123456789") != "" {
		c = fmt.Sprintf("%q", c)
	}
	return "local government code " + c + ": " + e.Reason
}

// CheckDigit returns the check digit (an ASCII digit '0'..'9') of a
// 全国地方公共団体コード given its first five digits: with digits d1..d5
// weighted 6,5,4,3,2 and S their weighted sum, the check digit is
// (11 − S mod 11) mod 10. For example CheckDigit("01100") is '2' (札幌市
// 011002). It returns a *CodeError unless first5 is exactly five ASCII digits.
func CheckDigit(first5 string) (byte, error) {
	if len(first5) != 5 || !allDigits(first5) {
		return 0, &CodeError{Code: first5, Reason: "the first five digits must be exactly 5 ASCII digits"}
	}
	s := 0
	for i := range 5 {
		s += int(first5[i]-'0') * (6 - i)
	}
	return byte('0' + (11-s%11)%10), nil
}

// ValidCode reports whether code is a well-formed 全国地方公共団体コード:
// exactly six ASCII digits whose last digit is CheckDigit of the first five.
// It does not say whether the code is assigned; use Index.Lookup for that.
// The error is a *CodeError, e.g.
// "local government code 011003: check digit 3, expected 2".
func ValidCode(code string) error {
	if len(code) != 6 || !allDigits(code) {
		return &CodeError{Code: code, Reason: "must be exactly 6 ASCII digits"}
	}
	want, err := CheckDigit(code[:5])
	if err != nil {
		return err // unreachable: code[:5] is five digits
	}
	if code[5] != want {
		return &CodeError{Code: code, Reason: fmt.Sprintf("check digit %c, expected %c", code[5], want)}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
