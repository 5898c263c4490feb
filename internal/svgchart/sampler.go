package svgchart

import (
	"slices"
	"sync"
	"time"
)

// DefaultCapacity is the number of samples kept per counter by a zero
// [Sampler].
const DefaultCapacity = 360

// Sampler keeps, for each named counter, a ring of its most recent
// (time, value) samples, and derives time series from them: [Sampler.Rate]
// for monotonically increasing counters, [Sampler.Gauge] for plain values.
// All methods are safe for concurrent use. The zero value is ready to use
// and keeps [DefaultCapacity] samples per counter.
type Sampler struct {
	mu    sync.RWMutex
	cap   int
	rings map[string]*ring
}

// ring is a fixed-capacity circular buffer; once full, next indexes the
// oldest sample (which the next add overwrites).
type ring struct {
	buf  []Point
	next int
}

// NewSampler returns a Sampler that keeps the last capacity samples of each
// counter. Capacities below 2 are raised to 2, the fewest that yield a rate.
func NewSampler(capacity int) *Sampler {
	return &Sampler{cap: max(capacity, 2)}
}

// Add records that counter name had value counter at time t, evicting the
// counter's oldest sample when its ring is full. Samples are kept in the
// order added, not sorted by time. NaN and ±Inf values are ignored.
func (s *Sampler) Add(name string, t time.Time, counter float64) {
	if !finite(counter) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings == nil {
		s.rings = map[string]*ring{}
	}
	if s.cap == 0 {
		s.cap = DefaultCapacity
	}
	r := s.rings[name]
	if r == nil {
		r = &ring{}
		s.rings[name] = r
	}
	p := Point{T: t, V: counter}
	if len(r.buf) < s.cap {
		r.buf = append(r.buf, p)
		return
	}
	r.buf[r.next] = p
	r.next = (r.next + 1) % len(r.buf)
}

// samples returns a copy of name's samples, oldest first.
func (s *Sampler) samples(name string) []Point {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rings[name]
	if r == nil || len(r.buf) == 0 {
		return nil
	}
	out := make([]Point, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Rate returns, as a Series named name, the per-second rate of counter name
// between each pair of consecutive retained samples: (v₂−v₁)/(t₂−t₁),
// stamped with t₂. An interval whose value decreases (a counter reset) or
// whose time does not advance yields no point. An unknown counter, or one
// with fewer than two samples, gives a Series without points. The returned
// slice is the caller's own.
func (s *Sampler) Rate(name string) Series {
	ps := s.samples(name)
	out := Series{Name: name}
	for i := 1; i < len(ps); i++ {
		dt := ps[i].T.Sub(ps[i-1].T).Seconds()
		dv := ps[i].V - ps[i-1].V
		if dt <= 0 || dv < 0 {
			continue
		}
		out.Points = append(out.Points, Point{T: ps[i].T, V: dv / dt})
	}
	return out
}

// Gauge returns, as a Series named name, the retained samples of name
// unchanged, oldest first (nil Points for an unknown name). The returned
// slice is the caller's own.
func (s *Sampler) Gauge(name string) Series {
	return Series{Name: name, Points: s.samples(name)}
}

// Names returns the names of all counters that have samples, sorted.
func (s *Sampler) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.rings))
	for n := range s.rings {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
