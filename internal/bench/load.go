package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/node"
	"taxlink/internal/pause"
)

// phase collects what one phase of the relay run measured. Its fields are
// guarded by the driver's mutex.
type phase struct {
	name string
	// start is when the first submission began; deadline is when
	// submissions stopped being started (the measurement window).
	start, deadline time.Time
	// Latencies in milliseconds: prepare (seal, outbox files and row, all
	// fsync'd), accept (POST to the hub until the verified acceptance
	// receipt is stored), submit (handed to the NTA node, or the
	// scheduled arrival in open loop, until accepted), e2e (handed to the
	// NTA node until its verified recording receipt is stored).
	prepare, accept, submit, e2e     []float64
	sent, accepted, recorded, failed int
	// acceptedIn and recordedIn count acceptances and recordings of this
	// phase's notifications that happened before deadline.
	acceptedIn, recordedIn int
	// lastRec is when the last recording receipt of this phase was seen.
	lastRec time.Time
}

// e2eRate returns the phase's end-to-end throughput: its notifications
// with a verified recording receipt over the time from its start to the
// last of them. Unlike recordedIn over the window, it counts the work the
// relay still owed at the window's end, so a sender whose receipt intake
// lags is not flattered or punished by where the window ends.
func (p *phase) e2eRate() float64 {
	if p.recorded == 0 || !p.lastRec.After(p.start) {
		return 0
	}
	return float64(p.recorded) / p.lastRec.Sub(p.start).Seconds()
}

func (p *phase) window() time.Duration { return p.deadline.Sub(p.start) }

type pendingEntry struct {
	start     time.Time
	ph        *phase
	recipient string
}

// doc is a notification body of the load.
type doc struct {
	typ, contentType string
	body             []byte
}

// driver is the NTA side of the relay run: it submits through the NTA
// node's outbox (node.Prepare and node.SubmitPending, as `taxlink send`
// does), collects recording receipts with node.PollReceipts (which
// verifies both receipts before it stores one), and times each
// notification from submission to acceptance and to its verified
// recording receipt.
type driver struct {
	nta        *daemon.LoadedNode
	recipients []string
	docs       []doc
	t0         time.Time
	next       atomic.Uint64
	logf       func(format string, a ...any)

	mu       sync.Mutex
	pending  map[string]pendingEntry // submitted, recording receipt not yet seen
	sorted   []string                // keys of pending, ascending
	unfound  int                     // receipts PollReceipts stored that no sweep matched yet
	accSec   []int                   // acceptances per second since t0
	recSec   []int                   // verified recording receipts per second since t0
	failed   int                     // submissions not accepted at once
	firstErr error
	cur      *phase // for the progress line
	lastSw   time.Time
	recorded int // verified recording receipts seen, all phases
}

func newDriver(nta *daemon.LoadedNode, recipients []string, docs []doc, logf func(string, ...any)) *driver {
	return &driver{nta: nta, recipients: recipients, docs: docs, t0: time.Now(), logf: logf, pending: map[string]pendingEntry{}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (d *driver) bump(series *[]int, t time.Time) {
	i := int(t.Sub(d.t0) / time.Second)
	if i < 0 {
		return
	}
	for len(*series) <= i {
		*series = append(*series, 0)
	}
	(*series)[i]++
}

// submitNext submits the next notification of the load: documents and
// recipients in turn, so that n consecutive submissions reach n different
// recipients.
func (d *driver) submitNext(ctx context.Context, ph *phase, scheduled time.Time) {
	i := d.next.Add(1) - 1
	dc := d.docs[i%uint64(len(d.docs))]
	rcpt := d.recipients[i%uint64(len(d.recipients))]
	_, _ = d.submit(ctx, ph, scheduled, node.Submission{
		Recipient: rcpt, Type: dc.typ, ContentType: dc.contentType, Payload: bytes.NewReader(dc.body),
	})
}

// submit hands s to the NTA node and submits it. scheduled is when it was
// due (open loop); zero means now. A notification the hub did not accept
// at once stays in the outbox and is resubmitted by drain.
func (d *driver) submit(ctx context.Context, ph *phase, scheduled time.Time, s node.Submission) (string, error) {
	t0 := time.Now()
	if scheduled.IsZero() {
		scheduled = t0
	}
	id, err := d.nta.Node.Prepare(ctx, s)
	if err != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		ph.failed++
		d.failed++
		if d.firstErr == nil {
			d.firstErr = fmt.Errorf("prepare: %w", err)
		}
		return "", err
	}
	t1 := time.Now()
	_, err = d.nta.Node.SubmitPending(ctx, id)
	t2 := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	ph.sent++
	d.pending[id] = pendingEntry{start: scheduled, ph: ph, recipient: s.Recipient}
	i, _ := slices.BinarySearch(d.sorted, id)
	d.sorted = slices.Insert(d.sorted, i, id)
	if err != nil {
		ph.failed++
		d.failed++
		if d.firstErr == nil {
			d.firstErr = err
		}
		return id, err
	}
	ph.accepted++
	if !t2.After(ph.deadline) {
		ph.acceptedIn++
	}
	ph.prepare = append(ph.prepare, ms(t1.Sub(t0)))
	ph.accept = append(ph.accept, ms(t2.Sub(t1)))
	ph.submit = append(ph.submit, ms(t2.Sub(scheduled)))
	d.bump(&d.accSec, t2)
	return id, nil
}

// collect polls the hub for recording receipts until ctx ends.
func (d *driver) collect(ctx context.Context) {
	var lastWarn time.Time
	for ctx.Err() == nil {
		got, err := d.nta.Node.PollReceipts(ctx, 200*time.Millisecond)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if time.Since(lastWarn) > 5*time.Second {
				d.logf("receipt poll failed (retrying): %v", err)
				lastWarn = time.Now()
			}
			pause.For(ctx, 100*time.Millisecond)
		}
		d.mu.Lock()
		d.unfound += got
		need := d.unfound > 0 || (len(d.pending) > 0 && time.Since(d.lastSw) > time.Second)
		d.mu.Unlock()
		if need {
			d.sweep(ctx)
		}
	}
}

// sweep finds the pending notifications whose recording receipt the NTA
// node has stored: it reads the outbox in ID order from the oldest pending
// ID, jumping over stretches where nothing is pending, until it has matched
// every receipt PollReceipts reported or read maxRows rows.
func (d *driver) sweep(ctx context.Context) {
	const page, maxRows = 500, 5000
	d.mu.Lock()
	d.lastSw = time.Now()
	cursor := ""
	if len(d.sorted) > 0 {
		cursor = d.sorted[0]
	}
	d.mu.Unlock()
	for rows := 0; cursor != "" && rows < maxRows; {
		list, err := d.nta.Store.ListOutgoing(ctx, cursor[:len(cursor)-1], page)
		if err != nil {
			return
		}
		now := time.Now()
		d.mu.Lock()
		for _, o := range list {
			rows++
			if o.Recorded == nil {
				continue
			}
			p, ok := d.pending[o.ID]
			if !ok {
				continue
			}
			d.recordedLocked(o.ID, p, now)
		}
		cursor = ""
		if len(list) == page && d.unfound > 0 {
			last := list[len(list)-1].ID
			j := sort.SearchStrings(d.sorted, last)
			if j < len(d.sorted) && d.sorted[j] == last {
				j++
			}
			if j < len(d.sorted) {
				cursor = d.sorted[j]
			}
		}
		if cursor == "" {
			// Everything pending was looked at: what is left unmatched
			// were repeated receipts.
			d.unfound = 0
		}
		d.mu.Unlock()
	}
}

func (d *driver) recordedLocked(id string, p pendingEntry, now time.Time) {
	delete(d.pending, id)
	if i, ok := slices.BinarySearch(d.sorted, id); ok {
		d.sorted = slices.Delete(d.sorted, i, i+1)
	}
	d.unfound = max(d.unfound-1, 0)
	p.ph.recorded++
	d.recorded++
	if !now.After(p.ph.deadline) {
		p.ph.recordedIn++
	}
	p.ph.e2e = append(p.ph.e2e, ms(now.Sub(p.start)))
	p.ph.lastRec = now
	d.bump(&d.recSec, now)
}

// pendingCount returns how many submitted notifications still lack their
// recording receipt.
func (d *driver) pendingCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// drain waits until every submitted notification has its verified
// recording receipt, resubmitting what the hub did not accept at once. It
// gives up after timeout, or after stall without a new recording receipt.
func (d *driver) drain(ctx context.Context, timeout, stall time.Duration) error {
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastResubmit, lastProgress, lastCount := start, start, -1
	for {
		d.mu.Lock()
		left, failed, rec := len(d.pending), d.failed, d.recorded
		d.mu.Unlock()
		if left == 0 {
			return nil
		}
		if rec != lastCount {
			lastProgress, lastCount = time.Now(), rec
		}
		switch {
		case time.Since(start) > timeout:
			return fmt.Errorf("%d notifications still without a verified recording receipt after %v", left, timeout)
		case time.Since(lastProgress) > stall:
			return fmt.Errorf("%d notifications still without a verified recording receipt, none recorded for %v", left, stall)
		}
		if failed > 0 && time.Since(lastResubmit) > time.Second {
			d.nta.Node.ResubmitPending(ctx)
			lastResubmit = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// abandon stops waiting for what is pending and returns how many
// notifications that was and their recipients, most affected first.
func (d *driver) abandon() (int, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	count := map[string]int{}
	for _, p := range d.pending {
		count[p.recipient]++
	}
	n := len(d.pending)
	clear(d.pending)
	d.sorted = d.sorted[:0]
	d.unfound = 0
	rcpts := make([]string, 0, len(count))
	for r := range count {
		rcpts = append(rcpts, r)
	}
	sort.Slice(rcpts, func(i, j int) bool {
		if count[rcpts[i]] != count[rcpts[j]] {
			return count[rcpts[i]] > count[rcpts[j]]
		}
		return rcpts[i] < rcpts[j]
	})
	return n, rcpts
}

// exclude stops sending to rcpts.
func (d *driver) exclude(rcpts []string) {
	drop := map[string]bool{}
	for _, r := range rcpts {
		drop[r] = true
	}
	d.recipients = slices.DeleteFunc(slices.Clone(d.recipients), func(r string) bool { return drop[r] })
}

func (d *driver) newPhase(name string) *phase {
	ph := &phase{name: name, deadline: time.Now().Add(100 * 365 * 24 * time.Hour)}
	d.mu.Lock()
	d.cur = ph
	d.mu.Unlock()
	return ph
}

// closedLoop runs n submitters, each submitting the next notification as
// soon as the previous one is accepted, for dur.
func (d *driver) closedLoop(ctx context.Context, ph *phase, n int, dur time.Duration) {
	d.mu.Lock()
	ph.start = time.Now()
	ph.deadline = ph.start.Add(dur)
	d.mu.Unlock()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(ph.deadline) {
				d.submitNext(ctx, ph, time.Time{})
			}
		})
	}
	wg.Wait()
}

// counted submits exactly count notifications with n submitters.
func (d *driver) counted(ctx context.Context, ph *phase, n, count int) {
	d.mu.Lock()
	ph.start = time.Now()
	d.mu.Unlock()
	var left atomic.Int64
	left.Store(int64(count))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil && left.Add(-1) >= 0 {
				d.submitNext(ctx, ph, time.Time{})
			}
		})
	}
	wg.Wait()
	d.mu.Lock()
	ph.deadline = time.Now()
	d.mu.Unlock()
}

// openLoop submits at a fixed rate for dur, whatever the latency: each
// notification is due at its scheduled time and its latency counts from
// then, so a stalled system is not hidden (no coordinated omission). At
// most maxInFlight submissions run at once.
func (d *driver) openLoop(ctx context.Context, ph *phase, rate float64, dur time.Duration) {
	const maxInFlight = 4096
	interval := time.Duration(float64(time.Second) / rate)
	d.mu.Lock()
	ph.start = time.Now()
	ph.deadline = ph.start.Add(dur)
	d.mu.Unlock()
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		at := ph.start.Add(time.Duration(i) * interval)
		if at.After(ph.deadline) {
			break
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.submitNext(ctx, ph, at)
		})
	}
	wg.Wait()
}

// progress prints one line a second until ctx ends.
func (d *driver) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			i := int(now.Sub(d.t0)/time.Second) - 1
			d.mu.Lock()
			acc, rec := at(d.accSec, i), at(d.recSec, i)
			name := ""
			if d.cur != nil {
				name = d.cur.name
			}
			pend := len(d.pending)
			d.mu.Unlock()
			d.logf("t=%3ds %-16s accepted %5d/s  recorded %5d/s  awaiting receipt %6d", i+1, name, acc, rec, pend)
		}
	}
}

func at(s []int, i int) int {
	if i < 0 || i >= len(s) {
		return 0
	}
	return s[i]
}

// percentile returns the p-th percentile (0..100) of v by nearest rank; v
// is sorted in place. It returns 0 for an empty v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	if !sort.Float64sAreSorted(v) {
		sort.Float64s(v)
	}
	r := int(math.Ceil(p / 100 * float64(len(v))))
	return v[min(max(r-1, 0), len(v)-1)]
}
