package pause

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	if !For(context.Background(), time.Millisecond) {
		t.Error("For with a live context reported it ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if For(ctx, time.Hour) {
		t.Error("For with an ended context reported it live")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("For waited %v after its context ended", d)
	}
	if Until(ctx, time.Now().Add(-time.Second)) {
		t.Error("Until with an ended context reported it live, although the time had passed")
	}
	if !Until(context.Background(), time.Now().Add(-time.Second)) {
		t.Error("Until a past time with a live context reported it ended")
	}
}
