package synth

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// recipients used across tests: a designated city, a special ward, a town,
// a prefecture as recipient, and hostile input that must be escaped.
var testRecipients = []struct{ pref, name string }{
	{"北海道", "札幌市"},
	{"東京都", "渋谷区"},
	{"長野県", "軽井沢町"},
	{"沖縄県", "沖縄県"},
	{"<県>", `&市"'<![CDATA[`},
}

func TestTaxpayer(t *testing.T) {
	g := NewGenerator(7)
	for i := range 500 {
		rc := testRecipients[i%len(testRecipients)]
		tp := g.Taxpayer(rc.pref, rc.name)
		if err := ValidMyNumber(tp.MyNumber); err != nil {
			t.Fatalf("taxpayer %d: %v", i, err)
		}
		for field, v := range map[string]string{"Name": tp.Name, "NameKana": tp.NameKana} {
			if parts := strings.Split(v, "　"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
				t.Errorf("taxpayer %d: %s %q is not family + ideographic space + given", i, field, v)
			}
		}
		for _, r := range strings.ReplaceAll(tp.NameKana, "　", "") {
			if r < 'ァ' || r > 'ヶ' && r != 'ー' {
				t.Errorf("taxpayer %d: NameKana %q has non-katakana %q", i, tp.NameKana, r)
				break
			}
		}
		wantPrefix := rc.pref + rc.name
		if rc.pref == rc.name {
			wantPrefix = rc.pref
		}
		if !strings.HasPrefix(tp.Address, wantPrefix) || strings.HasPrefix(tp.Address, rc.pref+rc.pref) {
			t.Errorf("taxpayer %d: Address %q does not start with %q (once)", i, tp.Address, wantPrefix)
		}
		if !strings.Contains(tp.Address, "番") || !strings.Contains(tp.Address, "号") {
			t.Errorf("taxpayer %d: Address %q has no 番/号 street number", i, tp.Address)
		}
		b, err := time.Parse(time.DateOnly, tp.Birth)
		if err != nil {
			t.Errorf("taxpayer %d: Birth %q: %v", i, tp.Birth, err)
		} else if age := LatestTaxYear - b.Year(); age < 20 || age > 85 {
			t.Errorf("taxpayer %d: Birth %s gives age %d in %d, want 20..85", i, tp.Birth, age, LatestTaxYear)
		}
	}
}

func TestDeterminism(t *testing.T) {
	run := func(seed uint64) []Notification {
		g := NewGenerator(seed)
		var out []Notification
		for i := range 60 {
			rc := testRecipients[i%len(testRecipients)]
			out = append(out, g.Next(rc.name, rc.pref))
		}
		out = append(out, Notification{Body: g.PDF(40_000)}, Notification{Body: []byte(fmt.Sprint(g.Taxpayer("京都府", "京都市")))})
		return out
	}
	a, b := run(42), run(42)
	for i := range a {
		if a[i].Type != b[i].Type || a[i].FileName != b[i].FileName || a[i].TaxYear != b[i].TaxYear ||
			a[i].ContentType != b[i].ContentType || !bytes.Equal(a[i].Body, b[i].Body) {
			t.Fatalf("seed 42, item %d differs between two runs (%s %s vs %s %s)", i, a[i].Type, a[i].FileName, b[i].Type, b[i].FileName)
		}
	}
	c := run(43)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Body, c[i].Body) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 42 and 43 produced %d identical bodies out of %d; seeds must matter", same, len(a))
	}

	var w1, w2, w3 bytes.Buffer
	if _, err := WritePDF(&w1, 60_000, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := WritePDF(&w2, 60_000, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := WritePDF(&w3, 60_000, 6); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w1.Bytes(), w2.Bytes()) {
		t.Error("WritePDF with the same seed produced different bytes")
	}
	if bytes.Equal(w1.Bytes(), w3.Bytes()) {
		t.Error("WritePDF with seeds 5 and 6 produced identical bytes")
	}
}

var fileNameRE = regexp.MustCompile(`^(income-tax-return|blue-return|paper-return-scan)-(\d{4})-[0-9a-f]{16}\.(xml|pdf)$`)

func TestNextMixAndShape(t *testing.T) {
	if testing.Short() {
		t.Skip("generates ~30 MB of PDFs; skipped in -short mode")
	}
	g := NewGenerator(2024)
	const draws = 1000
	counts := map[string]int{}
	names := map[string]bool{}
	pdfChecked := 0
	for i := range draws {
		rc := testRecipients[i%len(testRecipients)]
		n := g.Next(rc.name, rc.pref)
		counts[n.Type]++
		m := fileNameRE.FindStringSubmatch(n.FileName)
		if m == nil || m[1] != n.Type || m[2] != fmt.Sprint(n.TaxYear) {
			t.Errorf("draw %d: FileName %q does not match type %s / tax year %d", i, n.FileName, n.Type, n.TaxYear)
		}
		if names[n.FileName] {
			t.Errorf("draw %d: FileName %q repeated", i, n.FileName)
		}
		names[n.FileName] = true
		if n.TaxYear < LatestTaxYear-2 || n.TaxYear > LatestTaxYear {
			t.Errorf("draw %d: TaxYear %d outside %d..%d", i, n.TaxYear, LatestTaxYear-2, LatestTaxYear)
		}
		switch n.Type {
		case TypeIncomeTaxReturn, TypeBlueReturn:
			if n.ContentType != ContentTypeXML || m == nil || m[3] != "xml" {
				t.Errorf("draw %d: %s has content type %q, file %q; want application/xml, .xml", i, n.Type, n.ContentType, n.FileName)
			}
			checkWellFormedXML(t, fmt.Sprintf("draw %d (%s)", i, n.FileName), n.Body)
			if len(n.Body) < 2_000 || len(n.Body) > 16_000 {
				t.Errorf("draw %d: %s XML is %d bytes, want a few KB (2,000..16,000)", i, n.Type, len(n.Body))
			}
		case TypePaperReturnScan:
			if n.ContentType != ContentTypePDF || m == nil || m[3] != "pdf" {
				t.Errorf("draw %d: scan has content type %q, file %q; want application/pdf, .pdf", i, n.ContentType, n.FileName)
			}
			if len(n.Body) < MinScanSize || len(n.Body) > MaxScanSize {
				t.Errorf("draw %d: scan is %d bytes, want %d..%d", i, len(n.Body), MinScanSize, MaxScanSize)
			}
			if pdfChecked < 5 { // full structural check on a few; cheap checks on all
				pages := checkPDF(t, fmt.Sprintf("draw %d", i), n.Body)
				if pages != 1 && pages != 2 {
					t.Errorf("draw %d: scan has %d pages, want 1 or 2", i, pages)
				}
				pdfChecked++
			} else if !bytes.HasPrefix(n.Body, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(n.Body, []byte("%%EOF\n")) {
				t.Errorf("draw %d: scan does not start with %%PDF-1.4 and end with %%%%EOF", i)
			}
		default:
			t.Errorf("draw %d: unknown type %q", i, n.Type)
		}
	}
	// Expected 700/200/100; bounds are about ±4.5 standard deviations.
	for typ, bounds := range map[string][2]int{
		TypeIncomeTaxReturn: {630, 770},
		TypeBlueReturn:      {140, 260},
		TypePaperReturnScan: {55, 145},
	} {
		if c := counts[typ]; c < bounds[0] || c > bounds[1] {
			t.Errorf("%s: %d of %d draws, want %d..%d (mix 70/20/10)", typ, c, draws, bounds[0], bounds[1])
		}
	}
	t.Logf("mix over %d draws: %v", draws, counts)
}

// checkWellFormedXML decodes every token of doc and checks it is UTF-8 with
// Japanese text and the expected declaration.
func checkWellFormedXML(t *testing.T, what string, doc []byte) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("%s: missing UTF-8 XML declaration; starts %q", what, doc[:min(40, len(doc))])
	}
	if !utf8.Valid(doc) {
		t.Errorf("%s: not valid UTF-8", what)
	}
	if !bytes.ContainsFunc(doc, func(r rune) bool { return r >= 0x3040 && r <= 0x9fff }) {
		t.Errorf("%s: no Japanese text", what)
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	depth, elements := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("%s: not well-formed: %v", what, err)
			return
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			elements++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 || elements < 20 {
		t.Errorf("%s: ended at depth %d with %d elements", what, depth, elements)
	}
}

// itSection is the taxpayer part (IT) common to both XML types.
type itSection struct {
	TaxOffice    string `xml:"ZEIMUSHO>zeimusho_NM"`
	MyNumber     string `xml:"NOZEISHA_BANGO>kojinbango"`
	NameKana     string `xml:"NOZEISHA_NM_KN"`
	Name         string `xml:"NOZEISHA_NM"`
	Address      string `xml:"NOZEISHA_ADR"`
	Era          int    `xml:"NENBUN>era"`
	EraYear      int    `xml:"NENBUN>yy"`
	Prefecture   string `xml:"SOFUSAKI>TODOFUKEN"`
	Municipality string `xml:"SOFUSAKI>SHIKUCHOSON"`
}

type incomeDoc struct {
	XMLName   xml.Name  `xml:"DATA"`
	Synthetic string    `xml:"RKO0010>CATALOG>SYNTHETIC"`
	IT        itSection `xml:"RKO0010>CONTENTS>IT"`
	Form1     struct {
		Revenue struct {
			Salary  int64 `xml:"KYUYO"`
			Pension int64 `xml:"ZATSU_NENKIN"`
			Misc    int64 `xml:"ZATSU_GYOMU"`
		} `xml:"SHUNYU"`
		Income struct {
			Salary  int64 `xml:"KYUYO"`
			Pension int64 `xml:"ZATSU_NENKIN"`
			Misc    int64 `xml:"ZATSU_GYOMU"`
			Total   int64 `xml:"GOKEI"`
		} `xml:"SHOTOKU"`
		Deductions struct {
			Social    int64 `xml:"SHAKAI_HOKEN"`
			Life      int64 `xml:"SEIMEI_HOKEN"`
			Quake     int64 `xml:"JISHIN_HOKEN"`
			Spouse    int64 `xml:"HAIGUSHA"`
			Dependent int64 `xml:"FUYO"`
			Basic     int64 `xml:"KISO"`
			Medical   int64 `xml:"IRYOHI"`
			Total     int64 `xml:"GOKEI"`
		} `xml:"KOJO"`
		Tax struct {
			Taxable        int64 `xml:"KAZEI_SHOTOKU"`
			Tax            int64 `xml:"ZEIGAKU"`
			Reconstruction int64 `xml:"FUKKO_TOKUBETSU"`
			Total          int64 `xml:"ZEIGAKU_GOKEI"`
			Withheld       int64 `xml:"GENSEN_CHOSHU"`
			Due            int64 `xml:"SHINKOKU_NOZEI"`
			Refund         int64 `xml:"KANPU"`
		} `xml:"ZEIKIN"`
	} `xml:"RKO0010>CONTENTS>KOA020"`
	Payers []struct {
		Kind     string `xml:"SHOTOKU_SHURUI"`
		Revenue  int64  `xml:"SHUNYU_KINGAKU"`
		Withheld int64  `xml:"GENSEN_CHOSHU"`
	} `xml:"RKO0010>CONTENTS>KOA210>SHOTOKU_UCHIWAKE>MEISAI"`
	Social    []int64 `xml:"RKO0010>CONTENTS>KOA210>SHAKAI_HOKEN_UCHIWAKE>MEISAI>SHIHARAI_KINGAKU"`
	Life      []int64 `xml:"RKO0010>CONTENTS>KOA210>SEIMEI_HOKEN_UCHIWAKE>MEISAI>KOJO_GAKU"`
	Relatives []struct {
		MyNumber  string `xml:"KOJINBANGO>kojinbango"`
		Relation  string `xml:"ZOKUGARA"`
		Deduction int64  `xml:"KOJO_GAKU"`
	} `xml:"RKO0010>CONTENTS>KOA210>SHINZOKU>MEISAI"`
}

type blueDoc struct {
	XMLName   xml.Name  `xml:"DATA"`
	Synthetic string    `xml:"RKO0010>CATALOG>SYNTHETIC"`
	IT        itSection `xml:"RKO0010>CONTENTS>IT"`
	Form      struct {
		Business string `xml:"GYOSHU_NM"`
		PL       struct {
			Sales int64 `xml:"URIAGE"`
			Cost  struct {
				Opening  int64 `xml:"KISHU_TANAOROSHI"`
				Purchase int64 `xml:"SHIIRE"`
				Subtotal int64 `xml:"SHOKEI"`
				Closing  int64 `xml:"KIMATSU_TANAOROSHI"`
				Cost     int64 `xml:"SAGAKU_GENKA"`
			} `xml:"URIAGE_GENKA"`
			Gross    int64   `xml:"SASHIHIKI_KINGAKU"`
			Expenses []int64 `xml:"KEIHI>KOMOKU>KINGAKU"`
			ExpTotal int64   `xml:"KEIHI>GOKEI"`
			Net      int64   `xml:"SASHIHIKI"`
			BlueDed  int64   `xml:"AOIRO_TOKUBETSU_KOJO"`
			Income   int64   `xml:"SHOTOKU_KINGAKU"`
		} `xml:"SONEKI"`
		MonthlySales     []int64 `xml:"TSUKIBETSU>TSUKI>URIAGE"`
		MonthlyPurchases []int64 `xml:"TSUKIBETSU>TSUKI>SHIIRE"`
		SelfUse          int64   `xml:"TSUKIBETSU>KAJI_SHOHI"`
		MiscIncome       int64   `xml:"TSUKIBETSU>ZATSU_SHUNYU"`
	} `xml:"RKO0010>CONTENTS>KOA110"`
}

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

func checkIT(t *testing.T, what string, it itSection, pref, muni string, year int) {
	t.Helper()
	if err := ValidMyNumber(it.MyNumber); err != nil {
		t.Errorf("%s: taxpayer %v", what, err)
	}
	if it.Name == "" || it.NameKana == "" || !strings.HasPrefix(it.Address, pref) {
		t.Errorf("%s: taxpayer name %q / kana %q / address %q incomplete or not in %s", what, it.Name, it.NameKana, it.Address, pref)
	}
	if it.Prefecture != pref || it.Municipality != muni {
		t.Errorf("%s: recipient %q %q, want %q %q (escaping must round-trip)", what, it.Prefecture, it.Municipality, pref, muni)
	}
	if !strings.HasSuffix(it.TaxOffice, "税務署") {
		t.Errorf("%s: tax office %q does not end in 税務署", what, it.TaxOffice)
	}
	if want := year - 2018; it.Era != eraReiwa || it.EraYear != want {
		t.Errorf("%s: 年分 era %d year %d, want Reiwa (%d) %d for %d", what, it.Era, it.EraYear, eraReiwa, want, year)
	}
}

func TestIncomeTaxReturnXMLConsistent(t *testing.T) {
	g := NewGenerator(11)
	checked := 0
	for i := 0; checked < 300; i++ {
		rc := testRecipients[i%len(testRecipients)]
		n := g.Next(rc.name, rc.pref)
		if n.Type != TypeIncomeTaxReturn {
			continue
		}
		checked++
		what := fmt.Sprintf("%s for %s%s", n.FileName, rc.pref, rc.name)
		checkWellFormedXML(t, what, n.Body)
		var d incomeDoc
		if err := xml.Unmarshal(n.Body, &d); err != nil {
			t.Fatalf("%s: unmarshal: %v", what, err)
		}
		if d.Synthetic != "true" {
			t.Errorf("%s: SYNTHETIC marker is %q, want true", what, d.Synthetic)
		}
		checkIT(t, what, d.IT, rc.pref, rc.name, n.TaxYear)
		f := d.Form1
		if f.Income.Salary != salaryIncome(f.Revenue.Salary) {
			t.Errorf("%s: 給与所得 %d, want %d for revenue %d", what, f.Income.Salary, salaryIncome(f.Revenue.Salary), f.Revenue.Salary)
		}
		if f.Income.Pension != max(0, f.Revenue.Pension-1_100_000) {
			t.Errorf("%s: 公的年金等の所得 %d for revenue %d", what, f.Income.Pension, f.Revenue.Pension)
		}
		if got := f.Income.Salary + f.Income.Pension + f.Income.Misc; f.Income.Total != got {
			t.Errorf("%s: 所得合計 %d, parts sum to %d", what, f.Income.Total, got)
		}
		dd := f.Deductions
		if got := dd.Social + dd.Life + dd.Quake + dd.Spouse + dd.Dependent + dd.Basic + dd.Medical; dd.Total != got {
			t.Errorf("%s: 所得控除合計 %d, parts sum to %d", what, dd.Total, got)
		}
		if dd.Social != sum(d.Social) || dd.Life != sum(d.Life) {
			t.Errorf("%s: 第一表 social %d / life %d disagree with 第二表 %d / %d", what, dd.Social, dd.Life, sum(d.Social), sum(d.Life))
		}
		if dd.Basic != 480_000 {
			t.Errorf("%s: 基礎控除 %d, want 480000", what, dd.Basic)
		}
		var rel int64
		for _, r := range d.Relatives {
			rel += r.Deduction
			if err := ValidMyNumber(r.MyNumber); err != nil {
				t.Errorf("%s: relative (%s) %v", what, r.Relation, err)
			}
		}
		if dd.Spouse+dd.Dependent != rel {
			t.Errorf("%s: 配偶者+扶養控除 %d, relatives sum to %d", what, dd.Spouse+dd.Dependent, rel)
		}
		x := f.Tax
		if want := max(0, f.Income.Total-dd.Total) / 1000 * 1000; x.Taxable != want {
			t.Errorf("%s: 課税所得 %d, want %d", what, x.Taxable, want)
		}
		if x.Tax != incomeTax(x.Taxable) || x.Reconstruction != x.Tax*21/1000 || x.Total != x.Tax+x.Reconstruction {
			t.Errorf("%s: tax %d + 復興 %d = %d inconsistent for taxable %d", what, x.Tax, x.Reconstruction, x.Total, x.Taxable)
		}
		var withheld, revenue int64
		for _, p := range d.Payers {
			withheld += p.Withheld
			revenue += p.Revenue
		}
		if withheld != x.Withheld || revenue != f.Revenue.Salary+f.Revenue.Pension+f.Revenue.Misc {
			t.Errorf("%s: payers withheld %d / revenue %d, 第一表 says %d / %d", what, withheld, revenue, x.Withheld,
				f.Revenue.Salary+f.Revenue.Pension+f.Revenue.Misc)
		}
		diff := x.Total - x.Withheld
		if diff >= 0 && (x.Due != diff/100*100 || x.Refund != 0) || diff < 0 && (x.Refund != -diff || x.Due != 0) {
			t.Errorf("%s: tax %d withheld %d gives due %d refund %d", what, x.Total, x.Withheld, x.Due, x.Refund)
		}
	}
}

func TestBlueReturnXMLConsistent(t *testing.T) {
	g := NewGenerator(12)
	checked := 0
	for i := 0; checked < 200; i++ {
		rc := testRecipients[i%len(testRecipients)]
		n := g.Next(rc.name, rc.pref)
		if n.Type != TypeBlueReturn {
			continue
		}
		checked++
		what := fmt.Sprintf("%s for %s%s", n.FileName, rc.pref, rc.name)
		checkWellFormedXML(t, what, n.Body)
		var d blueDoc
		if err := xml.Unmarshal(n.Body, &d); err != nil {
			t.Fatalf("%s: unmarshal: %v", what, err)
		}
		if d.Synthetic != "true" {
			t.Errorf("%s: SYNTHETIC marker is %q, want true", what, d.Synthetic)
		}
		checkIT(t, what, d.IT, rc.pref, rc.name, n.TaxYear)
		f, pl := d.Form, d.Form.PL
		if f.Business == "" || len(f.MonthlySales) != 12 || len(f.MonthlyPurchases) != 12 || len(pl.Expenses) != 18 {
			t.Fatalf("%s: business %q, %d months of sales, %d of purchases, %d expense items; want 12, 12, 18",
				what, f.Business, len(f.MonthlySales), len(f.MonthlyPurchases), len(pl.Expenses))
		}
		if want := sum(f.MonthlySales) + f.SelfUse + f.MiscIncome; pl.Sales != want {
			t.Errorf("%s: 売上 %d, months + 家事消費 + 雑収入 = %d", what, pl.Sales, want)
		}
		c := pl.Cost
		if c.Purchase != sum(f.MonthlyPurchases) || c.Subtotal != c.Opening+c.Purchase || c.Cost != c.Subtotal-c.Closing {
			t.Errorf("%s: cost of sales inconsistent: %+v, monthly purchases %d", what, c, sum(f.MonthlyPurchases))
		}
		if pl.Gross != pl.Sales-c.Cost || pl.ExpTotal != sum(pl.Expenses) || pl.Net != pl.Gross-pl.ExpTotal {
			t.Errorf("%s: P&L inconsistent: gross %d, expenses %d (items %d), net %d", what, pl.Gross, pl.ExpTotal, sum(pl.Expenses), pl.Net)
		}
		if pl.BlueDed != min(650_000, max(0, pl.Net)) || pl.Income != pl.Net-pl.BlueDed {
			t.Errorf("%s: 青色申告特別控除 %d / 所得 %d wrong for net %d", what, pl.BlueDed, pl.Income, pl.Net)
		}
	}
}

func TestIncomeTaxTable(t *testing.T) {
	// Values from the NTA 所得税の速算表 (tax = income x rate - deduction).
	for _, tt := range []struct{ taxable, want int64 }{
		{0, 0}, {1_000_000, 50_000}, {1_949_000, 97_450}, {1_950_000, 97_500},
		{3_000_000, 202_500}, {5_000_000, 572_500}, {8_000_000, 1_204_000},
		{10_000_000, 1_764_000}, {20_000_000, 5_204_000}, {50_000_000, 17_704_000},
	} {
		if got := incomeTax(tt.taxable); got != tt.want {
			t.Errorf("incomeTax(%d) = %d, want %d", tt.taxable, got, tt.want)
		}
	}
	for _, tt := range []struct{ revenue, want int64 }{
		{1_000_000, 450_000}, {1_700_000, 1_120_000}, {3_000_000, 2_020_000},
		{5_000_000, 3_560_000}, {8_000_000, 6_100_000}, {10_000_000, 8_050_000},
	} {
		if got := salaryIncome(tt.revenue); got != tt.want {
			t.Errorf("salaryIncome(%d) = %d, want %d", tt.revenue, got, tt.want)
		}
	}
}

func TestXMLEscapesHostileInput(t *testing.T) {
	g := NewGenerator(3)
	const muni, pref = "<悪>&\"市'\x01", "県\xff]]>"
	seen := map[string]bool{}
	for i := 0; len(seen) < 2 && i < 200; i++ {
		n := g.Next(muni, pref)
		if n.ContentType != ContentTypeXML {
			continue
		}
		seen[n.Type] = true
		checkWellFormedXML(t, n.FileName, n.Body)
		var d incomeDoc
		if err := xml.Unmarshal(n.Body, &d); err != nil {
			t.Fatalf("%s: %v", n.FileName, err)
		}
		if d.IT.Municipality != "<悪>&\"市'\uFFFD" || d.IT.Prefecture != "県\uFFFD]]>" {
			t.Errorf("%s: recipient round-tripped as %q / %q; want specials kept and invalid characters replaced by U+FFFD",
				n.FileName, d.IT.Municipality, d.IT.Prefecture)
		}
	}
	if len(seen) < 2 {
		t.Errorf("only saw XML types %v in 200 draws", seen)
	}
}

func TestWarekiBoundaries(t *testing.T) {
	for _, tt := range []struct {
		date      string
		era, year int
	}{
		{"1989-01-07", eraShowa, 64}, {"1989-01-08", eraHeisei, 1},
		{"2019-04-30", eraHeisei, 31}, {"2019-05-01", eraReiwa, 1}, {"2024-12-31", eraReiwa, 6},
	} {
		d, _ := time.Parse(time.DateOnly, tt.date)
		if era, y := wareki(d); era != tt.era || y != tt.year {
			t.Errorf("wareki(%s) = %d/%d, want %d/%d", tt.date, era, y, tt.era, tt.year)
		}
	}
}
