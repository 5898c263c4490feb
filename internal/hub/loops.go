package hub

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"taxlink/internal/pause"
	"taxlink/internal/queue"
)

// deliveryLoop is the state of a recipient's delivery loop.
type deliveryLoop struct {
	// kicked says an envelope was queued for the recipient since the loop
	// last began consuming: it must not end.
	kicked bool
}

// loopRegistry tracks which recipients have a delivery loop. With
// Config.DeliveryIdle a loop ends when its recipient has nothing queued;
// the registry makes sure no envelope queued meanwhile is left without a
// loop: the acceptance either kicks the loop still registered, which then
// goes on, or finds none and starts one.
type loopRegistry struct {
	mu      sync.Mutex
	running map[string]*deliveryLoop
}

// add registers a loop for rcpt and returns it, or false when one runs.
func (r *loopRegistry) add(rcpt string) (*deliveryLoop, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[rcpt] != nil {
		return nil, false
	}
	if r.running == nil {
		r.running = map[string]*deliveryLoop{}
	}
	l := &deliveryLoop{}
	r.running[rcpt] = l
	return l, true
}

// kick records that an envelope was queued for rcpt; it reports false
// when rcpt has no loop, which the caller must then start.
func (r *loopRegistry) kick(rcpt string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.running[rcpt]
	if l != nil {
		l.kicked = true
	}
	return l != nil
}

// consuming is called as loop l begins consuming: the kicks before are
// for envelopes its new consumer takes.
func (r *loopRegistry) consuming(l *deliveryLoop) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l.kicked = false
}

// end reports whether rcpt's loop l, which found nothing to deliver, may
// end, given the backlog read since (n, or the error reading it); if so,
// rcpt has no loop from now.
func (r *loopRegistry) end(rcpt string, l *deliveryLoop, n uint64, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || n > 0 || l.kicked {
		return false
	}
	delete(r.running, rcpt)
	return true
}

// len returns how many recipients have a loop.
func (r *loopRegistry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// startLoops starts a delivery loop for each recipient that has none or,
// with DeliveryIdle, for each that has something queued (every one when
// the queue cannot say).
func (h *Hub) startLoops(ctx context.Context) {
	rcpts := h.cfg.Directory.Get().Recipients()
	if h.cfg.DeliveryIdle > 0 {
		backlogs, err := h.cfg.Queue.Backlogs(ctx)
		if err != nil {
			h.log.Warn("reading the queue's backlogs failed; starting every delivery loop", "err", err)
		} else {
			rcpts = slices.DeleteFunc(rcpts, func(r string) bool { return backlogs[queue.Token(r)] == 0 })
		}
	}
	for _, rcpt := range rcpts {
		h.startLoop(rcpt)
	}
}

// activate makes sure a delivery loop takes the envelope just queued for
// rcpt.
func (h *Hub) activate(rcpt string) {
	if h.cfg.DeliveryIdle > 0 && !h.running.kick(rcpt) {
		h.startLoop(rcpt)
	}
}

// startLoop starts rcpt's delivery loop unless it runs. Before Run there
// is none to start: Run starts the loops of what is queued.
func (h *Hub) startLoop(rcpt string) {
	h.mu.Lock()
	ctx := h.runCtx
	h.mu.Unlock()
	if ctx == nil {
		return
	}
	l, ok := h.running.add(rcpt)
	if !ok {
		return
	}
	h.loops.Go(func() {
		for ctx.Err() == nil {
			h.running.consuming(l)
			err := h.cfg.Queue.Consume(ctx, rcpt, h.cfg.Parallel, h.cfg.DeliveryIdle, func(ctx context.Context, it *queue.Item) error {
				return h.deliver(ctx, rcpt, it)
			})
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, queue.ErrIdle):
				n, err := h.cfg.Queue.Backlog(ctx, rcpt)
				if h.running.end(rcpt, l, n, err) {
					return
				}
			default:
				h.log.Error("delivery loop stopped; restarting", "recipient", rcpt, "err", err)
				pause.For(ctx, time.Second)
			}
		}
	})
}
