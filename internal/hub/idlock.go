package hub

import (
	"context"
	"sync"
)

// idLocks serializes the acceptances of one envelope ID within a hub: a
// repeat sent while the first attempt is still being accepted waits for it
// and is then answered with its receipt, instead of appending an
// acceptance of its own to the ledger, an entry no receipt names.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	token chan struct{} // holds a value while an acceptance of the ID runs
	users int           // acceptances holding or waiting; under idLocks.mu
}

// lock waits until no other acceptance of id runs in this hub, or ctx
// ends, and returns the unlock. The locks of IDs nobody holds or waits for
// are forgotten.
func (l *idLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	k := l.m[id]
	if k == nil {
		k = &idLock{token: make(chan struct{}, 1)}
		l.m[id] = k
	}
	k.users++
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if k.users--; k.users == 0 {
			delete(l.m, id)
		}
	}
	select {
	case k.token <- struct{}{}:
		return func() {
			<-k.token
			leave()
		}, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// len returns how many IDs are held or waited for.
func (l *idLocks) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
