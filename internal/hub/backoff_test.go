package hub

import (
	"testing"
	"time"
)

// TestBackoff checks that the delivery backoff grows exponentially, is
// jittered within [d/2, d], and is capped.
func TestBackoff(t *testing.T) {
	h := &Hub{cfg: Config{RetryBase: 100 * time.Millisecond, RetryMax: 10 * time.Second}}
	for attempt, want := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond,
		8: 10 * time.Second, 60: 10 * time.Second,
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := h.backoff(attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("attempt %d: only %d distinct waits in 200: not jittered", attempt, len(seen))
		}
	}
}
