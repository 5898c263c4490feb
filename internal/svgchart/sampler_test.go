package svgchart

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSamplerRate(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type sample struct {
		s int // seconds after t0
		v float64
	}
	cases := []struct {
		name     string
		capacity int
		samples  []sample
		rate     []Point
		gauge    []float64
	}{
		{name: "none", capacity: 10},
		{name: "single sample", capacity: 10, samples: []sample{{0, 5}}, gauge: []float64{5}},
		{name: "steady", capacity: 10, samples: []sample{{0, 0}, {10, 100}, {20, 300}},
			rate: []Point{{at(10), 10}, {at(20), 20}}, gauge: []float64{0, 100, 300}},
		{name: "uneven intervals", capacity: 10, samples: []sample{{0, 0}, {4, 2}, {5, 3}},
			rate: []Point{{at(4), 0.5}, {at(5), 1}}, gauge: []float64{0, 2, 3}},
		{name: "flat", capacity: 10, samples: []sample{{0, 7}, {5, 7}},
			rate: []Point{{at(5), 0}}, gauge: []float64{7, 7}},
		{name: "counter reset", capacity: 10, samples: []sample{{0, 100}, {10, 200}, {20, 50}, {30, 150}},
			rate: []Point{{at(10), 10}, {at(30), 10}}, gauge: []float64{100, 200, 50, 150}},
		{name: "reset to zero", capacity: 10, samples: []sample{{0, 100}, {10, 0}, {20, 40}},
			rate: []Point{{at(20), 4}}, gauge: []float64{100, 0, 40}},
		{name: "time not advancing", capacity: 10, samples: []sample{{0, 0}, {0, 10}, {10, 20}, {5, 30}, {15, 40}},
			rate: []Point{{at(10), 1}, {at(15), 1}}, gauge: []float64{0, 10, 20, 30, 40}},
		{name: "non-finite ignored", capacity: 10, samples: []sample{{0, 0}, {5, math.NaN()}, {10, math.Inf(1)}, {20, 40}},
			rate: []Point{{at(20), 2}}, gauge: []float64{0, 40}},
		{name: "ring wrap", capacity: 3, samples: []sample{{0, 0}, {1, 1}, {2, 3}, {3, 6}, {4, 10}},
			rate: []Point{{at(3), 3}, {at(4), 4}}, gauge: []float64{3, 6, 10}},
		{name: "ring wrap twice with reset", capacity: 3,
			samples: []sample{{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 1}, {7, 9}},
			rate:    []Point{{at(7), 8}}, gauge: []float64{5, 1, 9}},
		{name: "capacity clamped to 2", capacity: 0, samples: []sample{{0, 0}, {1, 1}, {2, 5}},
			rate: []Point{{at(2), 4}}, gauge: []float64{1, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSampler(c.capacity)
			for _, x := range c.samples {
				s.Add("c", at(x.s), x.v)
				s.Add("other", at(x.s), -x.v) // must not interfere
			}
			r := s.Rate("c")
			if r.Name != "c" {
				t.Errorf("Rate name %q", r.Name)
			}
			if !slices.EqualFunc(r.Points, c.rate, func(a, b Point) bool { return a.T.Equal(b.T) && math.Abs(a.V-b.V) < 1e-12 }) {
				t.Errorf("Rate = %v, want %v", r.Points, c.rate)
			}
			g := s.Gauge("c")
			var gv []float64
			for _, p := range g.Points {
				gv = append(gv, p.V)
			}
			if g.Name != "c" || !slices.Equal(gv, c.gauge) {
				t.Errorf("Gauge = %q %v, want %v", g.Name, gv, c.gauge)
			}
		})
	}
}

func TestSamplerMisc(t *testing.T) {
	var zero Sampler // usable, DefaultCapacity
	for i := range DefaultCapacity + 10 {
		zero.Add("z", t0.Add(time.Duration(i)*time.Second), float64(i))
	}
	if n := len(zero.Gauge("z").Points); n != DefaultCapacity {
		t.Errorf("zero Sampler kept %d samples, want %d", n, DefaultCapacity)
	}
	if r := zero.Rate("unknown"); r.Name != "unknown" || r.Points != nil {
		t.Errorf("Rate(unknown) = %+v", r)
	}
	if g := zero.Gauge("unknown"); g.Points != nil {
		t.Errorf("Gauge(unknown) = %+v", g)
	}

	s := NewSampler(4)
	s.Add("b", t0, 1)
	s.Add("a", t0, 1)
	s.Add("a", t0.Add(time.Second), 2)
	if got := s.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Names = %v", got)
	}
	// Returned slices are copies.
	g := s.Gauge("a")
	g.Points[0].V = 99
	r := s.Rate("a")
	r.Points[0].V = 99
	if s.Gauge("a").Points[0].V != 1 || s.Rate("a").Points[0].V != 1 {
		t.Error("mutating a returned Series changed the Sampler")
	}
	// The result draws.
	checkSVG(t, Line([]Series{s.Rate("a"), s.Rate("b")}, Options{Title: "rates", Unit: "/s"}))
}

func TestSamplerConcurrent(t *testing.T) {
	const workers, per, capacity = 8, 500, 64
	s := NewSampler(capacity)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() { // concurrent readers
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range s.Names() {
				for _, p := range s.Rate(n).Points {
					if p.V < 0 || math.IsNaN(p.V) {
						t.Errorf("rate %v for %s", p.V, n)
						return
					}
				}
				_ = s.Gauge(n)
			}
		}
	}()
	var mu sync.Mutex
	clock := t0
	counter := 0.0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("w%d", w)
			for i := range per {
				s.Add(own, t0.Add(time.Duration(i)*time.Second), float64(i))
				// A shared counter: time and value advance together under mu,
				// so the shared ring stays monotonic.
				mu.Lock()
				clock = clock.Add(time.Second)
				counter += 2
				s.Add("shared", clock, counter)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	for w := range workers {
		r := s.Rate(fmt.Sprintf("w%d", w))
		if len(r.Points) != capacity-1 {
			t.Errorf("w%d: %d rate points, want %d", w, len(r.Points), capacity-1)
		}
		for _, p := range r.Points {
			if p.V != 1 {
				t.Fatalf("w%d: rate %v, want 1", w, p.V)
			}
		}
	}
	g := s.Gauge("shared")
	if len(g.Points) != capacity || g.Points[capacity-1].V != 2*workers*per {
		t.Errorf("shared gauge: %d points, last %v", len(g.Points), g.Points[len(g.Points)-1])
	}
	for _, p := range s.Rate("shared").Points {
		if p.V != 2 {
			t.Fatalf("shared rate %v, want 2", p.V)
		}
	}
}
