package searchindex

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"taxlink/internal/synth"
)

// taxpayerRE finds the taxpayer's number in a synth document.
var taxpayerRE = regexp.MustCompile(`<NOZEISHA_BANGO[^>]*>\s*<gen:kojinbango>([0-9]{12})</gen:kojinbango>`)

// anyNumberRE finds every 12-digit number of a document.
var anyNumberRE = regexp.MustCompile(`[0-9]{12}`)

func TestExtractSynth(t *testing.T) {
	g := synth.NewGenerator(1)
	kinds := map[string]int{}
	withRelatives := 0
	for i := range 120 {
		n := g.Next("札幌市", "北海道")
		kinds[n.Type]++
		f, err := Extract(n.ContentType, bytes.NewReader(n.Body))
		if err != nil {
			t.Fatalf("notification %d (%s): %v", i, n.Type, err)
		}
		if f.TaxYear != n.TaxYear {
			t.Errorf("notification %d (%s): TaxYear %d, want %d", i, n.Type, f.TaxYear, n.TaxYear)
		}
		if n.ContentType == synth.ContentTypePDF {
			if f.Taxpayer != "" {
				t.Errorf("notification %d: a PDF gave a taxpayer", i)
			}
			continue
		}
		m := taxpayerRE.FindSubmatch(n.Body)
		if m == nil {
			t.Fatalf("notification %d: no NOZEISHA_BANGO/kojinbango in the synth document", i)
		}
		if f.Taxpayer != string(m[1]) {
			t.Errorf("notification %d: Taxpayer is not the NOZEISHA_BANGO number", i)
		}
		if err := synth.ValidMyNumber(f.Taxpayer); err != nil {
			t.Errorf("notification %d: taxpayer number: %v", i, err)
		}
		if bytes.Contains(n.Body, []byte("<SHINZOKU")) {
			withRelatives++
			if got := len(anyNumberRE.FindAll(n.Body, -1)); got < 2 {
				t.Errorf("notification %d: relatives listed but %d numbers", i, got)
			}
		}
	}
	for _, typ := range []string{synth.TypeIncomeTaxReturn, synth.TypeBlueReturn, synth.TypePaperReturnScan} {
		if kinds[typ] == 0 {
			t.Errorf("no %s among the notifications: %v", typ, kinds)
		}
	}
	if withRelatives == 0 {
		t.Error("no document lists relatives: the test does not show they are ignored")
	}
}

// TestExtractWarekiEncoding pins the tax year encoding synth uses: 2024 is
// 令和6 (era 5, year 6).
func TestExtractWarekiEncoding(t *testing.T) {
	g := synth.NewGenerator(1)
	for range 50 {
		n := g.Next("札幌市", "北海道")
		if n.ContentType != synth.ContentTypeXML || n.TaxYear != 2024 {
			continue
		}
		re := regexp.MustCompile(`<NENBUN ID="NENBUN">\s*<gen:era>5</gen:era>\s*<gen:yy>6</gen:yy>\s*</NENBUN>`)
		if !re.Match(n.Body) {
			t.Fatalf("2024 is not encoded as era 5 year 6 in NENBUN")
		}
		return
	}
	t.Fatal("no XML document for 2024 in 50 draws")
}

// doc wraps the IT section content of a minimal e-Tax-like document.
func doc(it string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<DATA xmlns="http://xml.e-tax.nta.go.jp/XSD/shotoku" xmlns:gen="http://xml.e-tax.nta.go.jp/XSD/general">
<IT>` + it + `</IT>
</DATA>
`
}

const (
	myNumber  = "123456789018"
	corpNum   = "1234567890123"
	otherNum  = "987654321098"
	nozeisha  = `<NOZEISHA_BANGO ID="NOZEISHA_BANGO"><gen:kojinbango>` + myNumber + `</gen:kojinbango></NOZEISHA_BANGO>`
	nenbunR6  = `<NENBUN ID="NENBUN"><gen:era>5</gen:era><gen:yy>6</gen:yy></NENBUN>`
	secretTag = "ひみつ"
)

func TestExtract(t *testing.T) {
	for _, tt := range []struct {
		name, ct, body string
		want           Fields
		malformed      bool
	}{
		{name: "full", ct: "application/xml", body: doc(nozeisha + nenbunR6), want: Fields{2024, myNumber}},
		{name: "media type parameters", ct: "Application/XML; charset=utf-8", body: doc(nozeisha + nenbunR6), want: Fields{2024, myNumber}},
		{name: "text/xml", ct: "text/xml", body: doc(nozeisha), want: Fields{0, myNumber}},
		{name: "+xml", ct: "application/etax+xml", body: doc(nenbunR6), want: Fields{2024, ""}},
		{name: "hojinbango", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:hojinbango>` + corpNum + `</gen:hojinbango></NOZEISHA_BANGO>`), want: Fields{0, corpNum}},
		{name: "full-width and spaced", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango> １２３４ ５６７８-９０１８ </gen:kojinbango></NOZEISHA_BANGO>`), want: Fields{0, myNumber}},
		{name: "other prefix same local names", ct: "application/xml", body: `<r xmlns:g="urn:x"><NOZEISHA_BANGO><g:kojinbango>` + myNumber + `</g:kojinbango></NOZEISHA_BANGO></r>`, want: Fields{0, myNumber}},
		{name: "heisei", ct: "application/xml", body: doc(`<NENBUN><gen:era>4</gen:era><gen:yy>30</gen:yy></NENBUN>`), want: Fields{2018, ""}},
		{name: "heisei 31", ct: "application/xml", body: doc(`<NENBUN><gen:era>4</gen:era><gen:yy>31</gen:yy></NENBUN>`), want: Fields{2019, ""}},
		{name: "reiwa 1", ct: "application/xml", body: doc(`<NENBUN><gen:era>5</gen:era><gen:yy>1</gen:yy></NENBUN>`), want: Fields{2019, ""}},
		{name: "showa", ct: "application/xml", body: doc(`<NENBUN><gen:era>3</gen:era><gen:yy>63</gen:yy></NENBUN>`), want: Fields{1988, ""}},
		{name: "no fields", ct: "application/xml", body: doc(`<X/>`), want: Fields{}},
		{name: "empty fields", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango/></NOZEISHA_BANGO><NENBUN/>`), want: Fields{}},
		{name: "birthday era ignored", ct: "application/xml", body: doc(`<BIRTHDAY><gen:era>4</gen:era><gen:yy>2</gen:yy></BIRTHDAY>`), want: Fields{}},
		{name: "relative ignored", ct: "application/xml", body: doc(nozeisha + `<KOJINBANGO><gen:kojinbango>` + otherNum + `</gen:kojinbango></KOJINBANGO>`), want: Fields{0, myNumber}},
		{name: "only relative", ct: "application/xml", body: doc(`<KOJINBANGO><gen:kojinbango>` + otherNum + `</gen:kojinbango></KOJINBANGO>`), want: Fields{}},
		{name: "repeated equal", ct: "application/xml", body: doc(nozeisha + nenbunR6 + nozeisha + nenbunR6), want: Fields{2024, myNumber}},
		{name: "comment and CDATA", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango>1234<!-- x -->5678<![CDATA[9018]]></gen:kojinbango></NOZEISHA_BANGO>`), want: Fields{0, myNumber}},
		{name: "predefined entity", ct: "application/xml", body: doc(`<N>&amp;&lt;&#x41;</N>` + nozeisha), want: Fields{0, myNumber}},
		{name: "doctype without use", ct: "application/xml", body: `<!DOCTYPE r [<!ENTITY e "` + otherNum + `">]><r>` + nozeisha + `</r>`, want: Fields{0, myNumber}},
		{name: "octet stream not read", ct: "application/octet-stream", body: doc(nozeisha + nenbunR6), want: Fields{}},
		{name: "no content type", ct: "", body: doc(nozeisha), want: Fields{}},
		{name: "pdf without year", ct: "application/pdf", body: "%PDF-1.4\n" + myNumber, want: Fields{}},
		{name: "pdf with year", ct: "application/pdf", body: "%PDF-1.4\n<< /Title (scan, tax year 2023, ref 1) >>", want: Fields{2023, ""}},
		{name: "not a pdf", ct: "application/pdf", body: "tax year 2023", want: Fields{}},

		{name: "empty", ct: "application/xml", body: "", malformed: true},
		{name: "only prolog", ct: "application/xml", body: `<?xml version="1.0"?>`, malformed: true},
		{name: "unclosed", ct: "application/xml", body: `<DATA><` + secretTag + `>` + myNumber, malformed: true},
		{name: "mismatched", ct: "application/xml", body: `<DATA><` + secretTag + `>` + myNumber + `</x` + secretTag + `></DATA>`, malformed: true},
		{name: "unknown entity", ct: "application/xml", body: `<DATA>&` + secretTag + myNumber + `;</DATA>`, malformed: true},
		{name: "declared entity", ct: "application/xml", body: `<!DOCTYPE r [<!ENTITY e "` + myNumber + `">]><r><NOZEISHA_BANGO><gen:kojinbango>&e;</gen:kojinbango></NOZEISHA_BANGO></r>`, malformed: true},
		{name: "two roots", ct: "application/xml", body: doc(nozeisha) + `<` + secretTag + `/>`, malformed: true},
		{name: "text outside root", ct: "application/xml", body: doc(nozeisha) + secretTag + myNumber, malformed: true},
		{name: "short number", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango>12345678901</gen:kojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "12 digits as hojinbango", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:hojinbango>` + myNumber + `</gen:hojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "letters in number", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango>12345678901X</gen:kojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "long number", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango>` + strings.Repeat(myNumber, 10) + `</gen:kojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "child in number", ct: "application/xml", body: doc(`<NOZEISHA_BANGO><gen:kojinbango><b>` + myNumber + `</b></gen:kojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "conflicting numbers", ct: "application/xml", body: doc(nozeisha + `<NOZEISHA_BANGO><gen:kojinbango>` + otherNum + `</gen:kojinbango></NOZEISHA_BANGO>`), malformed: true},
		{name: "conflicting years", ct: "application/xml", body: doc(nenbunR6 + `<NENBUN><gen:era>5</gen:era><gen:yy>5</gen:yy></NENBUN>`), malformed: true},
		{name: "unknown era", ct: "application/xml", body: doc(`<NENBUN><gen:era>9</gen:era><gen:yy>6</gen:yy></NENBUN>`), malformed: true},
		{name: "year zero", ct: "application/xml", body: doc(`<NENBUN><gen:era>5</gen:era><gen:yy>0</gen:yy></NENBUN>`), malformed: true},
		{name: "heisei 32", ct: "application/xml", body: doc(`<NENBUN><gen:era>4</gen:era><gen:yy>32</gen:yy></NENBUN>`), malformed: true},
		{name: "signed year", ct: "application/xml", body: doc(`<NENBUN><gen:era>5</gen:era><gen:yy>+6</gen:yy></NENBUN>`), malformed: true},
		{name: "era without year", ct: "application/xml", body: doc(`<NENBUN><gen:era>5</gen:era></NENBUN>`), malformed: true},
		{name: "shift_jis declared", ct: "application/xml", body: `<?xml version="1.0" encoding="Shift_JIS"?><DATA>` + nozeisha + `</DATA>`, malformed: true},
		{name: "invalid UTF-8", ct: "application/xml", body: "<DATA>\xff\xfe" + myNumber + "</DATA>", malformed: true},
		{name: "control character", ct: "application/xml", body: "<DATA>\x01" + myNumber + "</DATA>", malformed: true},
		{name: "too deep", ct: "application/xml", body: strings.Repeat("<a>", maxDepth+1) + strings.Repeat("</a>", maxDepth+1), malformed: true},
		{name: "too large", ct: "application/xml", body: doc(nozeisha + "<!--" + strings.Repeat("x", MaxScan) + "-->"), malformed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Extract(tt.ct, strings.NewReader(tt.body))
			if tt.malformed {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				if got != (Fields{}) {
					t.Errorf("fields %+v returned with an error", got)
				}
				for _, s := range []string{myNumber, otherNum, secretTag, "1234", "x" + secretTag} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q quotes the document", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExtractDepthLimitIsExact(t *testing.T) {
	body := strings.Repeat("<a>", maxDepth) + strings.Repeat("</a>", maxDepth)
	if _, err := Extract("application/xml", strings.NewReader(body)); err != nil {
		t.Fatalf("%d levels: %v", maxDepth, err)
	}
}

// TestExtractReadsAtMostMaxScan checks that Extract stops reading an endless
// payload after MaxScan bytes.
func TestExtractReadsAtMostMaxScan(t *testing.T) {
	r := &countReader{r: io.MultiReader(strings.NewReader("<DATA><!--"), endless{})}
	_, err := Extract("application/xml", r)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if r.n > MaxScan {
		t.Errorf("read %d bytes, more than MaxScan", r.n)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

var errBroken = errors.New("broken reader")

type brokenReader struct{ r io.Reader }

func (b brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errBroken
	}
	return n, err
}

func TestExtractReadError(t *testing.T) {
	for _, ct := range []string{"application/xml", "application/pdf"} {
		_, err := Extract(ct, brokenReader{strings.NewReader(doc(nozeisha))})
		if !errors.Is(err, errBroken) || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want the reader's error, not ErrMalformed", ct, err)
		}
	}
}
