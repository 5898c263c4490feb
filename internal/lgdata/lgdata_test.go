package lgdata

import (
	"errors"
	"strings"
	"testing"
)

// refCheckDigit is an independent statement of the README's rule, used to
// cross-check CheckDigit: weights 6,5,4,3,2; check = (11 - S mod 11) mod 10.
func refCheckDigit(first5 string) byte {
	weights := [5]int{6, 5, 4, 3, 2}
	s := 0
	for i, w := range weights {
		s += w * int(first5[i]-'0')
	}
	c := 11 - s%11
	if c >= 10 {
		c -= 10
	}
	return byte('0' + c)
}

func TestCheckDigitExamples(t *testing.T) {
	// Examples from /work/shared/data/README.md.
	for _, code := range []string{"010006", "011002", "130001", "131016", "131130"} {
		got, err := CheckDigit(code[:5])
		if err != nil {
			t.Errorf("CheckDigit(%q) error: %v", code[:5], err)
			continue
		}
		if got != code[5] {
			t.Errorf("CheckDigit(%q) = %c, want %c (code %s)", code[:5], got, code[5], code)
		}
		if err := ValidCode(code); err != nil {
			t.Errorf("ValidCode(%q) = %v, want nil", code, err)
		}
	}
}

func TestCheckDigitMatchesReferenceForAllInputs(t *testing.T) {
	buf := []byte("00000")
	for n := range 100000 {
		v := n
		for i := 4; i >= 0; i-- {
			buf[i] = byte('0' + v%10)
			v /= 10
		}
		got, err := CheckDigit(string(buf))
		if err != nil {
			t.Fatalf("CheckDigit(%q) error: %v", buf, err)
		}
		if want := refCheckDigit(string(buf)); got != want {
			t.Fatalf("CheckDigit(%q) = %c, reference formula gives %c", buf, got, want)
		}
	}
}

func TestCheckDigitRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "0110", "011000", "0110a", " 1100", "０１１００", "-1100"} {
		if c, err := CheckDigit(in); err == nil {
			t.Errorf("CheckDigit(%q) = %c, nil; want an error", in, c)
		} else if ce := (*CodeError)(nil); !errors.As(err, &ce) {
			t.Errorf("CheckDigit(%q) error %v is not a *CodeError", in, err)
		}
	}
}

func TestValidCodeErrors(t *testing.T) {
	tests := []struct {
		code, wantMsg string
	}{
		{"011003", "local government code 011003: check digit 3, expected 2"},
		{"130000", "local government code 130000: check digit 0, expected 1"},
		{"01100", `local government code 01100: must be exactly 6 ASCII digits`},
		{"0110022", `local government code 0110022: must be exactly 6 ASCII digits`},
		{"01100x", `local government code "01100x": must be exactly 6 ASCII digits`},
		{"", `local government code "": must be exactly 6 ASCII digits`},
		{"０１１００２", `local government code "０１１００２": must be exactly 6 ASCII digits`},
	}
	for _, tt := range tests {
		err := ValidCode(tt.code)
		if err == nil {
			t.Errorf("ValidCode(%q) = nil, want error %q", tt.code, tt.wantMsg)
			continue
		}
		if err.Error() != tt.wantMsg {
			t.Errorf("ValidCode(%q) error = %q, want %q", tt.code, err, tt.wantMsg)
		}
		var ce *CodeError
		if !errors.As(err, &ce) || ce.Code != tt.code {
			t.Errorf("ValidCode(%q) error %v: want a *CodeError carrying the input", tt.code, err)
		}
	}
}

func TestAllEmbeddedData(t *testing.T) {
	govs, err := All()
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	if len(govs) != 1788 {
		t.Errorf("All returned %d local governments, want 1788", len(govs))
	}
	kinds := map[string]int{}
	seen := map[string]bool{}
	for i, g := range govs {
		if err := ValidCode(g.Code); err != nil {
			t.Errorf("row %d (%s): %v", i, g.Name, err)
		}
		if seen[g.Code] {
			t.Errorf("code %s (%s) appears twice", g.Code, g.Name)
		}
		seen[g.Code] = true
		if i > 0 && govs[i-1].Code >= g.Code {
			t.Errorf("codes not ascending: %s then %s", govs[i-1].Code, g.Code)
		}
		kinds[g.Kind]++
	}
	// Counts from /work/shared/data/README.md.
	want := map[string]int{
		KindPrefecture: 47, KindDesignatedCity: 20, KindCity: 772,
		KindTown: 743, KindVillage: 183, KindSpecialWard: 23,
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d governments of kind %s, want %d", kinds[k], k, n)
		}
	}
	if len(kinds) != len(want) {
		t.Errorf("kinds found %v, want exactly %v", kinds, want)
	}

	// All parses afresh: callers own the slice.
	govs[0].Name = "changed"
	again, err := All()
	if err != nil {
		t.Fatalf("second All: %v", err)
	}
	if again[0].Name != "北海道" {
		t.Errorf("second All()[0].Name = %q, want 北海道: All must return a fresh slice", again[0].Name)
	}
}

func TestIndex(t *testing.T) {
	ix, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if ix.Len() != 1788 {
		t.Errorf("Len = %d, want 1788", ix.Len())
	}
	for _, tt := range []Government{
		{Code: "011002", Prefecture: "北海道", Name: "札幌市", NameKana: "さっぽろし", Kind: KindDesignatedCity},
		{Code: "130001", Prefecture: "東京都", Name: "東京都", NameKana: "とうきょうと", Kind: KindPrefecture},
		{Code: "131130", Prefecture: "東京都", Name: "渋谷区", NameKana: "しぶやく", Kind: KindSpecialWard},
		{Code: "042161", Prefecture: "宮城県", Name: "富谷市", NameKana: "とみやし", Kind: KindCity},
		{Code: "402311", Prefecture: "福岡県", Name: "那珂川市", NameKana: "なかがわし", Kind: KindCity},
	} {
		got, ok := ix.Lookup(tt.Code)
		if !ok {
			t.Errorf("Lookup(%q) not found, want %s", tt.Code, tt.Name)
			continue
		}
		if got != tt {
			t.Errorf("Lookup(%q) = %+v, want %+v", tt.Code, got, tt)
		}
	}
	for _, code := range []string{"011003", "01100", "", "044237", "403059", "999997"} {
		if g, ok := ix.Lookup(code); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", code, g)
		}
	}

	g, _ := ix.Lookup("011002")
	if id := g.ParticipantID(); id != "lg:011002" {
		t.Errorf("ParticipantID of 札幌市 = %q, want lg:011002", id)
	}

	prefs := ix.Prefectures()
	if len(prefs) != 47 {
		t.Fatalf("Prefectures returned %d, want 47", len(prefs))
	}
	if prefs[0].Name != "北海道" || prefs[12].Name != "東京都" || prefs[46].Name != "沖縄県" {
		t.Errorf("Prefectures order: [0]=%s [12]=%s [46]=%s, want 北海道, 東京都, 沖縄県", prefs[0].Name, prefs[12].Name, prefs[46].Name)
	}
	for _, p := range prefs {
		if !p.IsPrefecture() || p.Prefecture != p.Name {
			t.Errorf("Prefectures contains %+v, which is not a prefecture row", p)
		}
	}

	all := ix.All()
	all[0].Name = "changed"
	prefs[0].Name = "changed"
	if g, _ := ix.Lookup("010006"); g.Name != "北海道" {
		t.Errorf("mutating the slice from All changed the index: Lookup(010006).Name = %q", g.Name)
	}
	if ix.All()[0].Name != "北海道" || ix.Prefectures()[0].Name != "北海道" {
		t.Error("mutating returned slices changed the index: All/Prefectures must return copies")
	}
}

func TestParseGovernmentsRejects(t *testing.T) {
	const header = "code,prefecture,name,name_kana,kind\n"
	const hokkaido = "010006,北海道,北海道,ほっかいどう,prefecture\n"
	tests := []struct {
		name, csv, wantErr string
	}{
		{"empty", "", "empty input"},
		{"header only", header, "no rows"},
		{"bad header", "code,pref,name,name_kana,kind\n" + hokkaido, "header is"},
		{"BOM header", "\ufeff" + header + hokkaido, "header is"},
		{"extra column", header + "010006,北海道,北海道,ほっかいどう,prefecture,x\n", "wrong number of fields"},
		{"four columns", header + "010006,北海道,北海道,ほっかいどう\n", "wrong number of fields"},
		{"check digit", header + "010007,北海道,北海道,ほっかいどう,prefecture\n", "line 2: local government code 010007: check digit 7, expected 6"},
		{"short code", header + "01000,北海道,北海道,ほっかいどう,prefecture\n", "line 2: local government code 01000"},
		{"duplicate", header + hokkaido + "011002,北海道,札幌市,さっぽろし,designated-city\n" + "011002,北海道,札幌市,さっぽろし,designated-city\n", "line 4: code 011002 duplicates line 3"},
		{"out of order", header + hokkaido + "012025,北海道,函館市,はこだてし,city\n011002,北海道,札幌市,さっぽろし,designated-city\n", "line 4: code 011002 is out of order"},
		{"unknown kind", header + hokkaido + "011002,北海道,札幌市,さっぽろし,metropolis\n", `unknown kind "metropolis"`},
		{"empty name", header + hokkaido + "011002,北海道,,さっぽろし,designated-city\n", "empty name"},
		{"space", header + hokkaido + "011002,北海道,札幌市 ,さっぽろし,designated-city\n", "white space"},
		{"city with prefecture code", header + "010006,北海道,北海道,ほっかいどう,city\n", "is a prefecture code"},
		{"prefecture with city code", header + "011002,北海道,北海道,ほっかいどう,prefecture\n", "not a prefecture code"},
		{"wrong prefecture", header + hokkaido + "011002,青森県,札幌市,さっぽろし,designated-city\n", `prefecture is "青森県", but prefecture number 01 is "北海道"`},
		{"missing prefecture row", header + "011002,北海道,札幌市,さっぽろし,designated-city\n", "no prefecture row"},
		{"bad quoting", header + "010006,\"北海道,北海道,ほっかいどう,prefecture\n", "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			govs, err := parseGovernments(strings.NewReader(tt.csv))
			if err == nil {
				t.Fatalf("parse accepted bad input, returned %d rows; want error containing %q", len(govs), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}

	// And the minimal valid table parses.
	govs, err := parseGovernments(strings.NewReader(header + hokkaido + "011002,北海道,札幌市,さっぽろし,designated-city\n"))
	if err != nil || len(govs) != 2 {
		t.Errorf("minimal valid table: got %d rows, err %v; want 2 rows, nil", len(govs), err)
	}
}

func TestNotices(t *testing.T) {
	n := Notices()
	for _, want := range []string{"Shinnosuke Takeda", "holiday-jp", "MIT License", "local-governments.csv", "japanese-holidays.csv"} {
		if !strings.Contains(n, want) {
			t.Errorf("Notices() lacks %q; the embedded data's license notices must ship with it", want)
		}
	}
}
