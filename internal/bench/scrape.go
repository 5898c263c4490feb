package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"taxlink/internal/metrics"
)

// maxScrape bounds a /metrics answer the bench reads.
const maxScrape = 16 << 20

// histogram is the cumulative buckets of one Prometheus histogram: upper
// bound in seconds → observations at or below it.
type histogram map[float64]uint64

// acceptSteps reads the hub's acceptance histograms from its /metrics at
// addr: each step of taxlink_hub_accept_step_seconds by name, and
// taxlink_hub_accept_seconds as "total".
func acceptSteps(ctx context.Context, addr string) (map[string]histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxScrape))
	if err != nil {
		return nil, fmt.Errorf("bench: scrape: %w", err)
	}
	out := map[string]histogram{}
	read := func(m *dto.Metric) histogram {
		h := histogram{}
		for _, b := range m.GetHistogram().GetBucket() {
			h[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		h[math.Inf(1)] = m.GetHistogram().GetSampleCount()
		return h
	}
	if f := fams["taxlink_hub_accept_step_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "step" {
					out[l.GetValue()] = read(m)
				}
			}
		}
	}
	if f := fams["taxlink_hub_accept_seconds"]; f != nil && len(f.GetMetric()) == 1 {
		out["total"] = read(f.GetMetric()[0])
	}
	for _, s := range append(metrics.AcceptSteps(), "total") {
		if out[s] == nil {
			return nil, fmt.Errorf("bench: scrape: the hub's metrics lack the acceptance histogram %q", s)
		}
	}
	return out, nil
}

// quantileMS estimates the q quantile (0..1), in milliseconds, of what was
// observed between the histograms before and after, interpolating within
// the bucket it falls in as Prometheus' histogram_quantile does; a
// quantile in the last, unbounded bucket is its lower bound. It returns 0
// when nothing was observed.
func quantileMS(before, after histogram, q float64) float64 {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		n := float64(after[b] - before[b])
		if n >= rank {
			if math.IsInf(b, 1) {
				return lower * 1000
			}
			if n == below {
				return b * 1000
			}
			return (lower + (b-lower)*(rank-below)/(n-below)) * 1000
		}
		lower, below = b, n
	}
	return lower * 1000
}
