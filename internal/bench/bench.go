// Package bench is `taxlink bench`: a self-calibrating benchmark of the
// relay on the machine it runs on.
//
// Run first measures the physical bounds in its data directory: F, the
// serial rate of 8 KiB write+fdatasync, and J, the rate of 8 KiB JetStream
// publishes with SyncAlways on an embedded server (synchronous, and
// asynchronous with a window). It then writes a dev network (devnet.Init,
// widened to the asked number of local governments), starts the hub and
// the recipient nodes as separate processes of the taxlink binary — with
// durability exactly as in production: the hub's queue, ledger and
// receipts synced before it answers, SQLite WAL synchronous=FULL at the
// nodes, fsync'd outbox files, mTLS on every hop — and drives load from
// its own process acting as the National Tax Agency's node
// (daemon.LoadNode on the NTA configuration).
//
// The relay run has phases: prime (one notification to every recipient, so
// that every delivery loop is warm), search (closed loop at growing
// concurrency to find a good N), sustained (closed loop with N submitters
// for Options.Duration: accept_per_s, e2e_per_s, latencies, CPU per
// message), half-rate (open loop at half the sustainable rate: acceptance
// latency without queueing), and optionally large (8 concurrent 50 MB PDFs
// compared with one loopback mTLS stream). Every phase is drained — every
// notification has its verified recording receipt — before the next
// starts. Ratios to F and J are measured in the same run because the
// machine is shared and noisy.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/lgdata"
	"taxlink/internal/metrics"
	"taxlink/internal/node"
	"taxlink/internal/store/sqlite"
	"taxlink/internal/synth"
)

// Options configures Run. The zero value of a field means its default.
type Options struct {
	// Duration is the length of the sustained closed-loop phase (default
	// 60s). The other phases are scaled from it.
	Duration time.Duration
	// Dir is where the probes run and the network is written; it must be
	// empty or not exist, and is kept. Empty: a temporary directory,
	// removed at the end.
	Dir string
	// Binary is the taxlink executable started as hub and nodes (default
	// os.Executable(), which is right for `taxlink bench` itself).
	Binary string
	// Recipients is how many local governments receive (default 1788,
	// all of them). The dev network has 5; more are added to its
	// directory and spread over its three recipient nodes.
	Recipients int
	// Concurrency fixes the number of closed-loop submitters; 0 searches
	// for the best of 4, 8, 16, 32, 64, and of 128 and 256 while doubling
	// still gains 5 %.
	Concurrency int
	// Calibrate is how long each physical probe runs (default
	// Duration/12, between 500 ms and 3 s).
	Calibrate time.Duration
	// Large adds the large payload phase: LargeCount concurrent PDFs of
	// LargeSize bytes (defaults 8 and 50 MB).
	Large      bool
	LargeCount int
	LargeSize  int
	// CompareRecipients, when positive, adds a comparison run after the
	// main one: a fresh network with that many recipients (10 for the
	// issue's goal), primed, then a closed loop with the same concurrency
	// for half of Duration (at least 5 s).
	CompareRecipients int
	// DrainTimeout bounds the wait for the last recording receipts of a
	// phase (default 2 minutes plus the duration).
	DrainTimeout time.Duration
	// CPUProfile, if set, receives a pprof CPU profile of this process
	// (the NTA role) during the relay phases.
	CPUProfile io.Writer
	// Profiles makes the hub and the recipient nodes write pprof profiles
	// next to their logs: NAME.cpu.pprof from their start to their stop,
	// NAME.heap.pprof of the heap at its largest live size.
	Profiles bool
	// Log receives progress lines, one Write at a time (nil: discarded).
	Log io.Writer
}

func (o *Options) defaults() error {
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.Recipients == 0 {
		o.Recipients = 1788
	}
	if o.Recipients < 0 {
		return fmt.Errorf("bench: recipients: %d", o.Recipients)
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("bench: concurrency: %d", o.Concurrency)
	}
	if o.Calibrate <= 0 {
		o.Calibrate = min(max(o.Duration/12, 500*time.Millisecond), 3*time.Second)
	}
	if o.LargeCount <= 0 {
		o.LargeCount = 8
	}
	if o.LargeSize <= 0 {
		o.LargeSize = 50_000_000
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 2*time.Minute + o.Duration
	}
	if o.Binary == "" {
		b, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find the taxlink binary: %w", err)
		}
		o.Binary = b
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Host describes the machine of a run.
type Host struct {
	CPUs       int     `json:"cpus"`
	CPUModel   string  `json:"cpu_model,omitempty"`
	MemTotalGB float64 `json:"mem_total_gb"`
	Kernel     string  `json:"kernel,omitempty"`
	GoVersion  string  `json:"go_version"`
}

// maxSearch is the most closed-loop submitters the concurrency search
// tries.
const maxSearch = 256

// searchOn reports whether the concurrency search goes on after the level
// of c submitters measured rate, best being the best rate before it: 4 to
// 64 always; beyond, while doubling still gains 5 %, since a relay still
// gaining at 64 would be measured below its rate.
func searchOn(c int, rate, best float64) bool {
	return c < maxSearch && (c < 64 || rate >= 1.05*best)
}

// Level is one step of the concurrency search.
type Level struct {
	Concurrency int     `json:"concurrency"`
	AcceptPerS  float64 `json:"accept_per_s"`
}

// HalfRate is what the open-loop phase at half the sustainable rate
// measured.
type HalfRate struct {
	TargetPerS   float64 `json:"target_per_s"`
	AchievedPerS float64 `json:"achieved_per_s"`
	P50AcceptMS  float64 `json:"p50_accept_ms"`
	P99AcceptMS  float64 `json:"p99_accept_ms"`
	P99SubmitMS  float64 `json:"p99_submit_ms"`
	P99E2EMS     float64 `json:"p99_e2e_ms"`
	// HubP99MS is the p99 of each step of the hub's acceptances during
	// the phase and of the whole ("total"), from the hub's histograms
	// (taxlink_hub_accept_step_seconds, interpolated within buckets): what
	// of the sender's acceptance latency the hub spends, and on what.
	HubP99MS map[string]float64 `json:"hub_p99_ms,omitempty"`
}

// Large is what the large payload phase measured.
type Large struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes_each"`
	// SecondsE2E is from the first submission to the last verified
	// recording receipt.
	SecondsE2E float64 `json:"seconds_e2e"`
	MBPerS     float64 `json:"mb_per_s"`
	// PrepareS and AcceptS are the slowest sealing into the outbox and
	// the slowest upload to the hub until its acceptance receipt.
	PrepareS float64 `json:"prepare_s_max"`
	AcceptS  float64 `json:"accept_s_max"`
	// TLSStreamMBPerS is one loopback mTLS stream (TLS 1.3, dev
	// certificates) between two goroutines, measured in the same run.
	TLSStreamMBPerS float64 `json:"tls_stream_mb_per_s"`
	RatioTLS        float64 `json:"ratio_tls_stream"`
	// PeakRSSMB is each role's peak RSS during the phase, and StartRSSMB
	// its RSS when the phase began: what the earlier phases left (the Go
	// runtime returns freed memory to the system slowly) against what the
	// large payloads added.
	PeakRSSMB  map[string]float64 `json:"peak_rss_mb"`
	StartRSSMB map[string]float64 `json:"start_rss_mb"`
	// DiskMBPerS is D, the disk's sequential durable rate (DiskRate),
	// measured before the phase. WrittenMB is what each role sent to
	// storage during the phase (the recipient nodes summed as "node"),
	// WritesPerByte their sum over the payload bytes: how many times the
	// relay writes each byte (outbox, hub, recipient's store, and what
	// their logs and indexes add). DiskCeilingMBPerS = D / WritesPerByte
	// is what the disk allows end to end at D, RatioDiskCeilingTLS its
	// ratio to one mTLS stream: an estimate, since D is one sequential
	// writer and the relay's three processes write concurrently. The last
	// four are empty or 0 where the kernel does not account a process's
	// writes.
	DiskMBPerS          float64            `json:"disk_mb_per_s"`
	WrittenMB           map[string]float64 `json:"written_mb,omitempty"`
	WritesPerByte       float64            `json:"writes_per_byte"`
	DiskCeilingMBPerS   float64            `json:"disk_ceiling_mb_per_s"`
	RatioDiskCeilingTLS float64            `json:"ratio_disk_ceiling_tls_stream"`
}

// Goal is one goal of issue 8 and whether this run met it. Met is nil
// when the run did not measure it.
type Goal struct {
	Target string   `json:"target"`
	Value  *float64 `json:"value"`
	Met    *bool    `json:"met"`
	Note   string   `json:"note,omitempty"`
}

// Second is one second of the relay run.
type Second struct {
	T        int `json:"t"`
	Accepted int `json:"accepted"`
	Recorded int `json:"recorded"`
}

// Span is when a phase of the relay run ran, in seconds since its start.
type Span struct {
	Name       string  `json:"name"`
	Start, End float64 `json:"-"`
}

// Result is the outcome of Run. Its JSON form is the last line `taxlink
// bench` prints. The figures of the sustained phase:
//
//   - accept_per_s: acceptance receipts received before the window closed,
//     per second of the window;
//   - e2e_per_s: the window's notifications over the time from its start
//     to the last of their verified recording receipts (stored by the NTA
//     node after node.PollReceipts checked both receipts);
//   - accept latency: POST to the hub until the verified acceptance
//     receipt is stored (node.SubmitPending); prepare: sealing and the
//     fsync'd outbox (node.Prepare); submit: both; e2e latency: handed to
//     the NTA node until the verified recording receipt is stored;
//   - cpu_us_per_msg: CPU time (utime+stime) of each role from the start
//     of the window until its drain ended, over the window's
//     notifications; "node" sums the recipient nodes;
//   - peak_rss_mb: VmHWM of each role ("node": the largest node) at the end
//     of the half-rate phase; the NTA's was reset after the probes.
type Result struct {
	FsyncPerS            float64            `json:"fsync_per_s"`
	JetStreamPerS        float64            `json:"jetstream_per_s"`
	AcceptPerS           float64            `json:"accept_per_s"`
	E2EPerS              float64            `json:"e2e_per_s"`
	RatioE2EFsync        float64            `json:"ratio_e2e_fsync"`
	RatioAcceptJetStream float64            `json:"ratio_accept_jetstream"`
	P50AcceptMS          float64            `json:"p50_accept_ms"`
	P99AcceptMS          float64            `json:"p99_accept_ms"`
	P50E2EMS             float64            `json:"p50_e2e_ms"`
	P99E2EMS             float64            `json:"p99_e2e_ms"`
	P99AcceptHalfRateMS  float64            `json:"p99_accept_half_rate_ms"`
	CPUUsPerMsg          map[string]float64 `json:"cpu_us_per_msg"`
	// WrittenKBPerMsg is what each role sent to storage per notification
	// in the sustained phase (/proc/PID/io; all recipient nodes as "node",
	// and "total"), against a payload of PayloadBytes: the relay's
	// write amplification. Absent where the kernel does not account it.
	WrittenKBPerMsg map[string]float64 `json:"written_kb_per_msg,omitempty"`
	PeakRSSMB       map[string]float64 `json:"peak_rss_mb"`
	DurationS       float64            `json:"duration_s"`
	Notifications   int                `json:"notifications"`
	Passed          bool               `json:"passed"`

	// Fsync and JetStream are the probes behind F and J, with their
	// latencies: the floor of each durable step's.
	Fsync     Fsync          `json:"fsync"`
	JetStream JetStreamRates `json:"jetstream"`
	// Crypto is the third physical bound: the CPU of the cryptography
	// every notification needs, measured before the relay runs.
	Crypto CryptoCost `json:"crypto"`
	// E2EInWindowPerS counts only the recording receipts seen before the
	// sustained window closed (E2EPerS waits for all of its notifications).
	E2EInWindowPerS float64  `json:"e2e_in_window_per_s"`
	P50PrepareMS    float64  `json:"p50_prepare_ms"`
	P99PrepareMS    float64  `json:"p99_prepare_ms"`
	P99SubmitMS     float64  `json:"p99_submit_ms"`
	HalfRate        HalfRate `json:"half_rate"`
	Concurrency     int      `json:"concurrency"`
	Search          []Level  `json:"concurrency_search,omitempty"`
	Recipients      int      `json:"recipients"`
	// RecipientsRecording is how many recipients recorded the prime
	// notification; the later phases send only to them.
	RecipientsRecording int             `json:"recipients_recording"`
	PrimeS              float64         `json:"prime_s"`
	PayloadBytes        int             `json:"payload_bytes_avg"`
	Accepted            int             `json:"accepted"`
	Verified            int             `json:"verified"`
	AtRecipients        int64           `json:"recorded_at_recipients"`
	SubmitErrors        int             `json:"submit_errors"`
	Large               *Large          `json:"large,omitempty"`
	Compare             *Compare        `json:"compare,omitempty"`
	Goals               map[string]Goal `json:"goals"`
	Host                Host            `json:"host"`
	Date                string          `json:"date"`
	Dir                 string          `json:"dir,omitempty"`
	Failures            []string        `json:"failures,omitempty"`
	Series              []Second        `json:"-"`
	Phases              []Span          `json:"-"`
}

// stallTimeout is how long a drain waits without any new recording
// receipt before it gives up.
const stallTimeout = 30 * time.Second

// Run runs the benchmark. It returns a Result whenever the relay ran, with
// Passed false and Failures saying why when a notification was not
// accepted, recorded and verified; the error is for runs that could not be
// carried out.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	var logMu sync.Mutex // progress lines come from several goroutines
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(opts.Log, "bench: "+format+"\n", a...)
	}
	res := &Result{Date: time.Now().Format(time.RFC3339), Host: hostFacts(), DurationS: opts.Duration.Seconds(),
		CPUUsPerMsg: map[string]float64{}, PeakRSSMB: map[string]float64{}}

	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "taxlink-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		dir = d
		defer os.RemoveAll(dir)
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return nil, fmt.Errorf("bench: %s must be an empty directory", dir)
		}
		res.Dir = dir
	}

	// 1. The physical bounds, in the directory the network will use.
	logf("F: 8 KiB write+fdatasync, serial, %v in %s", opts.Calibrate, dir)
	f, err := FsyncRate(ctx, dir, ProbeSize, opts.Calibrate)
	if err != nil {
		return nil, err
	}
	res.Fsync = f
	res.FsyncPerS = f.PerS
	logf("F = %.0f/s, p50 %.2f ms, p99 %.2f ms", f.PerS, f.P50MS, f.P99MS)
	logf("J: 8 KiB JetStream publishes, SyncAlways, embedded server, %v sync + %v async", opts.Calibrate, opts.Calibrate)
	j, err := JetStreamRate(ctx, dir, ProbeSize, 256, opts.Calibrate)
	if err != nil {
		return nil, err
	}
	res.JetStream = j
	res.JetStreamPerS = max(j.Sync, j.Async)
	logf("J = %.0f/s sync (p50 %.2f ms, p99 %.2f ms), %.0f/s async (window %d)", j.Sync, j.SyncP50MS, j.SyncP99MS, j.Async, j.Window)
	docs, avg, err := loadDocs(256)
	if err != nil {
		return nil, err
	}
	res.PayloadBytes = avg
	logf("C: the cryptography of one notification of %d bytes, %v", avg, opts.Calibrate)
	c, err := CryptoFloor(ctx, make([]byte, avg), opts.Calibrate)
	if err != nil {
		return nil, err
	}
	res.Crypto = c
	logf("C = %.0f µs per notification: at most %.0f/s on %d CPUs", c.PerMsgUs, c.CeilingPerS, runtime.GOMAXPROCS(0))
	// The probe's embedded server is gone: start the NTA role's peak RSS
	// afresh.
	debug.FreeOSMemory()
	if err := ResetPeakRSS(0); err != nil {
		logf("warning: %v (the NTA's peak RSS includes the probes)", err)
	}

	// 2. The network, hub and recipient nodes as processes.
	lay, procs, nta, err := startNetwork(ctx, opts, filepath.Join(dir, "net"), filepath.Join(dir, "logs"), opts.Recipients, logf)
	if err != nil {
		return nil, err
	}
	defer procs.kill()
	defer nta.Close()
	res.Recipients = len(lay.Recipients)

	if opts.CPUProfile != nil {
		if err := pprof.StartCPUProfile(opts.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	d := newDriver(nta, lay.Recipients, docs, logf)
	runCtx, stopRun := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { d.collect(runCtx) })
	bg.Go(func() { d.progress(runCtx) })
	stopBG := func() {
		stopRun()
		bg.Wait()
	}
	defer stopBG()
	var spans []Span
	mark := func(name string, from time.Time) {
		spans = append(spans, Span{Name: name, Start: from.Sub(d.t0).Seconds(), End: time.Since(d.t0).Seconds()})
	}
	// drain waits for every recording receipt of a phase; what does not
	// come is given up, reported, and its recipients left out of the
	// phases that follow, so that one broken recipient does not hide the
	// figures of the others.
	drain := func(what string) error {
		t := time.Now()
		err := d.drain(ctx, opts.DrainTimeout, stallTimeout)
		if err == nil {
			logf("%s drained in %v", what, time.Since(t).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, rcpts := d.abandon()
		msg := fmt.Sprintf("%s: %v; gave up on %d notifications to %d recipients (%s), left out from now on",
			what, err, n, len(rcpts), strings.Join(rcpts[:min(5, len(rcpts))], ", "))
		logf("%s", msg)
		res.Failures = append(res.Failures, msg)
		d.exclude(rcpts)
		if len(d.recipients) == 0 {
			return errors.New("bench: no recipient left that records")
		}
		return nil
	}
	if err := procs.check(); err != nil {
		return nil, err
	}

	// 3. Prime: one notification to every recipient.
	t := time.Now()
	ph := d.newPhase("prime")
	logf("prime: one notification to each of %d recipients", len(lay.Recipients))
	d.counted(ctx, ph, 16, len(lay.Recipients))
	if err := drain("prime"); err != nil {
		return nil, err
	}
	mark("prime", t)
	res.RecipientsRecording = len(d.recipients)
	res.PrimeS = time.Since(t).Seconds()

	// 4. Search for a good concurrency.
	n := opts.Concurrency
	if n == 0 {
		step := min(max(opts.Duration/12, time.Second), 4*time.Second)
		t = time.Now()
		best := 0.0
		for c := 4; ; c *= 2 {
			ph := d.newPhase(fmt.Sprintf("search N=%d", c))
			d.closedLoop(ctx, ph, c, step)
			rate := float64(ph.acceptedIn) / ph.window().Seconds()
			res.Search = append(res.Search, Level{Concurrency: c, AcceptPerS: rate})
			logf("search: N=%d accepted %.0f/s", c, rate)
			if err := drain(ph.name); err != nil {
				return nil, err
			}
			on := searchOn(c, rate, best)
			best = max(best, rate)
			if !on {
				break
			}
		}
		// The smallest N within 5% of the best: the same rate with less
		// queueing.
		for _, l := range res.Search {
			if l.AcceptPerS >= 0.95*best {
				n = l.Concurrency
				break
			}
		}
		mark("search", t)
	}
	res.Concurrency = n
	if err := procs.check(); err != nil {
		return nil, err
	}

	// 5. Sustained closed loop.
	before, err := procs.sample()
	if err != nil {
		return nil, err
	}
	t = time.Now()
	ph = d.newPhase("sustained")
	logf("sustained: closed loop, N=%d, %v", n, opts.Duration)
	d.closedLoop(ctx, ph, n, opts.Duration)
	if err := drain("sustained"); err != nil {
		return nil, err
	}
	mark("sustained", t)
	after, err := procs.sample()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	win := ph.window().Seconds()
	res.AcceptPerS = float64(ph.acceptedIn) / win
	res.E2EPerS = ph.e2eRate()
	res.E2EInWindowPerS = float64(ph.recordedIn) / win
	res.P50AcceptMS, res.P99AcceptMS = percentile(ph.accept, 50), percentile(ph.accept, 99)
	res.P50PrepareMS, res.P99PrepareMS = percentile(ph.prepare, 50), percentile(ph.prepare, 99)
	res.P99SubmitMS = percentile(ph.submit, 99)
	res.P50E2EMS, res.P99E2EMS = percentile(ph.e2e, 50), percentile(ph.e2e, 99)
	msgs := ph.sent
	d.mu.Unlock()
	for role, us := range cpuPerMsg(before, after, msgs) {
		res.CPUUsPerMsg[role] = us
	}
	if w := written(before, after); w != nil && msgs > 0 {
		for role, mb := range w {
			w[role] = mb * 1000 // KB
		}
		res.WrittenKBPerMsg = rolesPerMsg(w, msgs)
	}
	logf("sustained: accepted %.0f/s, recorded %.0f/s, p99 accept %.1f ms, p99 e2e %.1f ms", res.AcceptPerS, res.E2EPerS, res.P99AcceptMS, res.P99E2EMS)

	// 6. Open loop at half the sustainable rate.
	rate := min(res.AcceptPerS, res.E2EPerS) / 2
	if rate > 0 {
		hd := min(max(opts.Duration/4, 2*time.Second), 15*time.Second)
		t = time.Now()
		// The hub's own view of the phase: its acceptance histograms
		// before and after.
		hubMetrics, err := procs.hub.metricsAddr()
		var stepsBefore map[string]histogram
		if err == nil {
			stepsBefore, err = acceptSteps(ctx, hubMetrics)
		}
		if err != nil {
			logf("warning: %v (no hub step latencies)", err)
		}
		ph = d.newPhase("half-rate")
		logf("half-rate: open loop at %.0f/s for %v", rate, hd)
		d.openLoop(ctx, ph, rate, hd)
		if err := drain("half-rate"); err != nil {
			return nil, err
		}
		mark("half-rate", t)
		d.mu.Lock()
		res.HalfRate = HalfRate{
			TargetPerS: rate, AchievedPerS: float64(ph.acceptedIn) / ph.window().Seconds(),
			P50AcceptMS: percentile(ph.accept, 50), P99AcceptMS: percentile(ph.accept, 99),
			P99SubmitMS: percentile(ph.submit, 99), P99E2EMS: percentile(ph.e2e, 99),
		}
		d.mu.Unlock()
		res.P99AcceptHalfRateMS = res.HalfRate.P99AcceptMS
		if stepsBefore != nil {
			if after, err := acceptSteps(ctx, hubMetrics); err != nil {
				logf("warning: %v (no hub step latencies)", err)
			} else {
				res.HalfRate.HubP99MS = map[string]float64{}
				for step, h := range after {
					res.HalfRate.HubP99MS[step] = quantileMS(stepsBefore[step], h, 0.99)
				}
			}
		}
	}

	// Peak RSS of the run so far, per role.
	if s, err := procs.sample(); err == nil {
		for role, mb := range peakRSS(s) {
			res.PeakRSSMB[role] = mb
		}
	}

	// 7. Large payloads.
	if opts.Large {
		t = time.Now()
		lr, err := runLarge(ctx, d, lay, procs, dir, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			res.Failures = append(res.Failures, err.Error())
		}
		mark("large", t)
		res.Large = lr
	}
	if err := procs.check(); err != nil {
		return nil, err
	}
	pprof.StopCPUProfile()
	stopBG()
	d.mu.Lock()
	res.SubmitErrors = d.failed
	if d.failed > 0 && d.firstErr != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("%d submissions not accepted at once (resubmitted); first error: %v", d.failed, d.firstErr))
	}
	res.Series = series(d.accSec, d.recSec)
	d.mu.Unlock()
	res.Phases = spans

	// 8. Every notification accepted, recorded once and both receipts
	// verified.
	logf("verifying both receipts of every notification")
	total, acc, ver, err := verifyAll(ctx, nta)
	if err != nil {
		return nil, err
	}
	res.Notifications, res.Accepted, res.Verified = total, acc, ver
	if err := procs.stop(); err != nil {
		res.Failures = append(res.Failures, err.Error())
	}
	held, err := countAtRecipients(ctx, lay)
	if err != nil {
		res.Failures = append(res.Failures, err.Error())
	}
	res.AtRecipients = held
	if acc != total {
		res.Failures = append(res.Failures, fmt.Sprintf("%d of %d notifications accepted", acc, total))
	}
	if ver != total {
		res.Failures = append(res.Failures, fmt.Sprintf("%d of %d notifications have both receipts verified", ver, total))
	}
	if held != int64(total) {
		res.Failures = append(res.Failures, fmt.Sprintf("recipients hold %d records for %d notifications", held, total))
	}
	res.Passed = total > 0 && acc == total && ver == total && held == int64(total) && len(res.Failures) == 0
	if !res.Passed {
		for _, p := range procs.all() {
			if e := p.topError(); e != "" {
				res.Failures = append(res.Failures, fmt.Sprintf("%s %s log, most frequent error: %s", p.role, p.id, e))
			}
		}
	}
	if opts.CompareRecipients > 0 {
		cd := max(opts.Duration/2, 5*time.Second)
		logf("compare: a fresh network with %d recipients, closed loop N=%d for %v", opts.CompareRecipients, n, cd)
		c, err := compareRun(ctx, opts, filepath.Join(dir, "compare"), opts.CompareRecipients, n, cd, docs, logf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			res.Failures = append(res.Failures, err.Error())
		} else {
			c.Ratio, c.RatioAccept = ratio(res.E2EPerS, c.E2EPerS), ratio(res.AcceptPerS, c.AcceptPerS)
			res.Compare = c
			logf("compare: %d recipients: accepted %.0f/s, recorded %.0f/s (main run / this = %.2f)", c.Recipients, c.AcceptPerS, c.E2EPerS, c.Ratio)
		}
	}
	res.RatioE2EFsync = ratio(res.E2EPerS, res.FsyncPerS)
	res.RatioAcceptJetStream = ratio(res.AcceptPerS, res.JetStreamPerS)
	res.Goals = goals(res)
	return res, nil
}

// startNetwork writes a dev network into dir widened to recipients, starts
// its hub and recipient nodes as processes (logs in logDir) and loads the
// NTA node in this process. The caller kills the processes and closes the
// NTA node. devnet.Init picks free ports that another program may take
// before a process binds them: then the network is written anew with other
// ports, up to three times.
func startNetwork(ctx context.Context, opts Options, dir, logDir string, recipients int, logf func(string, ...any)) (*devnet.Layout, *running, *daemon.LoadedNode, error) {
	for attempt := 1; ; attempt++ {
		lay, procs, nta, err := startNetworkOnce(ctx, opts, dir, logDir, recipients, logf)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return lay, procs, nta, err
		}
		logf("%v; writing the network again with other ports", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, nil, nil, fmt.Errorf("bench: %w", err)
		}
	}
}

func startNetworkOnce(ctx context.Context, opts Options, dir, logDir string, recipients int, logf func(string, ...any)) (*devnet.Layout, *running, *daemon.LoadedNode, error) {
	lay, err := devnet.Init(dir, devnet.Options{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: %w", err)
	}
	if err := devnet.Widen(lay, recipients); err != nil {
		return nil, nil, nil, err
	}
	logf("network in %s: %d recipients on %d nodes", lay.Dir, len(lay.Recipients), len(lay.Nodes)-1)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("bench: %w", err)
	}
	procs := &running{}
	hub, err := startProcess(ctx, opts.Binary, "hub", devnet.HubID, lay.HubConfig, lay.HubListen, logDir, 2*time.Minute, opts.Profiles)
	if err != nil {
		return nil, nil, nil, err
	}
	procs.hub = hub
	var ntaInfo devnet.NodeInfo
	for _, n := range lay.Nodes {
		if n.ID == devnet.NTAID {
			ntaInfo = n
			continue // this process is the NTA node
		}
		p, err := startProcess(ctx, opts.Binary, "node", n.ID, n.Config, n.Listen, logDir, 2*time.Minute, opts.Profiles)
		if err != nil {
			procs.kill()
			return nil, nil, nil, err
		}
		procs.nodes = append(procs.nodes, p)
	}
	logf("hub (pid %d) and %d nodes listening; logs in %s", hub.pid(), len(procs.nodes), logDir)
	nta, err := daemon.LoadNode(ntaInfo.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		procs.kill()
		return nil, nil, nil, fmt.Errorf("bench: NTA node: %w", err)
	}
	return lay, procs, nta, nil
}

// Compare is what the comparison run with fewer recipients measured.
type Compare struct {
	Recipients int     `json:"recipients"`
	AcceptPerS float64 `json:"accept_per_s"`
	E2EPerS    float64 `json:"e2e_per_s"`
	// Ratio is the main run's e2e_per_s over this one's; RatioAccept the
	// same for accept_per_s.
	Ratio       float64 `json:"ratio_e2e"`
	RatioAccept float64 `json:"ratio_accept"`
}

// compareRun runs a second, fresh network with recipients local
// governments: prime, then a closed loop with n submitters for dur.
func compareRun(ctx context.Context, opts Options, dir string, recipients, n int, dur time.Duration, docs []doc, logf func(string, ...any)) (*Compare, error) {
	lay, procs, nta, err := startNetwork(ctx, opts, filepath.Join(dir, "net"), filepath.Join(dir, "logs"), recipients, logf)
	if err != nil {
		return nil, err
	}
	defer procs.kill()
	defer nta.Close()
	d := newDriver(nta, lay.Recipients, docs, logf)
	runCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { d.collect(runCtx) })
	defer func() {
		stop()
		bg.Wait()
	}()
	d.counted(ctx, d.newPhase("compare prime"), 16, len(lay.Recipients))
	if err := d.drain(ctx, opts.DrainTimeout, stallTimeout); err != nil {
		return nil, fmt.Errorf("compare: prime: %w", err)
	}
	ph := d.newPhase("compare")
	d.closedLoop(ctx, ph, n, dur)
	if err := d.drain(ctx, opts.DrainTimeout, stallTimeout); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &Compare{Recipients: len(lay.Recipients), AcceptPerS: float64(ph.acceptedIn) / ph.window().Seconds(), E2EPerS: ph.e2eRate()}
	_ = procs.stop()
	return c, nil
}

// loadDocs generates n synthetic XML notifications (income tax and blue
// returns; the scans are left to the large phase) before the run, so that
// generating them is not counted as the NTA's work.
func loadDocs(n int) ([]doc, int, error) {
	lg, err := lgdata.Load()
	if err != nil {
		return nil, 0, fmt.Errorf("bench: %w", err)
	}
	g := synth.NewGenerator(1)
	all := lg.All()
	var docs []doc
	total := 0
	for i := 0; len(docs) < n; i++ {
		gov := all[i%len(all)]
		nt := g.Next(gov.Name, gov.Prefecture)
		if nt.ContentType != synth.ContentTypeXML {
			continue
		}
		docs = append(docs, doc{typ: nt.Type, contentType: nt.ContentType, body: nt.Body})
		total += len(nt.Body)
	}
	return docs, total / n, nil
}

// verifyAll checks every outbox entry of the NTA node: accepted, recorded,
// and both receipts verified against the directory (node.VerifyBoth).
func verifyAll(ctx context.Context, nta *daemon.LoadedNode) (total, accepted, verified int, err error) {
	dir := nta.Directory()
	hubID := nta.Config.HubID
	after := ""
	for {
		page, err := nta.Store.ListOutgoing(ctx, after, 1000)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("bench: %w", err)
		}
		if len(page) == 0 {
			return total, accepted, verified, nil
		}
		// Two receipts to verify per entry: spread over the cores.
		oks := make([]bool, len(page))
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(page); i += workers {
					a, r := node.VerifyBoth(dir, hubID, page[i])
					oks[i] = a == nil && r == nil
				}
			})
		}
		wg.Wait()
		for i, o := range page {
			total++
			if o.Accepted != nil {
				accepted++
			}
			if oks[i] {
				verified++
			}
			after = o.ID
		}
	}
}

// countAtRecipients opens each recipient node's database (the processes
// have stopped) and counts the records of every tenant.
func countAtRecipients(ctx context.Context, lay *devnet.Layout) (int64, error) {
	var total int64
	for _, n := range lay.Nodes {
		if n.ID == devnet.NTAID {
			continue
		}
		st, err := sqlite.Open(filepath.Join(filepath.Dir(n.Config), "data", "node.db"))
		if err != nil {
			return total, fmt.Errorf("bench: count at %s: %w", n.ID, err)
		}
		for _, t := range n.Tenants {
			c, err := st.Count(ctx, t)
			if err != nil {
				st.Close()
				return total, fmt.Errorf("bench: count at %s: %w", n.ID, err)
			}
			total += c
		}
		st.Close()
	}
	return total, nil
}

func series(acc, rec []int) []Second {
	n := max(len(acc), len(rec))
	out := make([]Second, n)
	for i := range n {
		out[i] = Second{T: i, Accepted: at(acc, i), Recorded: at(rec, i)}
	}
	return out
}

func hostFacts() Host {
	h := Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			h.MemTotalGB = kb / (1 << 20)
		}
	}
	return h
}

func ptr[T any](v T) *T { return &v }

// CryptoCeilingF is the cryptography's ceiling (Crypto.CeilingPerS) in
// units of F: the most e2e / F could be on this machine.
func (r *Result) CryptoCeilingF() float64 { return ratio(r.Crypto.CeilingPerS, r.FsyncPerS) }

// ratio is a / b, or 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// goals says which goals of issue 8 the run met.
func goals(r *Result) map[string]Goal {
	g := map[string]Goal{
		"e2e_ge_1.0_fsync": {Target: "durable end-to-end >= 1.0 x F, sustained", Value: ptr(r.RatioE2EFsync), Met: ptr(r.RatioE2EFsync >= 1.0),
			Note: fmt.Sprintf("sustained for %.0f s (the issue asks 60 s); the cryptography alone allows at most %.2f x F on this machine", r.DurationS, r.CryptoCeilingF())},
		"accept_ge_0.8_jetstream": {Target: "hub acceptance >= 0.8 x J", Value: ptr(r.RatioAcceptJetStream), Met: ptr(r.RatioAcceptJetStream >= 0.8),
			Note: "J is the faster of sync and async publishing"},
		"p99_accept_half_rate_lt_20ms": {Target: "p99 submission->acceptance < 20 ms at half the maximum rate", Value: ptr(r.P99AcceptHalfRateMS),
			Met: ptr(r.HalfRate.TargetPerS > 0 && r.P99AcceptHalfRateMS < 20),
			Note: fmt.Sprintf("p99 at the hub: whole %.1f ms, queue %.1f, ledger %.1f, receipt %.1f; alone on the machine, a JetStream publish takes %.2f ms at p99 and an fsync %.2f ms",
				r.HalfRate.HubP99MS["total"], r.HalfRate.HubP99MS[metrics.StepQueue], r.HalfRate.HubP99MS[metrics.StepLedger], r.HalfRate.HubP99MS[metrics.StepReceipt],
				r.JetStream.SyncP99MS, r.Fsync.P99MS)},
		"recipients_1788_cost_le_10pct": {Target: "1,788 recipients cost at most 10% of the throughput with 10",
			Note: "run with --compare-recipients 10 (and --recipients 1788)"},
		"hub_restart_1m_lt_10s": {Target: "a hub restart with 1 million queued accepts again within 10 s", Note: "not measured by taxlink bench"},
	}
	if c := r.Compare; c != nil {
		g["recipients_1788_cost_le_10pct"] = Goal{Target: "1,788 recipients cost at most 10% of the throughput with 10",
			Value: ptr(c.Ratio), Met: ptr(r.Recipients == 1788 && c.Ratio >= 0.9),
			Note: fmt.Sprintf("end-to-end rate with %d recipients over the rate with %d, same concurrency", r.Recipients, c.Recipients)}
	}
	if r.Large != nil {
		g["large_ge_0.5_tls_stream"] = Goal{Target: "8 concurrent 50 MB PDFs end to end >= 50% of one loopback mTLS stream",
			Value: ptr(r.Large.RatioTLS), Met: ptr(r.Large.RatioTLS >= 0.5)}
		if l := r.Large; l.WritesPerByte > 0 {
			gl := g["large_ge_0.5_tls_stream"]
			gl.Note = fmt.Sprintf("each payload byte is written %.1f times; D = %.0f MB/s over that is %.2f x one mTLS stream (one sequential writer; concurrent ones get somewhat more)",
				l.WritesPerByte, l.DiskMBPerS, l.RatioDiskCeilingTLS)
			g["large_ge_0.5_tls_stream"] = gl
		}
		peak := 0.0
		for _, v := range r.Large.PeakRSSMB {
			peak = max(peak, v)
		}
		g["large_rss_lt_256mb"] = Goal{Target: "every process's RSS under 256 MB with large payloads", Value: ptr(peak), Met: ptr(peak < 256)}
	} else {
		g["large_ge_0.5_tls_stream"] = Goal{Target: "8 concurrent 50 MB PDFs end to end >= 50% of one loopback mTLS stream", Note: "run with --large"}
		g["large_rss_lt_256mb"] = Goal{Target: "every process's RSS under 256 MB with large payloads", Note: "run with --large"}
	}
	return g
}

// running is the network's processes.
type running struct {
	hub   *process
	nodes []*process
}

func (r *running) all() []*process {
	if r.hub == nil {
		return r.nodes
	}
	return append([]*process{r.hub}, r.nodes...)
}

// check fails when a process has exited.
func (r *running) check() error {
	for _, p := range r.all() {
		if !p.alive() {
			return fmt.Errorf("bench: %s %s exited (%v); log:\n%s", p.role, p.id, p.err, p.tail())
		}
	}
	return nil
}

// sample reads every role's CPU time and memory: "nta" is this process,
// "hub" the hub, and "node:ID" each recipient node.
func (r *running) sample() (map[string]ProcSample, error) {
	out := map[string]ProcSample{}
	s, err := ReadProc(0)
	if err != nil {
		return nil, err
	}
	out["nta"] = s
	for _, p := range r.all() {
		s, err := ReadProc(p.pid())
		if err != nil {
			return nil, fmt.Errorf("bench: %s %s: %w", p.role, p.id, err)
		}
		key := "hub"
		if p.role == "node" {
			key = "node:" + p.id
		}
		out[key] = s
	}
	return out, nil
}

// cpuPerMsg returns the CPU microseconds per message of each role between
// two samples: "nta", "hub", "node" (all recipient nodes together: each
// message is recorded by one of them) and "total".
func cpuPerMsg(before, after map[string]ProcSample, msgs int) map[string]float64 {
	us := map[string]float64{}
	for k, a := range after {
		us[roleOf(k)] += a.CPUMicros() - before[k].CPUMicros()
	}
	return rolesPerMsg(us, msgs)
}

// rolesPerMsg divides each role's amount by msgs and adds "total", the sum of
// them; it is empty when there were no messages.
func rolesPerMsg(byRole map[string]float64, msgs int) map[string]float64 {
	out := map[string]float64{}
	if msgs <= 0 {
		return out
	}
	for role, v := range byRole {
		out[role] = v / float64(msgs)
		out["total"] += v / float64(msgs)
	}
	return out
}

// roleOf returns the role of a sample's key: "nta", "hub", or "node" for
// every recipient node ("node:ID").
func roleOf(key string) string {
	role, _, _ := strings.Cut(key, ":")
	return role
}

// written returns what each role sent to storage between the samples
// before and after, in MB, the recipient nodes summed as "node"; nil if a
// process's writes are not accounted.
func written(before, after map[string]ProcSample) map[string]float64 {
	out := map[string]float64{}
	for k, a := range after {
		b, ok := before[k]
		if !ok || a.WriteBytes < 0 || b.WriteBytes < 0 {
			return nil
		}
		out[roleOf(k)] += float64(a.WriteBytes-b.WriteBytes) / 1e6
	}
	return out
}

// currentRSS returns each role's RSS in MB (VmRSS); "node" is the
// largest node's.
func currentRSS(s map[string]ProcSample) map[string]float64 {
	return byRole(s, func(p ProcSample) int64 { return p.RSSKiB })
}

// peakRSS returns each role's peak RSS in MB (VmHWM); "node" is the
// largest node's.
func peakRSS(s map[string]ProcSample) map[string]float64 {
	return byRole(s, func(p ProcSample) int64 { return p.HWMKiB })
}

// byRole returns kib of each role's process in MB, the largest of the
// recipient nodes' as "node".
func byRole(s map[string]ProcSample, kib func(ProcSample) int64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		role := roleOf(k)
		out[role] = max(out[role], float64(kib(v))/1024)
	}
	return out
}

// stop stops the nodes, then the hub.
func (r *running) stop() error {
	var errs []error
	for _, p := range r.nodes {
		errs = append(errs, p.stop())
	}
	if r.hub != nil {
		errs = append(errs, r.hub.stop())
	}
	return errors.Join(errs...)
}

// kill kills whatever still runs.
func (r *running) kill() {
	for _, p := range r.all() {
		p.kill()
	}
}
