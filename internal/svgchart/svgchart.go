// Package svgchart draws small, dependency-free SVG charts for the taxlink
// web console's dashboard: time-series line charts ([Line]), horizontal bar
// charts ([Bars]) and a [Sampler] that turns monotonically increasing
// counters into per-second rates.
//
// The output is a standalone XML document fragment (no XML declaration)
// that can be served as image/svg+xml or inlined into HTML. It is written
// for a strict Content-Security-Policy: it never contains a script, a
// <style> element or a style attribute; all styling uses SVG presentation
// attributes (fill, stroke, font-size, ...). Every piece of caller-supplied
// text is XML-escaped, and characters that XML cannot carry are replaced by
// U+FFFD, so the output always parses as well-formed XML.
//
// Output is deterministic: the same input yields the same bytes.
package svgchart

import (
	"bytes"
	"encoding/xml"
	"math"
	"slices"
	"strconv"
	"time"
)

// Point is one sample of a time series: value V observed at time T.
type Point struct {
	// T is when the value was observed.
	T time.Time
	// V is the observed value. NaN and ±Inf values are not drawn.
	V float64
}

// Series is a named time series drawn as one line by [Line].
type Series struct {
	// Name labels the series in the legend (shown when there is more than
	// one series). It is escaped; any UTF-8 text is allowed.
	Name string
	// Points are the samples. They need not be sorted: Line draws them in
	// time order (stable for equal times).
	Points []Point
}

// Bar is one row of a [Bars] chart.
type Bar struct {
	// Label names the row (drawn left of the bar, truncated with "…" when
	// too long; the full label is kept in the row's tooltip <title>).
	Label string
	// V is the bar's value. Rows with NaN or ±Inf values are skipped;
	// negative values are drawn as empty bars but still labelled.
	V float64
}

// Options control a chart's title, size, value unit and time zone. The zero
// value is valid.
type Options struct {
	// Title is drawn at the top and used as the accessible name
	// (<title> and aria-label); the drawn copy is truncated with "…" to
	// the chart's width. When empty, a generic name ("line chart", "bar
	// chart") is used for accessibility and nothing is drawn.
	Title string
	// Width and Height are the SVG's size in user units (the viewBox). Zero
	// or negative means the default 640×200; sizes are raised to at least
	// 160×80. For Bars, Height 0 means "tall enough for every row". A
	// chart may grow beyond the requested size when its content cannot fit.
	Width, Height int
	// Unit is appended verbatim to value labels, e.g. "/s", "s", "件".
	Unit string
	// Loc is the time zone for time-axis labels; nil means UTC.
	Loc *time.Location
}

const (
	defaultWidth  = 640
	defaultHeight = 200
	minWidth      = 160
	minHeight     = 80

	fontSize  = 11.0
	titleSize = 13.0
	pad       = 8.0

	colText  = "#333333"
	colMuted = "#666666"
	colAxis  = "#888888"
	colGrid  = "#e0e0e0"

	maxBars = 30
)

// palette is a fixed, colour-blind-friendly sequence (Tableau 10 subset).
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// dashes distinguishes series once the palette has been used up.
var dashes = []string{"", "6 3", "2 2"}

func (o Options) size(defH int) (w, h int) {
	w, h = o.Width, o.Height
	if w <= 0 {
		w = defaultWidth
	}
	if h <= 0 {
		h = defH
	}
	return max(w, minWidth), max(h, minHeight)
}

func (o Options) name(def string) string {
	if o.Title != "" {
		return o.Title
	}
	return def
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// esc returns s escaped for XML character data and attribute values.
// Invalid UTF-8 and characters outside XML's range become U+FFFD.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writes to a bytes.Buffer never fail
	return b.String()
}

// num formats a coordinate with at most one decimal.
func num(x float64) string {
	r := math.Round(x*10) / 10
	if r == 0 || !finite(r) {
		r = 0
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// wide reports whether r is usually rendered full-width (CJK and friends).
func wide(r rune) bool {
	return (r >= 0x1100 && r <= 0x115F) || (r >= 0x2E80 && r <= 0xA4CF) ||
		(r >= 0xAC00 && r <= 0xD7A3) || (r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0xFE30 && r <= 0xFE4F) || (r >= 0xFF00 && r <= 0xFF60) ||
		(r >= 0xFFE0 && r <= 0xFFE6) || (r >= 0x1F300 && r <= 0x1FAFF) ||
		(r >= 0x20000 && r <= 0x3FFFD)
}

// textWidth estimates the rendered width of s at the given font size.
func textWidth(s string, size float64) float64 {
	w := 0.0
	for _, r := range s {
		if wide(r) {
			w += size
		} else {
			w += 0.6 * size
		}
	}
	return w
}

// truncate shortens s with a trailing "…" so that it fits in maxW.
func truncate(s string, maxW, size float64) string {
	if textWidth(s, size) <= maxW {
		return s
	}
	ell := textWidth("…", size)
	w := 0.0
	for i, r := range s {
		rw := 0.6 * size
		if wide(r) {
			rw = size
		}
		if w+rw+ell > maxW {
			return s[:i] + "…"
		}
		w += rw
	}
	return s
}

// formatValue formats v compactly with at most three significant digits:
// 0.25, 12.5, 999, 1.2k, 3.4M, 5G, 2T; larger values use exponent form.
func formatValue(v float64) string {
	if v == 0 {
		return "0"
	}
	if !finite(v) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	sign, a := "", v
	if a < 0 {
		sign, a = "-", -a
	}
	if a < 1 {
		return sign + strconv.FormatFloat(a, 'g', 3, 64)
	}
	units := []struct {
		div float64
		suf string
	}{{1, ""}, {1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}}
	for _, u := range units {
		r, _ := strconv.ParseFloat(strconv.FormatFloat(a/u.div, 'g', 3, 64), 64)
		if r < 1000 {
			return sign + strconv.FormatFloat(r, 'f', -1, 64) + u.suf
		}
	}
	return sign + strconv.FormatFloat(a, 'g', 3, 64)
}

// niceScale returns the top of a value axis starting at 0 that covers v,
// and the number n (3 to 5) of equal intervals between 0 and top. The
// interval size is 1, 2, 2.5 or 5 times a power of ten. Values that are not
// positive and finite give (1, 5).
func niceScale(v float64) (top float64, n int) {
	if !(v >= 1e-300) || math.IsInf(v, 0) {
		return 1, 5
	}
	exp := int(math.Floor(math.Log10(v)))
	for e := exp - 1; e <= exp+1; e++ {
		for _, m := range []float64{1, 2, 2.5, 5} {
			var step float64
			if e < 0 {
				step = m / math.Pow10(-e)
			} else {
				step = m * math.Pow10(e)
			}
			k := math.Ceil(v/step - 1e-9)
			if k > 5 {
				continue
			}
			k = max(k, 1)
			if e < 0 {
				top = k * m / math.Pow10(-e)
			} else {
				top = k * m * math.Pow10(e)
			}
			if math.IsInf(top, 0) {
				return v, 4
			}
			return top, int(k)
		}
	}
	return v, 4 // unreachable for finite positive v
}

const day = 24 * time.Hour

// tickSteps are the candidate time-axis steps. Consecutive steps differ by
// at most a factor of 1.5, which guarantees a step giving 4–6 ticks for any
// span from one minute to well over a year.
var tickSteps = []time.Duration{
	10 * time.Second, 15 * time.Second, 20 * time.Second, 30 * time.Second, 45 * time.Second,
	time.Minute, 90 * time.Second, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute,
	5 * time.Minute, 6 * time.Minute, 8 * time.Minute, 10 * time.Minute, 12 * time.Minute,
	15 * time.Minute, 20 * time.Minute, 30 * time.Minute, 45 * time.Minute,
	time.Hour, 90 * time.Minute, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour,
	8 * time.Hour, 12 * time.Hour, 18 * time.Hour, day, 36 * time.Hour, 2 * day, 3 * day,
	4 * day, 5 * day, 7 * day, 10 * day, 14 * day, 21 * day, 30 * day, 45 * day, 60 * day, 90 * day,
}

// preferredStep reports the rounder steps, chosen first when they fit.
func preferredStep(s time.Duration) bool {
	switch s {
	case 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
		5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
		2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, day, 2 * day, 7 * day,
		14 * day, 30 * day:
		return true
	}
	return false
}

// ticksFor returns the instants base+k·step inside [t0, t1], base being
// local midnight of t0's day, stopping after limit+1 ticks. Whole-day steps
// count calendar days, so ticks stay on local midnight across DST changes.
func ticksFor(t0, t1 time.Time, step time.Duration, loc *time.Location, limit int) []time.Time {
	l := t0.In(loc)
	y, m, d := l.Date()
	base := time.Date(y, m, d, 0, 0, 0, 0, loc)
	var out []time.Time
	if step%day == 0 {
		n := int(step / day)
		for k := 0; len(out) <= limit; k += n {
			t := time.Date(y, m, d+k, 0, 0, 0, 0, loc)
			if t.After(t1) {
				break
			}
			if !t.Before(t0) {
				out = append(out, t)
			}
		}
		return out
	}
	k := t0.Sub(base) / step
	if base.Add(k * step).Before(t0) {
		k++
	}
	for t := base.Add(k * step); !t.After(t1) && len(out) <= limit; t = t.Add(step) {
		out = append(out, t)
	}
	return out
}

// timeTicks picks 4–6 time-axis ticks for [t0, t1] (t1-t0 ≥ 1 minute) and
// their distinct labels in loc: "15:04" ("15:04:05" for sub-minute steps),
// the date "01-02" instead for a tick at midnight when the ticks cross
// midnight, "01-02" for whole-day steps, and "01-02 15:04" when sub-day
// ticks span a day or more.
func timeTicks(t0, t1 time.Time, loc *time.Location) ([]time.Time, []string) {
	var ticks []time.Time
	step := time.Duration(0)
	for _, pref := range []bool{true, false} {
		for _, s := range tickSteps {
			if pref && !preferredStep(s) {
				continue
			}
			tk := ticksFor(t0, t1, s, loc, 6)
			if len(tk) >= 4 && len(tk) <= 6 {
				ticks, step = tk, s
				break
			}
		}
		if step != 0 {
			break
		}
	}
	if step == 0 { // spans beyond the table: whole days, about five ticks
		span := t1.Sub(t0)
		step = max((span/5+day-1)/day*day, day)
		ticks = ticksFor(t0, t1, step, loc, 8)
	}
	labels := make([]string, len(ticks))
	if len(ticks) == 0 {
		return ticks, labels
	}
	layout, dated := "15:04", false
	switch {
	case step%day == 0:
		layout = "01-02"
	case ticks[len(ticks)-1].Sub(ticks[0]) >= day:
		layout = "01-02 15:04"
	case step%time.Minute != 0:
		layout = "15:04:05"
	default:
		y0, m0, d0 := ticks[0].In(loc).Date()
		y1, m1, d1 := ticks[len(ticks)-1].In(loc).Date()
		dated = y0 != y1 || m0 != m1 || d0 != d1
	}
	for i, tk := range ticks {
		l := tk.In(loc)
		if dated && l.Hour() == 0 && l.Minute() == 0 {
			labels[i] = l.Format("01-02")
		} else {
			labels[i] = l.Format(layout)
		}
	}
	return ticks, labels
}

// svg accumulates the output document.
type svg struct{ b bytes.Buffer }

func (s *svg) open(w, h float64, name string) {
	n := esc(name)
	s.b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="` + num(w) + `" height="` + num(h) +
		`" viewBox="0 0 ` + num(w) + ` ` + num(h) + `" role="img" aria-label="` + n +
		`" font-family="sans-serif" font-size="` + num(fontSize) + `">` + "\n")
	s.b.WriteString("<title>" + n + "</title>\n")
	s.b.WriteString(`<rect width="` + num(w) + `" height="` + num(h) + `" fill="#ffffff"/>` + "\n")
}

func (s *svg) close() []byte {
	s.b.WriteString("</svg>\n")
	return s.b.Bytes()
}

// text writes a <text> element; anchor is "start", "middle" or "end".
func (s *svg) text(x, y float64, anchor string, size float64, fill, body string, bold bool) {
	s.b.WriteString(`<text x="` + num(x) + `" y="` + num(y) + `"`)
	if anchor != "start" {
		s.b.WriteString(` text-anchor="` + anchor + `"`)
	}
	if size != fontSize {
		s.b.WriteString(` font-size="` + num(size) + `"`)
	}
	if bold {
		s.b.WriteString(` font-weight="bold"`)
	}
	s.b.WriteString(` fill="` + fill + `">` + esc(body) + "</text>\n")
}

func (s *svg) line(x1, y1, x2, y2 float64, stroke string) {
	s.b.WriteString(`<line x1="` + num(x1) + `" y1="` + num(y1) + `" x2="` + num(x2) + `" y2="` + num(y2) +
		`" stroke="` + stroke + `" stroke-width="1"/>` + "\n")
}

// title draws o.Title, if any, with its top at y, truncated to width w
// (the full title stays in the accessible name).
func (s *svg) title(o Options, y, w float64) {
	if o.Title != "" {
		s.text(pad, y+titleSize, "start", titleSize, colText, truncate(o.Title, w-2*pad, titleSize*1.05), true)
	}
}

// legendItem is a laid-out legend entry for series index i.
type legendItem struct {
	x, y float64
	name string
	i    int
}

// layoutLegend places one entry per series in rows of height 16 (at most
// three) between pad and w-pad, starting at y. Entries that do not fit are
// replaced by a "+N more" note at (moreX, moreY). It returns the y below
// the legend.
func layoutLegend(series []Series, w, y float64) (items []legendItem, more string, moreX, moreY, next float64) {
	const rowH, maxRows = 16.0, 3
	x, row := pad, 0
	for i, s := range series {
		name := truncate(s.Name, 160, fontSize)
		iw := 14 + textWidth(name, fontSize) + 12
		if x > pad && x+iw > w-pad {
			if row == maxRows-1 {
				break
			}
			row++
			x = pad
		}
		items = append(items, legendItem{x: x, y: y + float64(row)*rowH, name: name, i: i})
		x += iw
	}
	lastY := y + float64(row)*rowH
	for len(items) < len(series) {
		more = "+" + strconv.Itoa(len(series)-len(items)) + " more"
		if x+textWidth(more, fontSize) <= w-pad || len(items) == 0 || items[len(items)-1].y != lastY {
			break
		}
		x = items[len(items)-1].x
		items = items[:len(items)-1]
	}
	return items, more, x, lastY + fontSize, lastY + rowH
}

// Line draws the series as polylines over a shared time axis and value
// axis and returns the SVG document.
//
// The time axis spans the earliest to the latest finite point (at least one
// minute, centred on the data) and carries 4–6 tick labels in o.Loc,
// formatted HH:MM (HH:MM:SS for sub-minute steps; a tick at midnight shows
// its date MM-DD instead; whole-day steps show MM-DD and other ticks
// spanning a day or more MM-DD HH:MM). The value axis runs from 0 to a "nice" maximum (1, 2, 2.5 or 5
// times a power of ten per interval, 3–5 intervals) with compact labels
// (1.2k, 3.4M) followed by o.Unit; negative values are clipped to the 0
// baseline. Points with NaN or ±Inf values are skipped and the line joins
// their neighbours; a series with a single finite point is drawn as a dot.
// Series get colours from a fixed palette in order, and a legend is drawn
// when there is more than one series. When no series has a finite point,
// only the axes, the title and the text "no data" are drawn.
func Line(series []Series, o Options) []byte {
	wi, hi := o.size(defaultHeight)
	w, h := float64(wi), float64(hi)
	loc := o.Loc
	if loc == nil {
		loc = time.UTC
	}

	// Finite points of each series, in time order; data extent.
	pts := make([][]Point, len(series))
	var t0, t1 time.Time
	vmax, have := 0.0, false
	for i, s := range series {
		for _, p := range s.Points {
			if !finite(p.V) {
				continue
			}
			pts[i] = append(pts[i], p)
			if !have || p.T.Before(t0) {
				t0 = p.T
			}
			if !have || p.T.After(t1) {
				t1 = p.T
			}
			vmax = max(vmax, p.V)
			have = true
		}
		slices.SortStableFunc(pts[i], func(a, b Point) int { return a.T.Compare(b.T) })
	}
	if have && t1.Sub(t0) < time.Minute {
		mid := t0.Add(t1.Sub(t0) / 2)
		t0, t1 = mid.Add(-30*time.Second), mid.Add(30*time.Second)
	}

	// Layout, top to bottom.
	var out svg
	top := pad
	titleY := top
	if o.Title != "" {
		top += titleSize + 6
	}
	var legend []legendItem
	var more string
	var moreX, moreY float64
	if len(series) > 1 {
		legend, more, moreX, moreY, top = layoutLegend(series, w, top+2)
		top += 2
	}
	top += 4

	var yTop float64
	var yN int
	var yLabels []string
	left := 2 * pad
	if have {
		yTop, yN = niceScale(vmax)
		for i := 0; i <= yN; i++ {
			l := formatValue(yTop/float64(yN)*float64(i)) + o.Unit
			yLabels = append(yLabels, l)
			left = max(left, pad+textWidth(l, fontSize)+6)
		}
	}
	right := 2 * pad
	bottom := fontSize + 10.0
	if h-bottom-top < 20 {
		h = top + 20 + bottom
	}
	if w-right-left < 40 {
		w = left + 40 + right
	}
	px0, px1, py0, py1 := left, w-right, top, h-bottom

	out.open(w, h, o.name("line chart"))
	out.title(o, titleY, w)

	if have {
		for i, l := range yLabels {
			y := py1 - (py1-py0)*float64(i)/float64(yN)
			if i > 0 {
				out.line(px0, y, px1, y, colGrid)
			}
			out.text(px0-6, y+fontSize*0.35, "end", fontSize, colMuted, l, false)
		}
	}
	out.line(px0, py0, px0, py1, colAxis)
	out.line(px0, py1, px1, py1, colAxis)

	if !have {
		out.text((px0+px1)/2, (py0+py1)/2+fontSize*0.35, "middle", fontSize, colMuted, "no data", false)
	} else {
		span := float64(t1.Sub(t0))
		xOf := func(t time.Time) float64 {
			f := float64(t.Sub(t0)) / span
			return px0 + (px1-px0)*min(max(f, 0), 1)
		}
		yOf := func(v float64) float64 {
			f := v / yTop
			return py1 - (py1-py0)*min(max(f, 0), 1)
		}
		ticks, labels := timeTicks(t0, t1, loc)
		for i, tk := range ticks {
			x := xOf(tk)
			out.line(x, py1, x, py1+4, colAxis)
			l := labels[i]
			anchor, lx := "middle", x
			if half := textWidth(l, fontSize) / 2; x+half > w-2 {
				anchor, lx = "end", w-2
			} else if x-half < 2 {
				anchor, lx = "start", 2
			}
			out.text(lx, py1+4+fontSize, anchor, fontSize, colMuted, l, false)
		}
		for i, ps := range pts {
			if len(ps) == 0 {
				continue
			}
			col := palette[i%len(palette)]
			if len(ps) == 1 {
				out.b.WriteString(`<circle cx="` + num(xOf(ps[0].T)) + `" cy="` + num(yOf(ps[0].V)) + `" r="2.5" fill="` + col + `"/>` + "\n")
				continue
			}
			out.b.WriteString(`<polyline fill="none" stroke="` + col + `" stroke-width="1.5" stroke-linejoin="round"`)
			if d := dashes[i/len(palette)%len(dashes)]; d != "" {
				out.b.WriteString(` stroke-dasharray="` + d + `"`)
			}
			out.b.WriteString(` points="`)
			for j, p := range ps {
				if j > 0 {
					out.b.WriteByte(' ')
				}
				out.b.WriteString(num(xOf(p.T)) + "," + num(yOf(p.V)))
			}
			out.b.WriteString(`"/>` + "\n")
		}
	}

	for _, it := range legend {
		// The swatch is a short thick stroke so that dashes show too.
		sy := it.y + fontSize*0.6
		out.b.WriteString(`<line x1="` + num(it.x) + `" y1="` + num(sy) + `" x2="` + num(it.x+10) + `" y2="` + num(sy) +
			`" stroke="` + palette[it.i%len(palette)] + `" stroke-width="3"`)
		if d := dashes[it.i/len(palette)%len(dashes)]; d != "" {
			out.b.WriteString(` stroke-dasharray="` + d + `"`)
		}
		out.b.WriteString("/>\n")
		out.text(it.x+14, it.y+fontSize, "start", fontSize, colText, it.name, false)
	}
	if more != "" {
		out.text(moreX, moreY, "start", fontSize, colMuted, more, false)
	}
	return out.close()
}

// Bars draws one horizontal bar per row, in the order given (callers pass
// the highest first), and returns the SVG document. Each row shows its
// label on the left (truncated with "…" to at most about a third of the
// width, the full label in the row's tooltip), the bar scaled to the
// largest value, and the compactly formatted value followed by o.Unit to
// the right of the bar. Rows with NaN or ±Inf values are skipped; of the
// rest at most 30 are drawn and the remainder is summarised as "+N more".
// With o.Height 0 the chart is as tall as its rows need (20 units a row);
// otherwise rows are squeezed (or, if they cannot fit, the chart grows).
// Empty input draws the title and the text "no data".
func Bars(bars []Bar, o Options) []byte {
	wi, _ := o.size(defaultHeight)
	w := float64(wi)
	var rows []Bar
	for _, b := range bars {
		if finite(b.V) {
			rows = append(rows, b)
		}
	}
	more := 0
	if len(rows) > maxBars {
		more = len(rows) - maxBars
		rows = rows[:maxBars]
	}

	top := pad
	titleY := top
	if o.Title != "" {
		top += titleSize + 6
	}
	top += 2
	moreH := 0.0
	if more > 0 {
		moreH = fontSize + 8
	}
	rowH := 20.0
	var h float64
	if o.Height > 0 {
		h = float64(max(o.Height, minHeight))
		if len(rows) > 0 {
			rowH = min(max((h-top-pad-moreH)/float64(len(rows)), 8), 28)
		}
	}
	need := top + float64(len(rows))*rowH + moreH + pad
	if len(rows) == 0 {
		need = top + 40
	}
	h = max(h, need, minHeight)
	fs := min(fontSize, rowH*0.75)

	var out svg
	if len(rows) == 0 {
		out.open(w, h, o.name("bar chart"))
		out.title(o, titleY, w)
		out.text(w/2, (top+h)/2+fontSize*0.35, "middle", fontSize, colMuted, "no data", false)
		return out.close()
	}

	labels := make([]string, len(rows))
	values := make([]string, len(rows))
	labelW, valueW, vmax := 0.0, 0.0, 0.0
	for i, b := range rows {
		labels[i] = truncate(b.Label, w/3, fs)
		values[i] = formatValue(b.V) + o.Unit
		labelW = max(labelW, textWidth(labels[i], fs))
		valueW = max(valueW, textWidth(values[i], fs))
		vmax = max(vmax, b.V)
	}
	x0 := pad + labelW + 6
	area := w - x0 - 4 - valueW - pad
	if area < 40 {
		area = 40
		w = x0 + area + 4 + valueW + pad
	}

	out.open(w, h, o.name("bar chart"))
	out.title(o, titleY, w)
	for i, b := range rows {
		y := top + float64(i)*rowH
		bw := 0.0
		if vmax > 0 && b.V > 0 {
			bw = area * min(b.V/vmax, 1)
		}
		out.b.WriteString("<g>\n<title>" + esc(b.Label) + ": " + esc(values[i]) + "</title>\n")
		out.b.WriteString(`<rect x="` + num(x0) + `" y="` + num(y+rowH*0.15) + `" width="` + num(bw) +
			`" height="` + num(rowH*0.7) + `" fill="` + palette[0] + `"/>` + "\n")
		base := y + rowH/2 + fs*0.35
		out.text(x0-6, base, "end", fs, colText, labels[i], false)
		out.text(x0+bw+4, base, "start", fs, colMuted, values[i], false)
		out.b.WriteString("</g>\n")
	}
	out.line(x0, top, x0, top+float64(len(rows))*rowH, colAxis)
	if more > 0 {
		out.text(x0, top+float64(len(rows))*rowH+fontSize+4, "start", fontSize, colMuted, "+"+strconv.Itoa(more)+" more", false)
	}
	return out.close()
}
