package searchindex

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// MaxScan bounds, in bytes, how much of a payload Extract reads. An XML
// payload of MaxScan bytes or more is refused (ErrMalformed): its fields
// cannot be trusted when the document cannot be read to its end.
const MaxScan = 4 << 20

// Limits of the XML reader.
const (
	maxDepth = 256 // element nesting
	maxField = 64  // bytes of text in one field element
)

// pdfScan bounds how much of a PDF Extract looks at: the document
// information dictionary and the first page's text come first.
const pdfScan = 16 << 10

// Fields are what Extract finds in a plaintext payload.
type Fields struct {
	// TaxYear is the tax year (暦年) the document is for, 0 if unknown.
	TaxYear int
	// Taxpayer is the taxpayer's identifier, normalised to 12 (個人番号)
	// or 13 (法人番号) ASCII digits; "" if unknown. It is never stored:
	// the index keeps its blind index only.
	Taxpayer string
}

// Extract reads at most MaxScan bytes of a payload of the given content type
// and returns the fields it finds.
//
// An XML payload (application/xml, text/xml or any */*+xml) is read with
// encoding/xml's tokenizer in strict mode: only XML's predefined entities are
// known (a DOCTYPE's entity declarations are never expanded), the document
// must be UTF-8, have exactly one root element, nest at most 256 deep and end
// before MaxScan bytes. The taxpayer is the gen:kojinbango (12 digits) or
// gen:hojinbango (13 digits) child of NOZEISHA_BANGO (identifiers elsewhere,
// such as relatives', are ignored); the tax year is NENBUN's gen:era and
// gen:yy, in e-Tax's wareki encoding (era 3 昭和, 4 平成, 5 令和). Elements
// are matched by local name. An empty field is unknown; a field that is not
// valid, or a document that gives two different values for one, is
// ErrMalformed, as is a document that is not well-formed.
//
// A PDF (application/pdf) has no structured fields: only a tax year stated
// as "tax year YYYY" in text near the start of the file (as the synthetic
// scans of package synth carry in their title) is taken; otherwise its Fields
// are zero. Other content types give zero Fields and nil.
//
// Errors wrap ErrMalformed and name at most a line number; they never quote
// the payload. An error of r is returned wrapped, not as ErrMalformed.
func Extract(contentType string, r io.Reader) (Fields, error) {
	switch mt := mediaType(contentType); {
	case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
		return extractXML(r)
	case mt == "application/pdf":
		return extractPDF(r)
	}
	return Fields{}, nil
}

// mediaType returns the lowercase type/subtype of a content type, without
// parameters.
func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// errTooLarge is what scanReader returns once MaxScan bytes were read.
var errTooLarge = errors.New("payload too large")

// scanReader reads at most MaxScan bytes of r; it remembers an error of r,
// to tell it from the XML decoder's own errors.
type scanReader struct {
	r       io.Reader
	n       int64
	readErr error
}

func (s *scanReader) Read(p []byte) (int, error) {
	if s.n >= MaxScan {
		return 0, errTooLarge
	}
	if rest := MaxScan - s.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err != nil && err != io.EOF {
		s.readErr = err
	}
	return n, err
}

// field is a value being collected from an XML element.
type field int

const (
	fieldNone  field = iota
	fieldKojin       // NOZEISHA_BANGO/kojinbango
	fieldHojin       // NOZEISHA_BANGO/hojinbango
	fieldEra         // NENBUN/era
	fieldYY          // NENBUN/yy
)

// xmlScan is the state of extractXML.
type xmlScan struct {
	d     *xml.Decoder
	stack []string // local names of the open elements
	roots int

	cur      field  // field being collected, fieldNone if none
	curDepth int    // stack depth of its element
	text     []byte // its text so far

	taxpayer string
	year     int
	// era and yy of the NENBUN element being read (inYear).
	era, yy string
	inYear  bool
}

func extractXML(r io.Reader) (Fields, error) {
	sr := &scanReader{r: r}
	d := xml.NewDecoder(sr)
	d.Strict = true
	// d.Entity is nil (only the predefined entities) and d.CharsetReader
	// is nil (a document declaring another encoding than UTF-8 fails).
	x := &xmlScan{d: d}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Fields{}, x.fail(sr, err)
		}
		if err := x.token(tok); err != nil {
			return Fields{}, err
		}
	}
	if x.roots == 0 {
		return Fields{}, fmt.Errorf("%w: XML document has no root element", ErrMalformed)
	}
	return Fields{TaxYear: x.year, Taxpayer: x.taxpayer}, nil
}

// fail turns an error of the decoder into one that does not quote the
// document.
func (x *xmlScan) fail(sr *scanReader, err error) error {
	switch {
	case sr.readErr != nil:
		return fmt.Errorf("searchindex: reading payload: %w", sr.readErr)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%w: XML document is %d bytes or more", ErrMalformed, MaxScan)
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: XML syntax error on line %d", ErrMalformed, se.Line)
	}
	return x.malformed("XML document is not readable") // e.g. a non-UTF-8 encoding
}

// malformed returns an ErrMalformed error stating what and the current line.
func (x *xmlScan) malformed(what string) error {
	line, _ := x.d.InputPos()
	return fmt.Errorf("%w: %s (line %d)", ErrMalformed, what, line)
}

func (x *xmlScan) token(tok xml.Token) error {
	switch t := tok.(type) {
	case xml.StartElement:
		if len(x.stack) == 0 {
			x.roots++
			if x.roots > 1 {
				return x.malformed("XML document has more than one root element")
			}
		}
		if len(x.stack) == maxDepth {
			return x.malformed("XML elements nest too deep")
		}
		parent := ""
		if len(x.stack) > 0 {
			parent = x.stack[len(x.stack)-1]
		}
		x.stack = append(x.stack, t.Name.Local)
		if x.cur != fieldNone {
			return x.malformed("XML field element has child elements")
		}
		switch {
		case t.Name.Local == "NENBUN":
			if x.inYear {
				return x.malformed("XML NENBUN elements are nested")
			}
			x.inYear, x.era, x.yy = true, "", ""
		case parent == "NOZEISHA_BANGO" && t.Name.Local == "kojinbango":
			x.collect(fieldKojin)
		case parent == "NOZEISHA_BANGO" && t.Name.Local == "hojinbango":
			x.collect(fieldHojin)
		case parent == "NENBUN" && t.Name.Local == "era":
			x.collect(fieldEra)
		case parent == "NENBUN" && t.Name.Local == "yy":
			x.collect(fieldYY)
		}
	case xml.EndElement:
		// The decoder has checked that t matches the innermost open element.
		if x.cur != fieldNone && len(x.stack) == x.curDepth {
			if err := x.finish(); err != nil {
				return err
			}
		}
		if t.Name.Local == "NENBUN" && x.inYear {
			if err := x.finishYear(); err != nil {
				return err
			}
		}
		x.stack = x.stack[:len(x.stack)-1]
	case xml.CharData:
		switch {
		case len(x.stack) == 0:
			if len(bytes.TrimSpace(t)) > 0 {
				return x.malformed("XML document has text outside its root element")
			}
		case x.cur != fieldNone:
			if len(x.text)+len(t) > maxField {
				return x.malformed("XML field is too long")
			}
			x.text = append(x.text, t...)
		}
	}
	// Comments, processing instructions and directives carry no fields.
	return nil
}

func (x *xmlScan) collect(f field) {
	x.cur, x.curDepth, x.text = f, len(x.stack), x.text[:0]
}

// finish stores the field just collected.
func (x *xmlScan) finish() error {
	f, v := x.cur, strings.TrimSpace(string(x.text))
	x.cur = fieldNone
	switch f {
	case fieldEra, fieldYY:
		p := &x.era
		if f == fieldYY {
			p = &x.yy
		}
		if *p != "" && v != "" && *p != v {
			return x.malformed("XML document has two different tax years")
		}
		if v != "" {
			*p = v
		}
		return nil
	}
	if v == "" {
		return nil // no number given
	}
	n, ok := normalize(v)
	want := 12
	if f == fieldHojin {
		want = 13
	}
	if !ok || len(n) != want {
		return x.malformed(fmt.Sprintf("XML taxpayer number is not %d digits", want))
	}
	if x.taxpayer != "" && x.taxpayer != n {
		return x.malformed("XML document has two different taxpayer numbers")
	}
	x.taxpayer = n
	return nil
}

// finishYear stores the tax year of the NENBUN element just read.
func (x *xmlScan) finishYear() error {
	era, yy := x.era, x.yy
	x.inYear, x.era, x.yy = false, "", ""
	if era == "" && yy == "" {
		return nil // no year given
	}
	y, ok := gregorian(era, yy)
	if !ok {
		return x.malformed("XML tax year is not a valid era and year")
	}
	if x.year != 0 && x.year != y {
		return x.malformed("XML document has two different tax years")
	}
	x.year = y
	return nil
}

// eras maps e-Tax era codes to the Gregorian year before the era's first
// year and the era's last year number.
var eras = map[string]struct{ base, last int }{
	"3": {1925, 64}, // 昭和 1926–1989
	"4": {1988, 31}, // 平成 1989–2019
	"5": {2018, 99}, // 令和 2019–
}

// gregorian converts an e-Tax era code and era year to a Gregorian year.
func gregorian(era, yy string) (int, bool) {
	e, ok := eras[era]
	if !ok || len(yy) == 0 || len(yy) > 2 {
		return 0, false
	}
	y, err := strconv.Atoi(yy)
	if err != nil || y < 1 || y > e.last || yy[0] < '0' || yy[0] > '9' {
		return 0, false
	}
	return e.base + y, true
}

// pdfYear matches a tax year stated in PDF text; the synthetic scans say
// "tax year 2024" in their title and page text.
var pdfYear = regexp.MustCompile(`tax year ((?:19|20)[0-9]{2})\b`)

func extractPDF(r io.Reader) (Fields, error) {
	head, err := io.ReadAll(io.LimitReader(r, pdfScan))
	if err != nil {
		return Fields{}, fmt.Errorf("searchindex: reading payload: %w", err)
	}
	if !bytes.HasPrefix(head, []byte("%PDF-")) {
		return Fields{}, nil
	}
	m := pdfYear.FindSubmatch(head)
	if m == nil {
		return Fields{}, nil
	}
	y, _ := strconv.Atoi(string(m[1])) // two to four digits: cannot fail
	return Fields{TaxYear: y}, nil
}
