package hub

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestIDLocks checks that a second acceptance of an ID waits for the
// first, that another ID does not, that a waiter whose request ends stops
// waiting, and that nothing is kept once every lock is released.
func TestIDLocks(t *testing.T) {
	var l idLocks
	ctx := context.Background()
	unlockA, err := l.lock(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	unlockB, err := l.lock(ctx, "B")
	if err != nil {
		t.Fatalf("another ID waited for A: %v", err)
	}
	unlockB()

	got := make(chan func(), 1)
	go func() {
		u, err := l.lock(ctx, "A")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("a second acceptance of A ran while the first held it")
	case <-time.After(50 * time.Millisecond):
	}

	gone, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := l.lock(gone, "A")
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose request ended: %v, want context.Canceled", err)
	}

	unlockA()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the second acceptance of A did not run after the first released it")
	}
	if n := l.len(); n != 0 {
		t.Errorf("%d IDs kept after every lock was released, want 0", n)
	}
}
