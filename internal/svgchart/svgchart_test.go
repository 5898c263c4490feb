package svgchart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // DST test zones independent of the host
)

const hostile = `</svg><script>alert(1)</script>"'&`

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// checkSVG asserts b is one well-formed (strict) SVG element with the
// accessibility attributes, a <title>, and nothing CSP-hostile.
func checkSVG(t *testing.T, b []byte) {
	t.Helper()
	for _, bad := range []string{"<script", "<style", "style=", "<?xml", "javascript:"} {
		if bytes.Contains(bytes.ToLower(b), []byte(bad)) {
			t.Errorf("output contains %q:\n%s", bad, b)
		}
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth, roots, titles := 0, 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element %v, want svg in the SVG namespace", tok.Name)
				}
				attrs := map[string]string{}
				for _, a := range tok.Attr {
					attrs[a.Name.Local] = a.Value
				}
				if attrs["role"] != "img" || attrs["aria-label"] == "" || attrs["viewBox"] == "" {
					t.Errorf("root attributes %v lack role=img, aria-label or viewBox", attrs)
				}
			}
			if depth == 1 && tok.Name.Local == "title" {
				titles++
			}
			for _, a := range tok.Attr {
				if strings.EqualFold(a.Name.Local, "style") || strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					t.Errorf("element %s has forbidden attribute %s", tok.Name.Local, a.Name.Local)
				}
			}
			switch strings.ToLower(tok.Name.Local) {
			case "style", "script", "foreignobject":
				t.Errorf("forbidden element %s", tok.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				t.Errorf("text outside the root element: %q", tok)
			}
		}
	}
	if roots != 1 || titles != 1 {
		t.Errorf("got %d root elements and %d top-level <title>s, want 1 and 1", roots, titles)
	}
}

func ramp(n int, every time.Duration, f func(i int) float64) []Point {
	ps := make([]Point, n)
	for i := range ps {
		ps[i] = Point{T: t0.Add(time.Duration(i) * every), V: f(i)}
	}
	return ps
}

func TestLine(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	lin := func(i int) float64 { return float64(i) }
	cases := []struct {
		name    string
		series  []Series
		o       Options
		want    []string // substrings of the output
		notWant []string
	}{
		{name: "nil", want: []string{"no data", `aria-label="line chart"`}},
		{name: "empty series", series: []Series{{Name: "a"}, {Name: "b"}}, o: Options{Title: "Rates"},
			want: []string{"no data", "<title>Rates</title>", ">Rates</text>"}},
		{name: "one point", series: []Series{{Name: "a", Points: []Point{{t0, 5}}}},
			want: []string{"<circle", ">09:59:45<", ">10:00:15<"}, notWant: []string{"no data", "<polyline"}},
		{name: "only NaN", series: []Series{{Name: "a", Points: []Point{{t0, math.NaN()}, {t0.Add(time.Minute), math.Inf(1)}}}},
			want: []string{"no data"}},
		{name: "NaN and Inf skipped", series: []Series{{Name: "a", Points: []Point{{t0, 1}, {t0.Add(time.Minute), math.NaN()},
			{t0.Add(2 * time.Minute), math.Inf(-1)}, {t0.Add(3 * time.Minute), 3}}}},
			want: []string{"<polyline"}, notWant: []string{"NaN", "Inf", "no data"}},
		{name: "huge value", series: []Series{{Name: "a", Points: ramp(10, time.Minute, func(i int) float64 { return 1e300 * float64(i) })}},
			want: []string{"<polyline", "e+"}},
		{name: "max float", series: []Series{{Name: "a", Points: []Point{{t0, math.MaxFloat64}, {t0.Add(time.Hour), 0}}}},
			want: []string{"<polyline"}, notWant: []string{"NaN", "Inf"}},
		{name: "hostile text", o: Options{Title: hostile, Unit: hostile},
			series: []Series{{Name: hostile, Points: ramp(5, time.Minute, lin)}, {Name: "b", Points: ramp(5, time.Minute, lin)}},
			want:   []string{"&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;"}},
		{name: "control chars and bad UTF-8", o: Options{Title: "a\x00b\x1b\xffc"},
			series: []Series{{Name: "x\x01", Points: ramp(3, time.Minute, lin)}, {Name: "y", Points: ramp(3, time.Minute, lin)}},
			want:   []string{"a\uFFFDb\uFFFD\uFFFDc"}},
		{name: "japanese", o: Options{Title: "受信者ごとの未処理件数", Unit: "件"},
			series: []Series{{Name: "送信", Points: ramp(60, time.Minute, lin)}, {Name: "受信", Points: ramp(60, time.Minute, lin)}},
			want:   []string{"受信者ごとの未処理件数", "送信", "受信", "60件"}},
		{name: "hour in Tokyo", o: Options{Loc: jst, Unit: "/s"},
			series: []Series{{Name: "a", Points: ramp(61, time.Minute, func(i int) float64 { return 1234 * float64(i) })}},
			want:   []string{">19:00<", ">19:15<", ">19:30<", ">19:45<", ">20:00<", ">80k/s<"}},
		{name: "unsorted and duplicate times",
			series: []Series{{Name: "a", Points: []Point{{t0.Add(2 * time.Minute), 2}, {t0, 0}, {t0.Add(time.Minute), 1}, {t0.Add(time.Minute), 4}}}},
			want:   []string{"<polyline"}},
		{name: "negative clipped", series: []Series{{Name: "a", Points: ramp(5, time.Minute, func(i int) float64 { return -float64(i) })}},
			want: []string{"<polyline"}},
		{name: "many series", series: func() []Series {
			var ss []Series
			for i := range 40 {
				ss = append(ss, Series{Name: fmt.Sprintf("recipient-%02d", i), Points: ramp(10, time.Minute, func(j int) float64 { return float64(i * j) })})
			}
			return ss
		}(), want: []string{"stroke-dasharray", " more<"}},
		{name: "tiny size", o: Options{Width: 1, Height: 1, Title: "a rather long title for such a small chart"},
			series: []Series{{Name: "a", Points: ramp(5, time.Hour, lin)}, {Name: "b", Points: ramp(5, time.Hour, lin)}},
			want:   []string{`width="160"`}},
		{name: "zero time mixed in", series: []Series{{Name: "a", Points: []Point{{time.Time{}, 1}, {t0, 2}, {t0.Add(time.Hour), 3}}}},
			want: []string{"<polyline"}},
		{name: "long title", o: Options{Title: strings.Repeat("長いタイトル", 30)}, series: []Series{{Name: "a", Points: ramp(3, time.Minute, lin)}},
			want: []string{"…</text>", "<title>" + strings.Repeat("長いタイトル", 30) + "</title>"}},
		{name: "days", series: []Series{{Name: "a", Points: ramp(30, 24*time.Hour, lin)}},
			want: []string{">03-21<"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := Line(c.series, c.o)
			checkSVG(t, b)
			for _, w := range c.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			for _, w := range c.notWant {
				if bytes.Contains(b, []byte(w)) {
					t.Errorf("output contains %q:\n%s", w, b)
				}
			}
			if again := Line(c.series, c.o); !bytes.Equal(b, again) {
				t.Error("output not deterministic")
			}
		})
	}
}

func TestBars(t *testing.T) {
	n := func(k int) []Bar {
		bs := make([]Bar, k)
		for i := range bs {
			bs[i] = Bar{Label: fmt.Sprintf("r%d", i), V: float64(k - i)}
		}
		return bs
	}
	cases := []struct {
		name    string
		bars    []Bar
		o       Options
		rects   int // bar <rect>s expected (excluding the background)
		want    []string
		notWant []string
	}{
		{name: "nil", want: []string{"no data", `aria-label="bar chart"`}},
		{name: "only NaN", bars: []Bar{{"a", math.NaN()}, {"b", math.Inf(1)}}, want: []string{"no data"}},
		{name: "one", bars: []Bar{{"alice", 12}}, o: Options{Title: "Backlog", Unit: "件"}, rects: 1,
			want: []string{">alice<", ">12件<", "<title>Backlog</title>"}},
		{name: "NaN skipped", bars: []Bar{{"a", 3}, {"nan", math.NaN()}, {"b", 1}}, rects: 2, notWant: []string{">nan<"}},
		{name: "exactly 30", bars: n(30), rects: 30, notWant: []string{"more"}},
		{name: "31", bars: n(31), rects: 30, want: []string{">+1 more<", ">r29<"}, notWant: []string{">r30<"}},
		{name: "100 fixed height", bars: n(100), o: Options{Height: 200}, rects: 30, want: []string{">+70 more<"}},
		{name: "huge", bars: []Bar{{"a", math.MaxFloat64}, {"b", 1e300}, {"c", 1}}, rects: 3, want: []string{"e+308"}},
		{name: "zero and negative", bars: []Bar{{"z", 0}, {"n", -5}}, rects: 2, want: []string{">-5<", ">0<"}},
		{name: "hostile", bars: []Bar{{hostile, 1}}, o: Options{Title: hostile, Unit: hostile}, rects: 1,
			want: []string{"&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;"}},
		{name: "japanese", bars: []Bar{{"東京都千代田区役所", 1200}, {"大阪", 5}}, o: Options{Unit: "件"}, rects: 2,
			want: []string{">東京都千代田区役所<", ">1.2k件<"}},
		{name: "long label truncated", bars: []Bar{{strings.Repeat("長い名前", 40), 1}}, rects: 1,
			want: []string{"…<", "<title>" + strings.Repeat("長い名前", 40) + ": 1</title>"}},
		{name: "narrow", bars: []Bar{{"a label", 1e15}}, o: Options{Width: 10}, rects: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := Bars(c.bars, c.o)
			checkSVG(t, b)
			if got := bytes.Count(b, []byte("<rect")) - 1; got != c.rects {
				t.Errorf("%d bars drawn, want %d", got, c.rects)
			}
			for _, w := range c.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("output lacks %q:\n%s", w, b)
				}
			}
			for _, w := range c.notWant {
				if bytes.Contains(b, []byte(w)) {
					t.Errorf("output contains %q:\n%s", w, b)
				}
			}
			if again := Bars(c.bars, c.o); !bytes.Equal(b, again) {
				t.Error("output not deterministic")
			}
		})
	}
}

func TestNiceScale(t *testing.T) {
	cases := []struct {
		v   float64
		top float64
		n   int
	}{
		{0, 1, 5}, {-3, 1, 5}, {math.NaN(), 1, 5}, {math.Inf(1), 1, 5},
		{0.3, 0.3, 3}, {0.9, 1, 5}, {1, 1, 5}, {3, 3, 3}, {5, 5, 5}, {7, 8, 4},
		{10, 10, 5}, {12, 12.5, 5}, {99, 100, 5}, {101, 125, 5}, {1234, 1250, 5},
		{0.0042, 0.005, 5}, {3.4e6, 4e6, 4}, {1e300, 1e300, 5},
		{math.MaxFloat64, math.MaxFloat64, 4},
	}
	for _, c := range cases {
		top, n := niceScale(c.v)
		if n != c.n || math.Abs(top-c.top) > 1e-12*c.top {
			t.Errorf("niceScale(%g) = %g, %d; want %g, %d", c.v, top, n, c.top, c.n)
		}
	}
	// Invariants over a wide sweep.
	for v := 1e-9; v < 1e15; v *= 1.0173 {
		top, n := niceScale(v)
		if top < v*(1-1e-9) || n < 3 || n > 5 {
			t.Fatalf("niceScale(%g) = %g, %d", v, top, n)
		}
		step := top / float64(n)
		m := step / math.Pow10(int(math.Floor(math.Log10(step)+1e-9)))
		if ok := func() bool {
			for _, want := range []float64{1, 2, 2.5, 5} {
				if math.Abs(m-want) < 1e-9 {
					return true
				}
			}
			return false
		}(); !ok {
			t.Fatalf("niceScale(%g) step %g is not 1, 2, 2.5 or 5 × 10^k", v, step)
		}
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.25, "0.25"}, {0.001, "0.001"}, {0.30000000000000004, "0.3"}, {1, "1"},
		{12.5, "12.5"}, {999, "999"}, {999.9, "1k"}, {1000, "1k"}, {1234, "1.23k"}, {1250, "1.25k"},
		{12345, "12.3k"}, {999999, "1M"}, {3.4e6, "3.4M"}, {1.5e9, "1.5G"}, {2e12, "2T"},
		{5e15, "5e+15"}, {-1200, "-1.2k"}, {1e-5, "1e-05"},
	}
	for _, c := range cases {
		if got := formatValue(c.v); got != c.want {
			t.Errorf("formatValue(%g) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	cases := []struct {
		from, to time.Duration // offsets from t0 (10:00 UTC)
		loc      *time.Location
		want     string
	}{
		{0, time.Hour, time.UTC, "10:00 10:15 10:30 10:45 11:00"},
		{3 * time.Minute, 58 * time.Minute, time.UTC, "10:10 10:20 10:30 10:40 10:50"},
		{0, time.Minute, time.UTC, "10:00:00 10:00:15 10:00:30 10:00:45 10:01:00"},
		{0, 6 * time.Hour, time.FixedZone("IST", 5*3600+1800), "16:00 17:00 18:00 19:00 20:00 21:00"},
		{0, 24 * time.Hour, time.UTC, "12:00 18:00 03-15 06:00"},
		{0, 10 * 24 * time.Hour, time.UTC, "03-16 03-18 03-20 03-22 03-24"},
	}
	for _, c := range cases {
		_, got := timeTicks(t0.Add(c.from), t0.Add(c.to), c.loc)
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("timeTicks(+%v, +%v, %v) = %q, want %q", c.from, c.to, c.loc, g, c.want)
		}
	}
	// Every span from a minute to over a year gets 4–6 distinct,
	// increasing ticks inside the span, in any zone.
	for _, loc := range []*time.Location{time.UTC, time.FixedZone("JST", 9*3600), time.FixedZone("IST", 5*3600+1800), time.FixedZone("X", -(3*3600 + 45*60))} {
		for span := time.Minute; span < 500*day; span = span*107/100 + time.Second {
			for _, off := range []time.Duration{0, 7 * time.Second, 17*time.Minute + 3*time.Second, 5*time.Hour + 59*time.Minute} {
				a := t0.Add(off)
				ticks, labels := timeTicks(a, a.Add(span), loc)
				if len(ticks) < 4 || len(ticks) > 6 {
					t.Fatalf("span %v at %v in %v: %d ticks", span, a, loc, len(ticks))
				}
				seen := map[string]bool{}
				for i, tk := range ticks {
					if tk.Before(a) || tk.After(a.Add(span)) || (i > 0 && !tk.After(ticks[i-1])) {
						t.Fatalf("span %v at %v: ticks %v out of order or range", span, a, ticks)
					}
					l := labels[i]
					if seen[l] {
						t.Fatalf("span %v at %v in %v: duplicate label %q", span, a, loc, l)
					}
					seen[l] = true
				}
			}
		}
	}
}

func TestTimeTicksDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []time.Time{time.Date(2025, 10, 30, 12, 0, 0, 0, ny), time.Date(2025, 3, 6, 12, 0, 0, 0, ny)} {
		for _, days := range []int{4, 10, 20} {
			ticks, labels := timeTicks(a, a.AddDate(0, 0, days), ny)
			seen := map[string]bool{}
			for i, tk := range ticks {
				if l := tk.In(ny); l.Hour() != 0 || l.Minute() != 0 || seen[labels[i]] {
					t.Errorf("%v + %d days: tick %v (%q) is not a distinct local midnight; labels %v", a, days, l, labels[i], labels)
				}
				seen[labels[i]] = true
			}
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, s := range []string{"short", strings.Repeat("x", 200), strings.Repeat("日本語", 50), "\xff\xfe" + strings.Repeat("a", 100)} {
		got := truncate(s, 100, fontSize)
		if textWidth(got, fontSize) > 100 {
			t.Errorf("truncate(%q) = %q is %g wide", s, got, textWidth(got, fontSize))
		}
		if got != s && !strings.HasSuffix(got, "…") {
			t.Errorf("truncate(%q) = %q lacks the ellipsis", s, got)
		}
	}
}
