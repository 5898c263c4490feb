package hub

import (
	"errors"
	"testing"
)

// TestLoopRegistry walks the hand-over between an acceptance and a
// delivery loop that found nothing to deliver: the loop ends only when
// nothing is queued and nothing was queued since it began consuming, and
// an acceptance after the end is told to start a new loop.
func TestLoopRegistry(t *testing.T) {
	var r loopRegistry
	const rcpt = "lg:011002"
	if r.kick(rcpt) {
		t.Fatal("a kick found a loop where none runs: the acceptance would start none")
	}
	l, ok := r.add(rcpt)
	if !ok {
		t.Fatal("add refused the first loop")
	}
	if _, ok := r.add(rcpt); ok {
		t.Fatal("a second loop was registered for the same recipient")
	}
	r.consuming(l)

	// The loop read an empty backlog; an acceptance queued an envelope and
	// kicked it before it could end: it must go on.
	if !r.kick(rcpt) {
		t.Fatal("the kick did not find the registered loop")
	}
	if r.end(rcpt, l, 0, nil) {
		t.Fatal("a kicked loop ended: the envelope queued meanwhile has no loop")
	}
	r.consuming(l)
	if r.end(rcpt, l, 1, nil) {
		t.Error("a loop ended with its recipient's backlog not empty")
	}
	if r.end(rcpt, l, 0, errors.New("backlog unknown")) {
		t.Error("a loop ended without knowing its recipient's backlog")
	}
	if n := r.len(); n != 1 {
		t.Errorf("%d loops registered, want 1", n)
	}
	if !r.end(rcpt, l, 0, nil) {
		t.Fatal("an idle loop, nothing queued, not kicked, did not end")
	}
	if n := r.len(); n != 0 {
		t.Errorf("%d loops registered after the end, want 0", n)
	}
	if r.kick(rcpt) {
		t.Error("a kick after the end found a loop: the acceptance would start none")
	}
	if _, ok := r.add(rcpt); !ok {
		t.Error("no new loop could be registered after the end")
	}
}
