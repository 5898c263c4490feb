package searchindex

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// errTemplates are the messages Extract may fail with, digits replaced by
// "N": nothing of the document can appear in them.
var errTemplates = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range []string{
		"XML document has no root element",
		"XML document is N bytes or more",
		"XML syntax error on line N",
		"XML document is not readable (line N)",
		"XML document has more than one root element (line N)",
		"XML elements nest too deep (line N)",
		"XML field element has child elements (line N)",
		"XML NENBUN elements are nested (line N)",
		"XML document has text outside its root element (line N)",
		"XML field is too long (line N)",
		"XML taxpayer number is not N digits (line N)",
		"XML document has two different taxpayer numbers (line N)",
		"XML document has two different tax years (line N)",
		"XML tax year is not a valid era and year (line N)",
	} {
		m[ErrMalformed.Error()+": "+s] = true
	}
	return m
}()

var digitsRE = regexp.MustCompile(`[0-9]+`)

// FuzzExtract checks that Extract never panics, returns only well-formed
// fields, is deterministic, and fails only with ErrMalformed messages that
// quote nothing of the document. Seeds are in testdata/fuzz/FuzzExtract.
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, contentType string) {
		got, err := Extract(contentType, bytes.NewReader(data))
		again, err2 := Extract(contentType, bytes.NewReader(data))
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %+v, %v then %+v, %v", got, err, again, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if msg := digitsRE.ReplaceAllString(err.Error(), "N"); !errTemplates[msg] {
				t.Fatalf("unexpected error message %q", err)
			}
			if got != (Fields{}) {
				t.Fatalf("fields %+v returned with an error", got)
			}
			return
		}
		if got.Taxpayer != "" {
			if n := len(got.Taxpayer); n != 12 && n != 13 || strings.Trim(got.Taxpayer, "0123456789") != "" {
				t.Fatalf("taxpayer is not 12 or 13 ASCII digits")
			}
			if _, err := Blind(testKey("lg:011002"), got.Taxpayer); err != nil {
				t.Fatalf("Blind refuses an extracted taxpayer: %v", err)
			}
		}
		if got.TaxYear != 0 && (got.TaxYear < 1900 || got.TaxYear > 2117) {
			t.Fatalf("tax year %d out of range", got.TaxYear)
		}
		switch mt := mediaType(contentType); {
		case mt == "application/pdf":
			if got.Taxpayer != "" {
				t.Fatal("a PDF gave a taxpayer")
			}
		case mt != "application/xml" && mt != "text/xml" && !strings.HasSuffix(mt, "+xml"):
			if got != (Fields{}) {
				t.Fatalf("content type %q gave fields %+v", contentType, got)
			}
		}
	})
}
