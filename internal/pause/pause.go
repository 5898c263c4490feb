// Package pause waits for a while unless a context ends first: the wait of
// every retry loop, backoff and drill schedule, so that a stopped process
// never sleeps out its pause.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends, and reports whether ctx is still live.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Until waits until t, or until ctx ends, and reports whether ctx is still
// live.
func Until(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	return For(ctx, time.Until(t))
}
