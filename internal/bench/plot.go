package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteSVG draws r's relay run as an SVG chart: acceptances and verified
// recording receipts per second over time, the phases shaded, and F and J
// as reference lines when they fit the scale (else named in the legend).
// It needs r.Series, which only Run fills in.
func WriteSVG(w io.Writer, r *Result) error {
	const (
		W, H                   = 960, 420
		left, right, top, bott = 70, 20, 50, 60
	)
	pw, ph := float64(W-left-right), float64(H-top-bott)
	n := len(r.Series)
	if n == 0 {
		return fmt.Errorf("bench: no per-second series to plot")
	}
	ymax := 1.0
	for _, s := range r.Series {
		ymax = max(ymax, float64(s.Accepted), float64(s.Recorded))
	}
	refs := []struct {
		name string
		v    float64
		col  string
	}{{"F (8 KiB write+fdatasync)", r.FsyncPerS, "#c0392b"}, {"J (JetStream SyncAlways)", r.JetStreamPerS, "#8e44ad"}}
	for _, ref := range refs {
		if ref.v <= 1.5*ymax {
			ymax = max(ymax, ref.v)
		}
	}
	ymax = niceCeil(ymax * 1.08)
	x := func(t float64) float64 { return float64(left) + t/float64(n)*pw }
	y := func(v float64) float64 { return float64(top) + ph - v/ymax*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	title := fmt.Sprintf("taxlink bench, %s: %d recipients, %d CPUs — notifications per second", r.Date, r.Recipients, r.Host.CPUs)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Phases.
	for i, s := range r.Phases {
		fill := "#f4f6f7"
		if i%2 == 1 {
			fill = "#eaf2f8"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x(s.Start), top, max(x(s.End)-x(s.Start), 1), ph, fill)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#555">%s</text>`+"\n", x(s.Start)+3, top+14, html.EscapeString(s.Name))
	}
	// Axes and grid.
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, W-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	step := max(int(math.Ceil(float64(n)/12/10))*10, 10)
	for t := 0; t <= n; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(float64(t)), H-bott+18, t)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">seconds since the network started</text>`+"\n", float64(left)+pw/2, H-bott+36)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">per second</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, W-right, y(0), y(0))
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%.1f" stroke="#333"/>`+"\n", left, left, top, y(0))
	// Reference lines.
	var off []string
	for _, ref := range refs {
		if ref.v <= 0 {
			continue
		}
		if ref.v > ymax {
			off = append(off, fmt.Sprintf("%s = %.0f/s", ref.name, ref.v))
			continue
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>`+"\n", left, W-right, y(ref.v), y(ref.v), ref.col)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s = %.0f/s</text>`+"\n", W-right-4, y(ref.v)-4, ref.col, html.EscapeString(ref.name), ref.v)
	}
	// Series, plotted at the middle of each second.
	line := func(get func(Second) int, col string) {
		var pts []string
		for _, s := range r.Series {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(s.T)+0.5), y(float64(get(s)))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", col, strings.Join(pts, " "))
	}
	line(func(s Second) int { return s.Accepted }, "#2471a3")
	line(func(s Second) int { return s.Recorded }, "#229954")
	// Legend.
	ly := H - 10
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#2471a3" stroke-width="2"/><text x="%d" y="%d">accepted (hub receipt)</text>`+"\n", left, left+20, ly-4, ly-4, left+25, ly)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#229954" stroke-width="2"/><text x="%d" y="%d">verified recording receipts (end to end)</text>`+"\n", left+190, left+210, ly-4, ly-4, left+215, ly)
	if len(off) > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">off scale: %s</text>`+"\n", left+480, ly, html.EscapeString(strings.Join(off, ", ")))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("bench: write svg: %w", err)
	}
	return nil
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
