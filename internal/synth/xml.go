package synth

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Namespaces of the e-Tax-like documents. They mimic e-Tax's but the
// documents are not schema-valid e-Tax submissions.
const (
	nsShotoku = "http://xml.e-tax.nta.go.jp/XSD/shotoku"
	nsGeneral = "http://xml.e-tax.nta.go.jp/XSD/general"
)

// xmlDoc builds an indented XML document. Element and attribute names are
// the caller's constants; all text and attribute values are escaped, with
// characters that XML cannot hold replaced by U+FFFD, so the result is always
// well-formed UTF-8.
type xmlDoc struct {
	buf   bytes.Buffer
	stack []string
}

func newXMLDoc() *xmlDoc {
	d := &xmlDoc{}
	d.buf.WriteString(xml.Header)
	return d
}

func (d *xmlDoc) indent() {
	for range d.stack {
		d.buf.WriteString("  ")
	}
}

func (d *xmlDoc) escape(s string) {
	_ = xml.EscapeText(&d.buf, []byte(s)) // a bytes.Buffer does not fail
}

// open starts element name with attributes given as name, value pairs.
func (d *xmlDoc) open(name string, attrs ...string) {
	d.indent()
	d.buf.WriteByte('<')
	d.buf.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		d.buf.WriteByte(' ')
		d.buf.WriteString(attrs[i])
		d.buf.WriteString(`="`)
		d.escape(attrs[i+1])
		d.buf.WriteByte('"')
	}
	d.buf.WriteString(">\n")
	d.stack = append(d.stack, name)
}

// close ends the innermost open element.
func (d *xmlDoc) close() {
	name := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	d.indent()
	d.buf.WriteString("</")
	d.buf.WriteString(name)
	d.buf.WriteString(">\n")
}

// text writes <name>value</name>.
func (d *xmlDoc) text(name, value string) {
	d.indent()
	d.buf.WriteByte('<')
	d.buf.WriteString(name)
	d.buf.WriteByte('>')
	d.escape(value)
	d.buf.WriteString("</")
	d.buf.WriteString(name)
	d.buf.WriteString(">\n")
}

// yen writes an amount element.
func (d *xmlDoc) yen(name string, v int64) {
	d.text(name, strconv.FormatInt(v, 10))
}

// comment writes <!-- s -->; s is a constant without "--".
func (d *xmlDoc) comment(s string) {
	d.indent()
	d.buf.WriteString("<!-- ")
	d.buf.WriteString(s)
	d.buf.WriteString(" -->\n")
}

func (d *xmlDoc) bytes() []byte {
	for len(d.stack) > 0 {
		d.close()
	}
	return d.buf.Bytes()
}

// Japanese era (元号) codes as e-Tax numbers them.
const (
	eraShowa  = 3
	eraHeisei = 4
	eraReiwa  = 5
)

// wareki converts a date to era code and era year.
func wareki(t time.Time) (era, year int) {
	switch ymd := t.Year()*10000 + int(t.Month())*100 + t.Day(); {
	case ymd >= 20190501:
		return eraReiwa, t.Year() - 2018
	case ymd >= 19890108:
		return eraHeisei, t.Year() - 1988
	default:
		return eraShowa, t.Year() - 1925
	}
}

// warekiDate writes a date as e-Tax's gen:era/gen:yy/gen:mm/gen:dd group.
func (d *xmlDoc) warekiDate(name string, t time.Time) {
	era, y := wareki(t)
	d.open(name)
	d.text("gen:era", strconv.Itoa(era))
	d.text("gen:yy", strconv.Itoa(y))
	d.text("gen:mm", strconv.Itoa(int(t.Month())))
	d.text("gen:dd", strconv.Itoa(t.Day()))
	d.close()
}

// Tables for payers and businesses (constant; never modified).
var (
	companyStems    = [...]string{"さくら", "富士", "日本橋", "東西", "みらい", "青葉", "北斗", "大和", "丸の内", "瀬戸内", "若草", "ひかり"}
	companySuffixes = [...]string{"商事", "工業", "物産", "建設", "システムズ", "食品", "運輸", "製作所", "電機", "不動産", "ホールディングス", "サービス"}
	occupations     = [...]string{"会社員", "会社員", "会社員", "公務員", "看護師", "教員", "店員", "技術者", "パート"}
	businesses      = [...]struct {
		kind, tradeSuffix string
		costRatio         int // cost of sales as % of sales
	}{
		{"飲食店", "食堂", 35}, {"小売業", "商店", 65}, {"ソフトウェア開発", "ソフト工房", 0},
		{"美容業", "ヘアサロン", 10}, {"建設業", "工務店", 40}, {"学習塾", "塾", 0},
		{"写真撮影業", "写真館", 5}, {"デザイン業", "デザイン事務所", 0},
	}
	assets = [...]struct {
		name      string
		cost      int64
		lifeYears int
	}{
		{"軽自動車", 1_500_000, 4}, {"パソコン", 250_000, 4}, {"店舗内装", 3_000_000, 15},
		{"業務用冷蔵庫", 600_000, 6}, {"複合機", 400_000, 5}, {"エアコン", 300_000, 6},
	}
)

// amount returns a random multiple of unit in [lo, hi].
func (g *Generator) amount(lo, hi, unit int64) int64 {
	return (lo + g.r.Int64N(hi-lo+1)) / unit * unit
}

func (g *Generator) companyName() string {
	return "株式会社" + companyStems[g.r.IntN(len(companyStems))] + companySuffixes[g.r.IntN(len(companySuffixes))]
}

// filingDate returns a date in the filing season (2/16–3/15) after
// LatestTaxYear.
func (g *Generator) filingDate() time.Time {
	return time.Date(LatestTaxYear+1, 2, 16+g.r.IntN(28), 0, 0, 0, 0, time.UTC)
}

// taxOfficeName makes a plausible 税務署 name from the municipality.
func taxOfficeName(municipality, prefecture string) string {
	stem := municipality
	for _, suf := range []string{"市", "区", "町", "村"} {
		if s, ok := strings.CutSuffix(stem, suf); ok && s != "" {
			stem = s
			break
		}
	}
	if stem == "" || stem == prefecture {
		stem = strings.TrimRight(prefecture, "都道府県")
		if stem == "" {
			stem = "中央"
		}
	}
	return stem + "税務署"
}

// header writes the document start common to both XML types, up to and
// including the IT (共通情報) section, leaving CONTENTS open.
func (g *Generator) header(d *xmlDoc, tp Taxpayer, year int, municipality, prefecture, occupation string) {
	birth, _ := time.Parse(time.DateOnly, tp.Birth)
	filed := g.filingDate()
	d.open("DATA", "xmlns", nsShotoku, "xmlns:gen", nsGeneral, "id", "DATA")
	d.comment("taxlink synthetic data: fake taxpayer, not a real return")
	d.open("RKO0010", "VR", fmt.Sprintf("%d.0.0", year-2000), "id", "RKO0010")
	d.open("CATALOG", "id", "CATALOG")
	d.text("SYNTHETIC", "true")
	d.text("TETSUZUKI_NM", "所得税及び復興特別所得税申告")
	d.text("TEISHUTSU_NENGAPPI", filed.Format(time.DateOnly))
	d.close()
	d.open("CONTENTS", "id", "CONTENTS")
	d.open("IT", "VR", "1.6", "id", "IT")
	d.open("ZEIMUSHO", "ID", "ZEIMUSHO")
	d.text("gen:zeimusho_CD", fmt.Sprintf("%05d", 1000+g.r.IntN(98000)))
	d.text("gen:zeimusho_NM", taxOfficeName(municipality, prefecture))
	d.close()
	d.open("NOZEISHA_BANGO", "ID", "NOZEISHA_BANGO")
	d.text("gen:kojinbango", tp.MyNumber)
	d.close()
	d.text("NOZEISHA_NM_KN", tp.NameKana)
	d.text("NOZEISHA_NM", tp.Name)
	d.text("NOZEISHA_ADR", tp.Address)
	d.warekiDate("BIRTHDAY", birth)
	d.text("SHOKUGYO", occupation)
	era, y := wareki(time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC))
	d.open("NENBUN", "ID", "NENBUN")
	d.text("gen:era", strconv.Itoa(era))
	d.text("gen:yy", strconv.Itoa(y))
	d.close()
	d.open("SOFUSAKI", "ID", "SOFUSAKI")
	d.comment("送付先地方公共団体 (recipient local government)")
	d.text("TODOFUKEN", prefecture)
	d.text("SHIKUCHOSON", municipality)
	d.close()
	d.close() // IT
}

// incomeTax returns 所得税額 for taxable income (課税される所得金額) under
// the rate table in force since 2015.
func incomeTax(taxable int64) int64 {
	brackets := [...]struct{ upTo, ratePct, deduction int64 }{
		{1_949_000, 5, 0}, {3_299_000, 10, 97_500}, {6_949_000, 20, 427_500},
		{8_999_000, 23, 636_000}, {17_999_000, 33, 1_536_000}, {39_999_000, 40, 2_796_000},
	}
	for _, b := range brackets {
		if taxable <= b.upTo {
			return taxable*b.ratePct/100 - b.deduction
		}
	}
	return taxable*45/100 - 4_796_000
}

// salaryIncome returns 給与所得 for a salary revenue (給与所得控除, 2020+).
func salaryIncome(rev int64) int64 {
	var ded int64
	switch {
	case rev <= 1_625_000:
		ded = 550_000
	case rev <= 1_800_000:
		ded = rev*40/100 - 100_000
	case rev <= 3_600_000:
		ded = rev*30/100 + 80_000
	case rev <= 6_600_000:
		ded = rev*20/100 + 440_000
	case rev <= 8_500_000:
		ded = rev*10/100 + 1_100_000
	default:
		ded = 1_950_000
	}
	return max(0, rev-ded)
}

// ageAt returns the age on 12/31 of year.
func ageAt(birth string, year int) int {
	b, err := time.Parse(time.DateOnly, birth)
	if err != nil {
		return 40
	}
	return year - b.Year()
}

// incomeTaxReturnXML renders an e-Tax-like 確定申告書 (第一表 KOA020 and 第二表
// KOA210) with internally consistent amounts: 所得 = 収入 − 控除額, 課税所得 =
// (所得合計 − 所得控除合計) rounded down to 1,000 yen, 所得税 per the rate table,
// 復興特別所得税 2.1%, and 申告納税額 (rounded down to 100 yen) or 還付額.
func (g *Generator) incomeTaxReturnXML(tp Taxpayer, year int, municipality, prefecture string) []byte {
	age := ageAt(tp.Birth, year)
	pensioner := age >= 65 && g.r.IntN(10) < 7

	type payer struct {
		kind, item, name, addr string
		revenue, withheld      int64
	}
	var payers []payer
	var salaryRev, pensionRev, miscRev, miscExp int64
	occupation := occupations[g.r.IntN(len(occupations))]
	if pensioner {
		occupation = "無職"
		pensionRev = g.amount(1_200_000, 3_000_000, 1)
		payers = append(payers, payer{kind: "雑（公的年金等）", item: "老齢基礎年金・老齢厚生年金", name: "日本年金機構",
			addr: "東京都杉並区", revenue: pensionRev})
		if g.r.IntN(10) < 3 {
			salaryRev = g.amount(600_000, 1_500_000, 1_000)
			occupation = "パート"
		}
	} else {
		salaryRev = g.amount(2_400_000, 12_000_000, 1_000)
	}
	if salaryRev > 0 {
		main := salaryRev
		if g.r.IntN(10) < 2 { // a side job
			side := g.amount(300_000, 1_200_000, 1_000)
			main -= side
			payers = append(payers, payer{kind: "給与", item: "給料", name: g.companyName(),
				addr: g.address(prefecture, municipality, false), revenue: side})
		}
		payers = append([]payer{{kind: "給与", item: "給料・賞与", name: g.companyName(),
			addr: g.address(prefecture, municipality, false), revenue: main}}, payers...)
	}
	if g.r.IntN(10) < 3 { // side business / writing / consulting fees
		miscRev = g.amount(100_000, 1_500_000, 1)
		miscExp = miscRev * int64(10+g.r.IntN(40)) / 100
		payers = append(payers, payer{kind: "雑（業務）", item: "原稿料・講演料", name: g.companyName(),
			addr: g.address(prefecture, municipality, false), revenue: miscRev})
	}

	salaryInc := salaryIncome(salaryRev)
	pensionInc := max(0, pensionRev-1_100_000)
	miscInc := miscRev - miscExp
	totalInc := salaryInc + pensionInc + miscInc

	// Deductions (所得控除).
	type item struct {
		kind   string
		amount int64
	}
	var social []item
	if salaryRev > 0 {
		social = append(social, item{"健康保険料", salaryRev * 50 / 1000}, item{"厚生年金保険料", salaryRev * 915 / 10000},
			item{"雇用保険料", salaryRev * 6 / 1000})
		if age >= 40 && age < 65 {
			social = append(social, item{"介護保険料", salaryRev * 9 / 1000})
		}
	}
	if pensionRev > 0 {
		social = append(social, item{"国民健康保険税", g.amount(40_000, 120_000, 100)}, item{"介護保険料", g.amount(60_000, 90_000, 100)})
	}
	var socialIns int64
	for _, s := range social {
		socialIns += s.amount
	}
	lifeParts := []item{
		{"一般の生命保険料", g.amount(0, 40_000, 1_000)},
		{"介護医療保険料", g.amount(0, 40_000, 1_000)},
		{"個人年金保険料", g.amount(0, 40_000, 1_000)},
	}
	var lifeIns int64
	for _, l := range lifeParts {
		lifeIns += l.amount
	}
	quakeIns := g.amount(0, 50_000, 100)
	var medical int64
	if g.r.IntN(10) < 2 {
		medical = g.amount(10_000, 300_000, 1)
	}
	fam := strings.SplitN(tp.Name, "　", 2)[0]
	famKana := strings.SplitN(tp.NameKana, "　", 2)[0]
	type relative struct {
		name, kana, relation, birth, myNumber string
		deduction                             int64
	}
	var relatives []relative
	if age >= 28 && g.r.IntN(10) < 4 {
		given := givenNames[g.r.IntN(len(givenNames))]
		b := g.birthDate(year-age-5, min(year-age+5, year-20))
		relatives = append(relatives, relative{fam + "　" + given.kanji, famKana + "　" + given.kana, "配偶者",
			b.Format(time.DateOnly), g.myNumber(), 380_000})
	}
	if age >= 40 && age < 65 {
		for range g.r.IntN(3) {
			given := givenNames[g.r.IntN(len(givenNames))]
			b := g.birthDate(year-22, year-16)
			ded := int64(380_000)
			if a := year - b.Year(); a >= 19 {
				ded = 630_000 // 特定扶養親族
			}
			relatives = append(relatives, relative{fam + "　" + given.kanji, famKana + "　" + given.kana, "子",
				b.Format(time.DateOnly), g.myNumber(), ded})
		}
	}
	var spouseDed, dependentDed int64
	for _, rel := range relatives {
		if rel.relation == "配偶者" {
			spouseDed += rel.deduction
		} else {
			dependentDed += rel.deduction
		}
	}
	const basicDed = 480_000
	totalDed := socialIns + lifeIns + quakeIns + medical + spouseDed + dependentDed + basicDed

	taxable := max(0, totalInc-totalDed) / 1000 * 1000
	tax := incomeTax(taxable)
	reconstruction := tax * 21 / 1000
	totalTax := tax + reconstruction
	// Withholding: exact after 年末調整 for most, off for side income or
	// deductions only claimed here.
	withheld := totalTax * int64(85+g.r.IntN(31)) / 100
	var due, refund int64
	if diff := totalTax - withheld; diff >= 0 {
		due = diff / 100 * 100
	} else {
		refund = -diff
	}
	// Spread withholding over payers in proportion to revenue.
	var revSum int64
	for _, p := range payers {
		revSum += p.revenue
	}
	left := withheld
	for i := range payers {
		if i == len(payers)-1 {
			payers[i].withheld = left
		} else {
			payers[i].withheld = withheld * payers[i].revenue / max(revSum, 1)
			left -= payers[i].withheld
		}
	}

	d := newXMLDoc()
	g.header(d, tp, year, municipality, prefecture, occupation)

	d.open("KOA020", "VR", fmt.Sprintf("%d.0", year-2000), "page", "1", "id", "KOA020-1")
	d.comment("申告書第一表")
	d.open("SHUNYU", "label", "収入金額等")
	d.yen("KYUYO", salaryRev)
	d.yen("ZATSU_NENKIN", pensionRev)
	d.yen("ZATSU_GYOMU", miscRev)
	d.close()
	d.open("SHOTOKU", "label", "所得金額等")
	d.yen("KYUYO", salaryInc)
	d.yen("ZATSU_NENKIN", pensionInc)
	d.yen("ZATSU_GYOMU", miscInc)
	d.yen("GOKEI", totalInc)
	d.close()
	d.open("KOJO", "label", "所得から差し引かれる金額")
	d.yen("SHAKAI_HOKEN", socialIns)
	d.yen("SEIMEI_HOKEN", lifeIns)
	d.yen("JISHIN_HOKEN", quakeIns)
	d.yen("HAIGUSHA", spouseDed)
	d.yen("FUYO", dependentDed)
	d.yen("KISO", basicDed)
	d.yen("IRYOHI", medical)
	d.yen("GOKEI", totalDed)
	d.close()
	d.open("ZEIKIN", "label", "税金の計算")
	d.yen("KAZEI_SHOTOKU", taxable)
	d.yen("ZEIGAKU", tax)
	d.yen("FUKKO_TOKUBETSU", reconstruction)
	d.yen("ZEIGAKU_GOKEI", totalTax)
	d.yen("GENSEN_CHOSHU", withheld)
	d.yen("SHINKOKU_NOZEI", due)
	d.yen("KANPU", refund)
	d.close()
	if refund > 0 {
		d.open("KANPU_UKETORI", "label", "還付される税金の受取場所")
		d.text("GINKO_NM", companyStems[g.r.IntN(len(companyStems))]+"銀行")
		d.text("SHITEN_NM", townNames[g.r.IntN(len(townNames))]+"支店")
		d.text("YOKIN_SHURUI", "普通")
		d.text("KOZA_BANGO", fmt.Sprintf("%07d", g.r.IntN(10_000_000)))
		d.close()
	}
	d.close() // KOA020

	d.open("KOA210", "VR", fmt.Sprintf("%d.0", year-2000), "page", "1", "id", "KOA210-1")
	d.comment("申告書第二表")
	d.open("SHOTOKU_UCHIWAKE", "label", "所得の内訳（所得税及び復興特別所得税の源泉徴収税額）")
	for _, p := range payers {
		d.open("MEISAI")
		d.text("SHOTOKU_SHURUI", p.kind)
		d.text("SHUMOKU", p.item)
		d.text("SHIHARAISHA_NM", p.name)
		d.text("SHIHARAISHA_ADR", p.addr)
		d.yen("SHUNYU_KINGAKU", p.revenue)
		d.yen("GENSEN_CHOSHU", p.withheld)
		d.close()
	}
	d.close()
	d.open("SHAKAI_HOKEN_UCHIWAKE", "label", "社会保険料控除")
	for _, s := range social {
		d.open("MEISAI")
		d.text("SHURUI", s.kind)
		d.yen("SHIHARAI_KINGAKU", s.amount)
		d.close()
	}
	d.close()
	d.open("SEIMEI_HOKEN_UCHIWAKE", "label", "生命保険料控除")
	for _, l := range lifeParts {
		d.open("MEISAI")
		d.text("SHURUI", l.kind)
		d.yen("KOJO_GAKU", l.amount)
		d.close()
	}
	d.close()
	if len(relatives) > 0 {
		d.open("SHINZOKU", "label", "配偶者や親族に関する事項")
		for _, rel := range relatives {
			d.open("MEISAI")
			d.text("SHIMEI", rel.name)
			d.text("SHIMEI_KN", rel.kana)
			d.open("KOJINBANGO")
			d.text("gen:kojinbango", rel.myNumber)
			d.close()
			d.text("ZOKUGARA", rel.relation)
			b, _ := time.Parse(time.DateOnly, rel.birth)
			d.warekiDate("SEINENGAPPI", b)
			d.yen("KOJO_GAKU", rel.deduction)
			d.close()
		}
		d.close()
	}
	d.open("JUMINZEI", "label", "住民税・事業税に関する事項")
	method := "特別徴収"
	if salaryRev == 0 || g.r.IntN(10) < 3 {
		method = "自分で納付"
	}
	d.text("KYUYO_IGAI_CHOSHU_HOHO", method)
	d.text("KAZEI_SHICHOSON", prefecture+municipalityOrEmpty(municipality, prefecture))
	d.close()
	d.close() // KOA210
	return d.bytes()
}

func municipalityOrEmpty(municipality, prefecture string) string {
	if municipality == prefecture {
		return ""
	}
	return municipality
}

// blueReturnXML renders an e-Tax-like 青色申告決算書（一般用） (KOA110) with
// consistent amounts: 売上 = Σ 月別売上 + 家事消費 + 雑収入, 売上原価 =
// 期首棚卸 + 仕入 − 期末棚卸, 経費計 = Σ 経費, 差引金額 = 売上 − 原価 − 経費,
// 所得金額 = 差引金額 − 青色申告特別控除 (at most 650,000 and never making
// income negative).
func (g *Generator) blueReturnXML(tp Taxpayer, year int, municipality, prefecture string) []byte {
	biz := businesses[g.r.IntN(len(businesses))]
	fam := strings.SplitN(tp.Name, "　", 2)[0]
	trade := fam + biz.tradeSuffix

	monthlyBase := g.amount(250_000, 2_500_000, 1)
	var monthly [12]int64
	var monthlyPurchase [12]int64
	var salesMonths int64
	for m := range monthly {
		monthly[m] = monthlyBase * int64(80+g.r.IntN(41)) / 100
		salesMonths += monthly[m]
	}
	selfUse := int64(0)
	if biz.costRatio > 0 {
		selfUse = g.amount(0, 60_000, 1)
	}
	miscIncome := g.amount(0, 100_000, 1)
	sales := salesMonths + selfUse + miscIncome

	openingInv := int64(0)
	closingInv := int64(0)
	var purchases int64
	if biz.costRatio > 0 {
		openingInv = g.amount(100_000, 800_000, 1)
		closingInv = g.amount(100_000, 800_000, 1)
		for m := range monthlyPurchase {
			monthlyPurchase[m] = monthly[m] * int64(biz.costRatio) / 100
		}
		// Stock up (or run down) in December so cost lands near the ratio.
		monthlyPurchase[11] = max(0, monthlyPurchase[11]+closingInv-openingInv)
		for _, p := range monthlyPurchase {
			purchases += p
		}
	}
	cogs := openingInv + purchases - closingInv
	gross := sales - cogs

	// Depreciation (減価償却費の計算), straight-line.
	type asset struct {
		name         string
		acquired     time.Time
		cost, amount int64
		life         int
	}
	var depreciation []asset
	var depTotal int64
	for range 1 + g.r.IntN(3) {
		a := assets[g.r.IntN(len(assets))]
		acq := time.Date(year-g.r.IntN(a.lifeYears), time.Month(1+g.r.IntN(12)), 1, 0, 0, 0, 0, time.UTC)
		amt := a.cost / int64(a.lifeYears)
		depreciation = append(depreciation, asset{a.name, acq, a.cost, amt, a.lifeYears})
		depTotal += amt
	}
	// Wages (給料賃金の内訳).
	type employee struct {
		name   string
		months int
		wage   int64
	}
	var employees []employee
	var wageTotal int64
	staff := 0
	if monthlyBase > 800_000 {
		staff = 1 + g.r.IntN(2)
	}
	for range staff {
		f := familyNames[g.r.IntN(len(familyNames))]
		n := givenNames[g.r.IntN(len(givenNames))]
		months := 1 + g.r.IntN(12)
		wage := int64(months) * g.amount(80_000, 250_000, 1_000)
		employees = append(employees, employee{f.kanji + "　" + n.kanji, months, wage})
		wageTotal += wage
	}
	rent := g.amount(0, min(200_000, monthlyBase/5), 1_000) * 12
	// Other expenses: a random per-mille share of gross profit each.
	perMille := func(lo, hi int) int64 {
		return max(gross, 0) * int64(lo+g.r.IntN(hi-lo+1)) / 1000
	}
	expenses := []struct {
		code, label string
		amount      int64
	}{
		{"SOZEI_KOKA", "租税公課", perMille(5, 20)},
		{"NIZUKURI_UNCHIN", "荷造運賃", perMille(0, 20)},
		{"SUIDO_KONETSU", "水道光熱費", perMille(20, 60)},
		{"RYOHI_KOTSU", "旅費交通費", perMille(5, 30)},
		{"TSUSHIN", "通信費", perMille(10, 30)},
		{"KOKOKU_SENDEN", "広告宣伝費", perMille(5, 40)},
		{"SETTAI_KOSAI", "接待交際費", perMille(5, 30)},
		{"SONGAI_HOKEN", "損害保険料", perMille(2, 15)},
		{"SHUZEN", "修繕費", perMille(0, 30)},
		{"SHOMOHIN", "消耗品費", perMille(20, 80)},
		{"GENKA_SHOKYAKU", "減価償却費", depTotal},
		{"FUKURI_KOSEI", "福利厚生費", perMille(0, 15)},
		{"KYURYO_CHINGIN", "給料賃金", wageTotal},
		{"GAICHU_KOCHIN", "外注工賃", perMille(0, 150)},
		{"RISHI_WARIBIKI", "利子割引料", perMille(0, 15)},
		{"CHIDAI_YACHIN", "地代家賃", rent},
		{"KASHIDAORE", "貸倒金", 0},
		{"ZAPPI", "雑費", perMille(5, 20)},
	}
	var expTotal int64
	for _, e := range expenses {
		expTotal += e.amount
	}
	net := gross - expTotal
	blueDed := min(int64(650_000), max(net, 0))
	income := net - blueDed

	d := newXMLDoc()
	g.header(d, tp, year, municipality, prefecture, "自営業")
	d.open("KOA110", "VR", fmt.Sprintf("%d.0", year-2000), "page", "1", "id", "KOA110-1")
	d.comment("青色申告決算書（一般用）")
	d.text("GYOSHU_NM", biz.kind)
	d.text("YAGO", trade)
	d.text("JIGYOSHO_ADR", g.address(prefecture, municipality, false))
	d.open("SONEKI", "label", "損益計算書")
	d.yen("URIAGE", sales)
	d.open("URIAGE_GENKA")
	d.yen("KISHU_TANAOROSHI", openingInv)
	d.yen("SHIIRE", purchases)
	d.yen("SHOKEI", openingInv+purchases)
	d.yen("KIMATSU_TANAOROSHI", closingInv)
	d.yen("SAGAKU_GENKA", cogs)
	d.close()
	d.yen("SASHIHIKI_KINGAKU", gross)
	d.open("KEIHI")
	for _, e := range expenses {
		d.open("KOMOKU", "code", e.code, "label", e.label)
		d.yen("KINGAKU", e.amount)
		d.close()
	}
	d.yen("GOKEI", expTotal)
	d.close()
	d.yen("SASHIHIKI", net)
	d.yen("AOIRO_TOKUBETSU_KOJO", blueDed)
	d.yen("SHOTOKU_KINGAKU", income)
	d.close() // SONEKI

	d.open("TSUKIBETSU", "label", "月別売上（収入）金額及び仕入金額")
	for m := range monthly {
		d.open("TSUKI", "m", strconv.Itoa(m+1))
		d.yen("URIAGE", monthly[m])
		d.yen("SHIIRE", monthlyPurchase[m])
		d.close()
	}
	d.yen("KAJI_SHOHI", selfUse)
	d.yen("ZATSU_SHUNYU", miscIncome)
	d.close()

	if len(employees) > 0 {
		d.open("KYURYO_UCHIWAKE", "label", "給料賃金の内訳")
		for _, e := range employees {
			d.open("MEISAI")
			d.text("SHIMEI", e.name)
			d.text("JUJI_TSUKISU", strconv.Itoa(e.months))
			d.yen("KYUYO_KINGAKU", e.wage)
			d.close()
		}
		d.close()
	}
	d.open("GENKA_SHOKYAKU_KEISAN", "label", "減価償却費の計算")
	for _, a := range depreciation {
		d.open("MEISAI")
		d.text("SHISAN_NM", a.name)
		d.text("SHUTOKU_NENGETSU", a.acquired.Format("2006-01"))
		d.yen("SHUTOKU_KAGAKU", a.cost)
		d.text("SHOKYAKU_HOHO", "定額法")
		d.text("TAIYO_NENSU", strconv.Itoa(a.life))
		d.yen("HONNEN_SHOKYAKU", a.amount)
		d.close()
	}
	d.close()
	if rent > 0 {
		d.open("CHIDAI_YACHIN_UCHIWAKE", "label", "地代家賃の内訳")
		d.text("SHIHARAISAKI_NM", g.companyName())
		d.text("SHIHARAISAKI_ADR", g.address(prefecture, municipality, false))
		d.text("CHINSHAKU_BUKKEN", "店舗")
		d.yen("HONNEN_CHINRYO", rent)
		d.close()
	}
	d.close() // KOA110
	return d.bytes()
}
