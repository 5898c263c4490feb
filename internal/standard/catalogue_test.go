package standard

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// standardText is the standard's text, as published (総務省告示第151号).
const standardText = "testdata/kokuji151.txt"

type textItem struct{ id, title string }

// numberedItems reads the numbered items of 第2 to 第6 from the standard's
// text: a parenthesised number (1), (2) … under a numbered section, a
// numbered section without parenthesised numbers, and 第6, which has no
// numbers. Katakana sub-points (ア, イ …) are not items.
func numberedItems(t *testing.T) []textItem {
	t.Helper()
	f, err := os.Open(standardText)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		secRe = regexp.MustCompile(`^#*\s*第([0-9])\s+(\S.*)$`)
		numRe = regexp.MustCompile(`^#*\s*([0-9]+)\s+(\S.*)$`)
		parRe = regexp.MustCompile(`^#*\s*\(([0-9]+)\)\s*(\S.*)$`)
	)
	var (
		out              []textItem
		sec, num         string
		secTitle, nTitle string
		numHasParen      bool
		secHasNum        bool
	)
	flushNum := func() {
		if num != "" && !numHasParen {
			out = append(out, textItem{"第" + sec + "-" + num, nTitle})
		}
		num, numHasParen = "", false
	}
	flushSec := func() {
		flushNum()
		if sec != "" && sec != "1" && !secHasNum {
			out = append(out, textItem{"第" + sec, secTitle})
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := secRe.FindStringSubmatch(line); m != nil {
			flushSec()
			sec, secTitle, secHasNum = m[1], m[2], false
			continue
		}
		if sec == "" || sec == "1" {
			continue
		}
		if m := numRe.FindStringSubmatch(line); m != nil {
			flushNum()
			num, nTitle, secHasNum = m[1], m[2], true
			continue
		}
		if m := parRe.FindStringSubmatch(line); m != nil && num != "" {
			numHasParen = true
			out = append(out, textItem{"第" + sec + "-" + num + "-(" + m[1] + ")", m[2]})
		}
	}
	flushSec()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalized is the standard's text without white space (the published
// text breaks lines inside words).
func normalized(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(standardText)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, string(b))
}

// TestCatalogueIsTheStandard checks that the catalogue's items are exactly
// the numbered items of 第2 to 第6 of the standard, in order, with their
// headings as titles.
func TestCatalogueIsTheStandard(t *testing.T) {
	want := numberedItems(t)
	if len(want) != 69 {
		t.Errorf("the standard has %d numbered items in 第2–第6, the issue says 69", len(want))
	}
	if len(catalogue) != len(want) {
		t.Fatalf("catalogue has %d items, the standard %d", len(catalogue), len(want))
	}
	for i, w := range want {
		it := catalogue[i]
		if it.ID != w.id {
			t.Errorf("item %d: catalogue %s, standard %s", i, it.ID, w.id)
		}
		if it.Title != strings.TrimSpace(w.title) {
			t.Errorf("%s: title %q, heading %q", it.ID, it.Title, w.title)
		}
	}
}

// TestCatalogueIntegrity checks IDs, kinds, checks, excerpts.
func TestCatalogueIntegrity(t *testing.T) {
	text := normalized(t)
	seen := map[string]bool{}
	var auto, att int
	for _, it := range catalogue {
		if seen[it.ID] {
			t.Errorf("duplicate ID %s", it.ID)
		}
		seen[it.ID] = true
		if it.Title == "" || it.Note == "" {
			t.Errorf("%s: empty title or note", it.ID)
		}
		if n := utf8.RuneCountInString(it.Excerpt); n == 0 || n > 200 {
			t.Errorf("%s: excerpt of %d characters, want 1..200", it.ID, n)
		}
		for _, frag := range strings.Split(it.Excerpt, "…") {
			if frag != "" && !strings.Contains(text, frag) {
				t.Errorf("%s: excerpt fragment %q is not in the standard's text", it.ID, frag)
			}
		}
		switch it.Kind {
		case Automated:
			auto++
			if len(it.Checks) == 0 {
				t.Errorf("%s: automated without a check", it.ID)
			}
		case AttestationKind:
			att++
			if len(it.Checks) != 0 {
				t.Errorf("%s: an attestation item has checks", it.ID)
			}
		default:
			t.Errorf("%s: kind %q", it.ID, it.Kind)
		}
	}
	t.Logf("%d items: %d automated, %d attestation", len(catalogue), auto, att)
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"第4-4-(2)", "第4-4-(2)"},
		{"4-4-2", "第4-4-(2)"},
		{" 第3-2 ", "第3-2"},
		{"6", "第6"},
		{"第4-10-(1)", "第4-10-(1)"},
		{"4-1-10", ""},
		{"", ""},
	} {
		it, ok := Lookup(tc.in)
		if ok != (tc.want != "") || it.ID != tc.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.in, it.ID, ok, tc.want)
		}
	}
	c := Catalogue()
	c[0].ID = "changed"
	if catalogue[0].ID == "changed" {
		t.Error("Catalogue returns the table itself")
	}
}
