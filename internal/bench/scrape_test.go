package bench

import (
	"math"
	"testing"
)

// TestQuantileMS checks the quantile estimate from the difference of two
// cumulative histograms, as Prometheus' histogram_quantile interpolates.
func TestQuantileMS(t *testing.T) {
	inf := math.Inf(1)
	before := histogram{.005: 10, .01: 10, .02: 10, .05: 10, inf: 10}
	cases := []struct {
		name  string
		after histogram
		q     float64
		want  float64
	}{
		{"nothing observed", before, .99, 0},
		// 100 new: 50 ≤ 5 ms, 40 in (5, 10], 10 in (10, 20].
		{"median in the first bucket", histogram{.005: 60, .01: 100, .02: 110, .05: 110, inf: 110}, .5, 5},
		{"p90 at a bucket's top", histogram{.005: 60, .01: 100, .02: 110, .05: 110, inf: 110}, .9, 10},
		{"p99 within (10, 20]", histogram{.005: 60, .01: 100, .02: 110, .05: 110, inf: 110}, .99, 19},
		{"p99 in the unbounded bucket", histogram{.005: 10, .01: 10, .02: 10, .05: 11, inf: 110}, .99, 50},
	}
	for _, c := range cases {
		if got := quantileMS(before, c.after, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: q%.2f = %v ms, want %v ms", c.name, c.q, got, c.want)
		}
	}
}
