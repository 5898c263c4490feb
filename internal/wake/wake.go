// Package wake lets goroutines wait for the next event of a key (a commit
// that stored something for a node or a recipient) without polling: a
// waiter takes the key's channel before it looks at the state, and the
// next Wake of that key closes it, so nothing that happens between the
// look and the wait is missed.
package wake

import "sync"

// Keyed hands out, per key, the channel the key's next Wake closes. The
// zero value is ready to use; it is safe for concurrent use. It holds a
// channel only for the keys someone waits on since their last Wake.
type Keyed struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// Chan returns the channel the next Wake(key) closes.
func (k *Keyed) Chan(key string) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := k.m[key]
	if ch == nil {
		if k.m == nil {
			k.m = make(map[string]chan struct{})
		}
		ch = make(chan struct{})
		k.m[key] = ch
	}
	return ch
}

// Wake closes the channel handed out for key since its last Wake, if any:
// the waiters on other keys sleep on.
func (k *Keyed) Wake(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ch := k.m[key]; ch != nil {
		close(ch)
		delete(k.m, key)
	}
}
