// Package synth generates synthetic but realistic Japanese tax notifications
// for taxlink's development network and tests: e-Tax-like XML income tax
// returns (所得税及び復興特別所得税の申告書, procedure RKO0010), blue-return
// financial statements (青色申告決算書) and PDF scans of paper returns, as the
// National Tax Agency would relay them to local governments.
//
// Every taxpayer is fake: names, addresses and payers come from small built-in
// lists and random numbers. Generated 個人番号 (My Numbers) have valid check
// digits so that they pass validation, which means one may coincide with a
// real person's number by chance; never mix generated data with real data.
// Documents carry a marker saying they are synthetic (SYNTHETIC element in
// XML, the text line and /Producer in PDFs).
//
// Output is deterministic: a Generator created with a given seed produces the
// same sequence of taxpayers and notifications, byte for byte, within one
// build (it uses math/rand/v2's PCG and no clock).
package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Notification types produced by Generator.Next.
const (
	// TypeIncomeTaxReturn is an e-Tax-like XML income tax return
	// (procedure RKO0010, forms KOA020 and KOA210).
	TypeIncomeTaxReturn = "income-tax-return"
	// TypeBlueReturn is an e-Tax-like XML blue-return financial statement
	// (青色申告決算書（一般用）, form KOA110).
	TypeBlueReturn = "blue-return"
	// TypePaperReturnScan is a PDF scan of a paper return.
	TypePaperReturnScan = "paper-return-scan"
)

// Content types of notification bodies.
const (
	ContentTypeXML = "application/xml"
	ContentTypePDF = "application/pdf"
)

// LatestTaxYear is the most recent tax year (暦年) Next generates returns
// for; most notifications are for it, a few for the two years before (late
// or amended filings).
const LatestTaxYear = 2024

// Sizes of generated paper-return scans, in bytes.
const (
	MinScanSize = 150_000
	MaxScanSize = 500_000
)

// MyNumberError is the error ValidMyNumber and MyNumberCheckDigit return. It
// deliberately does not contain the rejected number: a real 個人番号 must not
// end up in logs.
type MyNumberError struct {
	// Reason says what is wrong, e.g. "check digit 9, expected 8".
	Reason string
}

// Error returns "my number: " followed by the reason.
func (e *MyNumberError) Error() string {
	return "my number: " + e.Reason
}

// MyNumberCheckDigit returns the check digit (an ASCII digit '0'..'9') of a
// 個人番号 given its first 11 digits: numbering those digits n = 1..11 from
// the RIGHT, digit n is weighted n+1 for n ≤ 6 and n−5 for n ≥ 7 (so the
// rightmost gets 2 and the leftmost 6); with S the weighted sum and r = S mod
// 11, the check digit is 0 if r ≤ 1, else 11 − r. For example the check digit
// of 12345678901 is 8. It returns a *MyNumberError unless first11 is exactly
// 11 ASCII digits.
func MyNumberCheckDigit(first11 string) (byte, error) {
	if len(first11) != 11 || !allDigits(first11) {
		return 0, &MyNumberError{Reason: "the first eleven digits must be exactly 11 ASCII digits"}
	}
	s := 0
	for n := 1; n <= 11; n++ {
		w := n + 1
		if n >= 7 {
			w = n - 5
		}
		s += int(first11[11-n]-'0') * w
	}
	r := s % 11
	if r <= 1 {
		return '0', nil
	}
	return byte('0' + 11 - r), nil
}

// ValidMyNumber reports whether n is a well-formed 個人番号: exactly 12 ASCII
// digits whose last is MyNumberCheckDigit of the first 11. The error is a
// *MyNumberError and never contains n.
func ValidMyNumber(n string) error {
	if len(n) != 12 || !allDigits(n) {
		return &MyNumberError{Reason: fmt.Sprintf("must be exactly 12 ASCII digits (got %d bytes)", len(n))}
	}
	want, err := MyNumberCheckDigit(n[:11])
	if err != nil {
		return err // unreachable: n[:11] is eleven digits
	}
	if n[11] != want {
		return &MyNumberError{Reason: fmt.Sprintf("check digit %c, expected %c", n[11], want)}
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

// Generator produces deterministic synthetic taxpayers and notifications. It
// is not safe for concurrent use; give each goroutine its own Generator
// (e.g. seeded with base seed + worker number).
type Generator struct {
	r *rand.Rand
}

// NewGenerator returns a Generator whose whole output is determined by seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{r: newRand(seed)}
}

// newRand returns a PCG-backed source determined by seed.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Taxpayer is a fake individual taxpayer.
type Taxpayer struct {
	// MyNumber is a 12-digit 個人番号 that satisfies ValidMyNumber.
	MyNumber string
	// Name is family and given name in kanji separated by an ideographic
	// space, e.g. "山田　太郎".
	Name string
	// NameKana is the reading of Name in full-width katakana, e.g.
	// "ヤマダ　タロウ".
	NameKana string
	// Address is a street address in the municipality given to
	// Generator.Taxpayer, e.g. "北海道札幌市中央三丁目4番5号".
	Address string
	// Birth is the date of birth as YYYY-MM-DD; the taxpayer is 20 to 85
	// years old at the end of LatestTaxYear.
	Birth string
}

// person is a name with its reading.
type person struct{ kanji, kana string }

// Built-in name and address lists (constant tables; never modified).
var (
	familyNames = [...]person{
		{"佐藤", "サトウ"}, {"鈴木", "スズキ"}, {"高橋", "タカハシ"}, {"田中", "タナカ"},
		{"伊藤", "イトウ"}, {"渡辺", "ワタナベ"}, {"山本", "ヤマモト"}, {"中村", "ナカムラ"},
		{"小林", "コバヤシ"}, {"加藤", "カトウ"}, {"吉田", "ヨシダ"}, {"山田", "ヤマダ"},
		{"佐々木", "ササキ"}, {"山口", "ヤマグチ"}, {"松本", "マツモト"}, {"井上", "イノウエ"},
		{"木村", "キムラ"}, {"林", "ハヤシ"}, {"斎藤", "サイトウ"}, {"清水", "シミズ"},
		{"森", "モリ"}, {"池田", "イケダ"}, {"橋本", "ハシモト"}, {"石川", "イシカワ"},
	}
	givenNames = [...]person{
		{"太郎", "タロウ"}, {"花子", "ハナコ"}, {"翔太", "ショウタ"}, {"陽菜", "ヒナ"},
		{"健一", "ケンイチ"}, {"美咲", "ミサキ"}, {"大輔", "ダイスケ"}, {"由美子", "ユミコ"},
		{"誠", "マコト"}, {"裕子", "ユウコ"}, {"蓮", "レン"}, {"結衣", "ユイ"},
		{"浩二", "コウジ"}, {"恵子", "ケイコ"}, {"拓也", "タクヤ"}, {"さくら", "サクラ"},
		{"直樹", "ナオキ"}, {"智子", "トモコ"}, {"悠真", "ユウマ"}, {"明美", "アケミ"},
	}
	townNames = [...]string{
		"本町", "中央", "栄町", "緑町", "旭町", "幸町", "若葉", "東町", "西町", "南町",
		"北町", "桜木町", "宮前", "新町", "大手町", "元町", "錦町", "泉町", "駅前", "住吉",
	}
	buildingNames = [...]string{"コーポ", "ハイツ", "メゾン", "レジデンス", "グランドパレス", "サンハイム"}
	kanjiNumerals = [...]string{"一", "二", "三", "四", "五", "六", "七", "八", "九"}
)

// Taxpayer returns a new fake taxpayer living in municipality (e.g. "札幌市")
// of prefecture (e.g. "北海道"). If municipality is empty or equal to
// prefecture (a prefecture as recipient), the address names only the
// prefecture. The names are used verbatim; they need not be real.
func (g *Generator) Taxpayer(prefecture, municipality string) Taxpayer {
	fam := familyNames[g.r.IntN(len(familyNames))]
	given := givenNames[g.r.IntN(len(givenNames))]
	birth := g.birthDate(LatestTaxYear-85, LatestTaxYear-20)
	return Taxpayer{
		MyNumber: g.myNumber(),
		Name:     fam.kanji + "　" + given.kanji,
		NameKana: fam.kana + "　" + given.kana,
		Address:  g.address(prefecture, municipality, true),
		Birth:    birth.Format(time.DateOnly),
	}
}

// myNumber returns a random valid 個人番号.
func (g *Generator) myNumber() string {
	var b [12]byte
	for i := range 11 {
		b[i] = byte('0' + g.r.IntN(10))
	}
	c, _ := MyNumberCheckDigit(string(b[:11])) // cannot fail: 11 digits
	b[11] = c
	return string(b[:])
}

// birthDate returns a uniformly random date in years [from, to].
func (g *Generator) birthDate(from, to int) time.Time {
	start := time.Date(from, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(to+1, 1, 1, 0, 0, 0, 0, time.UTC)
	days := int(end.Sub(start) / (24 * time.Hour))
	return start.AddDate(0, 0, g.r.IntN(days))
}

// address returns a street address; withBuilding allows an apartment suffix.
func (g *Generator) address(prefecture, municipality string, withBuilding bool) string {
	var b strings.Builder
	b.WriteString(prefecture)
	if municipality != prefecture {
		b.WriteString(municipality)
	}
	b.WriteString(townNames[g.r.IntN(len(townNames))])
	fmt.Fprintf(&b, "%s丁目%d番%d号", kanjiNumerals[g.r.IntN(len(kanjiNumerals))], 1+g.r.IntN(30), 1+g.r.IntN(25))
	if withBuilding && g.r.IntN(10) < 3 {
		fmt.Fprintf(&b, "　%s%s%d号室",
			townNames[g.r.IntN(len(townNames))], buildingNames[g.r.IntN(len(buildingNames))],
			100*(1+g.r.IntN(8))+1+g.r.IntN(9))
	}
	return b.String()
}

// Notification is one generated tax notification, ready to be relayed.
type Notification struct {
	// Type is TypeIncomeTaxReturn, TypeBlueReturn or TypePaperReturnScan.
	Type string
	// ContentType is ContentTypeXML for the XML types and ContentTypePDF
	// for scans.
	ContentType string
	// FileName is "<Type>-<TaxYear>-<16 hex digits>.<xml|pdf>"; the hex part
	// is random, so names are unique in practice.
	FileName string
	// Body is the document: a few KB of well-formed UTF-8 XML, or a PDF 1.4
	// of MinScanSize to MaxScanSize bytes.
	Body []byte
	// TaxYear is the tax year (暦年) the return is for.
	TaxYear int
}

// Next returns the next notification for a taxpayer living in
// recipientName (a municipality, or a prefecture) of prefecture. The mix is
// about 70% TypeIncomeTaxReturn, 20% TypeBlueReturn and 10%
// TypePaperReturnScan. recipientName and prefecture may be any strings; they
// are escaped in XML.
func (g *Generator) Next(recipientName string, prefecture string) Notification {
	kind := g.r.IntN(100)
	year := g.taxYear()
	id := g.r.Uint64()
	tp := g.Taxpayer(prefecture, recipientName)
	var n Notification
	switch {
	case kind < 70:
		n = Notification{Type: TypeIncomeTaxReturn, ContentType: ContentTypeXML,
			Body: g.incomeTaxReturnXML(tp, year, recipientName, prefecture)}
	case kind < 90:
		n = Notification{Type: TypeBlueReturn, ContentType: ContentTypeXML,
			Body: g.blueReturnXML(tp, year, recipientName, prefecture)}
	default:
		size := MinScanSize + 10_000 + g.r.IntN(MaxScanSize-MinScanSize-30_000)
		pages := 1 + g.r.IntN(2)
		title := fmt.Sprintf("Synthetic scan of a paper income tax return, tax year %d, ref %016x", year, id)
		n = Notification{Type: TypePaperReturnScan, ContentType: ContentTypePDF,
			Body: renderPDF(size, pages, g.r.Uint64(), title)}
	}
	ext := "xml"
	if n.ContentType == ContentTypePDF {
		ext = "pdf"
	}
	n.TaxYear = year
	n.FileName = fmt.Sprintf("%s-%d-%016x.%s", n.Type, year, id, ext)
	return n
}

// taxYear returns LatestTaxYear 90% of the time, else one of the two
// previous years.
func (g *Generator) taxYear() int {
	switch p := g.r.IntN(100); {
	case p < 90:
		return LatestTaxYear
	case p < 97:
		return LatestTaxYear - 1
	default:
		return LatestTaxYear - 2
	}
}

// PDF returns a valid PDF 1.4 "scan" of about approxSize bytes (within a few
// percent for sizes above ~20 KB; there is a floor of a few KB), with one or
// two pages, more for large sizes (each page carries at most about 2 MB). For
// sizes above 8 MB prefer WritePDF, which streams.
func (g *Generator) PDF(approxSize int) []byte {
	pages := 1 + g.r.IntN(2)
	return renderPDF(approxSize, pages, g.r.Uint64(), "Synthetic scanned document")
}
