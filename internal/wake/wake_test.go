package wake

import (
	"sync"
	"testing"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestKeyed checks that Wake closes the channels handed out for its key
// only, that a channel taken after a Wake waits for the next one, and that
// the channels of a woken key are not kept.
func TestKeyed(t *testing.T) {
	var k Keyed
	a1, a2, b := k.Chan("a"), k.Chan("a"), k.Chan("b")
	if a1 != a2 {
		t.Error("two waiters on one key got different channels")
	}
	k.Wake("c") // no waiter: nothing happens
	k.Wake("a")
	if !closed(a1) || closed(b) {
		t.Fatalf("after Wake(a): a closed %v, b closed %v; want a only", closed(a1), closed(b))
	}
	if closed(k.Chan("a")) {
		t.Error("a channel taken after the Wake is already closed")
	}
	k.Wake("a")
	k.Wake("b")
	if len(k.m) != 0 {
		t.Errorf("%d channels kept after every key was woken", len(k.m))
	}
}

// TestKeyedConcurrent takes channels and wakes keys from many goroutines
// (run with -race): every waiter is woken by a Wake after its Chan.
func TestKeyedConcurrent(t *testing.T) {
	var k Keyed
	var wg sync.WaitGroup
	for i := range 16 {
		key := string(rune('a' + i%4))
		wg.Go(func() {
			for range 200 {
				ch := k.Chan(key)
				k.Wake(key)
				<-ch
			}
		})
	}
	wg.Wait()
}
