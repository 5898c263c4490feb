package bench

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/envelope"
	"taxlink/internal/node"
	"taxlink/internal/queue"
	"taxlink/internal/synth"
)

// IsolationGoal is the slowest acceptable ratio of the delivery rate to the
// healthy recipients with the down recipient's backlog queued to the rate
// without it (issue 7, item 3: "no more than 10%" slower).
const IsolationGoal = 0.90

// isoHubParallel is the hub's deliveries in flight per recipient: the
// daemon leaves hub.Config.Parallel at its default of 8.
const isoHubParallel = 8

// isoCapAttempts is the delivery attempt from which the hub's backoff (200
// ms doubling) sits at its 30 s cap: 200 ms << 8 > 30 s.
const isoCapAttempts = 8

// IsolationOptions configures [Isolation]. The zero value of a field means
// its default.
type IsolationOptions struct {
	// Queued is the number of envelopes queued for the down recipient
	// (default 100,000).
	Queued int
	// Duration is the length of each measured window, with and without
	// the backlog (default 30s).
	Duration time.Duration
	// Warmup is how long the closed loop runs before each window opens
	// (default 3s).
	Warmup time.Duration
	// Concurrency is the number of closed-loop submitters at the NTA node
	// (default 16).
	Concurrency int
	// FillConcurrency is the number of goroutines sealing and enqueueing
	// the backlog (default 32).
	FillConcurrency int
	// Settle bounds the wait, after the fill, for the down recipient's
	// delivery loop to reach its backoff cap (default 90s; negative: do
	// not wait).
	Settle time.Duration
	// DrainMax bounds the drain measurement, counted from the first
	// envelope recorded after the restart (default 60s); the wait for
	// that first one is bounded by the backoff cap plus 15 s.
	DrainMax time.Duration
	// Dir is where the network is written; it must be empty or not exist,
	// and is kept. Empty: a temporary directory, removed at the end.
	Dir string
	// Seed determines the synthetic documents (default 1).
	Seed uint64
	// RestartHub ends the run with a restart of the hub holding what is
	// still queued: stopped as by an operator's SIGTERM, started again on
	// its configuration, and timed until it accepts a submission again
	// (issue 8: with 1 million queued, within HubRestartGoal).
	RestartHub bool
}

// HubRestartGoal is the longest a hub restart may take, from the start to
// its first acceptance, with a large queue (issue 8).
const HubRestartGoal = 10 * time.Second

func (o *IsolationOptions) defaults() error {
	if o.Queued == 0 {
		o.Queued = 100_000
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.FillConcurrency == 0 {
		o.FillConcurrency = 32
	}
	if o.Settle == 0 {
		o.Settle = 90 * time.Second
	}
	if o.DrainMax == 0 {
		o.DrainMax = 60 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	switch {
	case o.Queued < 1:
		return fmt.Errorf("bench: isolation: queued %d, want at least 1", o.Queued)
	case o.Duration < time.Second || o.Warmup < 0 || o.DrainMax < time.Second:
		return fmt.Errorf("bench: isolation: duration %v, warmup %v, drain max %v: want duration and drain max of 1s or more", o.Duration, o.Warmup, o.DrainMax)
	case o.Concurrency < 1 || o.FillConcurrency < 1:
		return fmt.Errorf("bench: isolation: concurrency %d, fill concurrency %d: want positive", o.Concurrency, o.FillConcurrency)
	}
	return nil
}

// IsolationReport is the outcome of [Isolation]. Its JSON form is the last
// line `taxlink bench isolation` prints. Rates are per wall-clock second;
// CPU is this process's, which runs the hub, every node and the load.
type IsolationReport struct {
	Host Host `json:"host"`
	// DownRecipient is the recipient whose node is stopped; its node
	// hosts no other recipient. HealthyRecipients receive the load.
	DownRecipient     string   `json:"down_recipient"`
	DownNode          string   `json:"down_node"`
	HealthyRecipients []string `json:"healthy_recipients"`
	Concurrency       int      `json:"concurrency"`
	WindowS           float64  `json:"window_s"`

	// Queued is the backlog asked for; FillMethod says how it was
	// written, FillS how long it took (sealing and signing included) and
	// FillPerS the rate. BacklogAfterFill is the hub's count for the down
	// recipient afterwards.
	Queued           int     `json:"queued"`
	FillMethod       string  `json:"fill_method"`
	FillConcurrency  int     `json:"fill_concurrency"`
	FillS            float64 `json:"fill_s"`
	FillPerS         float64 `json:"fill_per_s"`
	BacklogAfterFill uint64  `json:"backlog_after_fill"`
	FillBytes        int64   `json:"fill_bytes"`

	// ClockOffsetH is how far the hub's clock (hub.SetClock) is moved
	// ahead for the outage: it dates acceptance receipts and decides the
	// acceptance window and outsourcer certification checks; the retry
	// backoff runs on real timers. OldestQueuedAgeH is the age of the
	// oldest queued envelope by the hub's clock when the window with the
	// backlog opens.
	ClockOffsetH     float64 `json:"clock_offset_h"`
	OldestQueuedAgeH float64 `json:"oldest_queued_age_h"`
	// SettleS is the wait after the fill for the down recipient's loop to
	// reach its backoff cap; BackoffCapped says whether it did (at least
	// 8 failed attempts for each of its 8 deliveries in flight).
	SettleS       float64 `json:"settle_s"`
	BackoffCapped bool    `json:"backoff_capped"`

	// BaselinePerS is the end-to-end rate (submitted at the NTA node,
	// recorded at the healthy recipients' nodes) in the window without a
	// backlog; WithBacklogPerS the same with Queued envelopes waiting for
	// the down recipient. Ratio = WithBacklogPerS / BaselinePerS. The
	// accept rates are the hub's acceptance receipts seen by the NTA node.
	BaselinePerS             float64 `json:"baseline_per_s"`
	BaselineAcceptPerS       float64 `json:"baseline_accept_per_s"`
	BaselinePerRecipientPerS float64 `json:"baseline_per_recipient_per_s"`
	WithBacklogPerS          float64 `json:"with_backlog_per_s"`
	WithBacklogAcceptPerS    float64 `json:"with_backlog_accept_per_s"`
	Ratio                    float64 `json:"ratio"`
	// BaselineSecondCV and WithBacklogSecondCV are the coefficients of
	// variation of the per-second recorded counts in each window, and
	// RatioCI95 the half-width of an approximate 95% interval of Ratio
	// from them (seconds taken as independent): the noise of a shared
	// machine.
	BaselineSecondCV    float64 `json:"baseline_second_cv"`
	WithBacklogSecondCV float64 `json:"with_backlog_second_cv"`
	RatioCI95           float64 `json:"ratio_ci95"`
	SubmitErrors        int64   `json:"submit_errors"`
	// DownFailuresInWindow is the hub's failed delivery attempts to the
	// down recipient during the window with the backlog;
	// BacklogEndOfWindow its backlog at the window's end (want Queued).
	DownFailuresInWindow int64  `json:"down_failures_in_window"`
	BacklogEndOfWindow   uint64 `json:"backlog_end_of_window"`

	// The return: RestartS is the node's restart (same configuration,
	// same port); FirstDeliveryS the time from the restart to the first
	// envelope recorded (the delivery loop's backoff); DrainRecorded the
	// envelopes recorded in DrainS seconds from that first one (and
	// DrainRecordedTotal since the restart, that first one included);
	// DrainPerS their rate; DrainRemaining the hub's backlog at the end
	// (0 when drained); DrainRatio = DrainPerS / BaselinePerS (the whole
	// hub's end-to-end rate with load) and DrainPerRecipientRatio =
	// DrainPerS / BaselinePerRecipientPerS.
	RestartS               float64 `json:"restart_s"`
	FirstDeliveryS         float64 `json:"first_delivery_s"`
	DrainRecorded          int64   `json:"drain_recorded"`
	DrainRecordedTotal     int64   `json:"drain_recorded_total"`
	DrainS                 float64 `json:"drain_s"`
	DrainPerS              float64 `json:"drain_per_s"`
	DrainRemaining         uint64  `json:"drain_remaining"`
	DrainRatio             float64 `json:"drain_ratio"`
	DrainPerRecipientRatio float64 `json:"drain_per_recipient_ratio"`
	// DrainSteadyPerS is the drain rate from 31 s after the restart (when
	// every delivery that was sleeping in its backoff at the restart, at
	// most 30 s, has woken and the loop delivers isoHubParallel at a
	// time) to the end, when that span is 5 s or more (else 0);
	// DrainSteadyRatio = DrainSteadyPerS / BaselinePerS.
	DrainSteadyPerS  float64 `json:"drain_steady_per_s"`
	DrainSteadyRatio float64 `json:"drain_steady_ratio"`

	// OthersCPUBaselineS and OthersCPUWithBacklogS are the CPU seconds the
	// rest of the machine used during each window (/proc/stat busy time
	// less this process's; -1 where unknown): on a shared machine, a
	// difference between them moves Ratio more than the backlog can.
	OthersCPUBaselineS    float64 `json:"others_cpu_baseline_s"`
	OthersCPUWithBacklogS float64 `json:"others_cpu_with_backlog_s"`
	// CPU of this process: seconds in each window and per message.
	CPUBaselineS        float64 `json:"cpu_baseline_s"`
	CPUWithBacklogS     float64 `json:"cpu_with_backlog_s"`
	CPUDrainS           float64 `json:"cpu_drain_s"`
	CPUFillS            float64 `json:"cpu_fill_s"`
	CPUBaselineUsPerMsg float64 `json:"cpu_baseline_us_per_msg"`
	CPUBacklogUsPerMsg  float64 `json:"cpu_with_backlog_us_per_msg"`
	CPUDrainUsPerMsg    float64 `json:"cpu_drain_us_per_msg"`
	PeakRSSMB           float64 `json:"peak_rss_mb"`

	// FsyncPerS is F: serial 8 KiB write+fdatasync in the run's
	// directory for 1 s before the network starts. A node records with a
	// serialized durable commit, so one recipient's drain is bounded by
	// about F; DrainFsyncRatio = DrainPerS / FsyncPerS.
	FsyncPerS       float64 `json:"fsync_per_s"`
	DrainFsyncRatio float64 `json:"drain_fsync_ratio"`

	// SetupS is the network's start and priming; TotalS the whole run.
	SetupS       float64 `json:"setup_s"`
	TotalS       float64 `json:"total_s"`
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
	// Passed: Ratio ≥ IsolationGoal and every consistency check held
	// (the whole backlog queued, kept while down, and nothing lost).
	// DrainComplete says whether the backlog drained within DrainMax.
	DrainComplete bool `json:"drain_complete"`

	// With RestartHub: HubRestartQueued envelopes were queued when the
	// hub stopped; HubRestartStopS its stop, HubRestartStartS its start
	// (daemon.StartHub), HubRestartAcceptS from the start to the first
	// acceptance receipt at the NTA; HubRestartMet: within HubRestartGoal.
	HubRestartQueued  uint64  `json:"hub_restart_queued,omitempty"`
	HubRestartStopS   float64 `json:"hub_restart_stop_s,omitempty"`
	HubRestartStartS  float64 `json:"hub_restart_start_s,omitempty"`
	HubRestartAcceptS float64 `json:"hub_restart_accept_s,omitempty"`
	HubRestartMet     *bool   `json:"hub_restart_met,omitempty"`

	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// isoRun is the state of one run of Isolation.
type isoRun struct {
	notes
	o       IsolationOptions
	dir     string
	nw      *devnet.Network
	downSvc *daemon.Service
	downCfg string
	healthy []*daemon.Service
	nta     *daemon.Service
	docs    []synth.Notification
	rep     IsolationReport
	log     *slog.Logger
	logFile *os.File
	netCtx  context.Context
}

// notes sends a bench run's progress lines and records its failed
// consistency checks in *failures.
type notes struct {
	progress func(string)
	failures *[]string
}

func (n notes) logf(format string, a ...any) {
	if n.progress != nil {
		n.progress(fmt.Sprintf(format, a...))
	}
}

func (n notes) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	*n.failures = append(*n.failures, msg)
	n.logf("CHECK FAILED: %s", msg)
}

// Isolation measures how one recipient that is down, with a large backlog
// queued for it at the hub, affects delivery to the others. It starts the
// dev network in this process (devnet.InitAndStart: the hub with its queue
// file synchronous=FULL, every node with its SQLite store, mTLS on every hop), primes
// every delivery loop, then stops the node of 札幌市 (lg:011002, the only
// tenant of its node): its listener is closed and the hub's deliveries
// meet a real connection refusal. (Before the network starts, F, the
// serial fsync rate of the run's directory, is probed for 1 s.) Then:
//
//  1. baseline: a closed loop of o.Concurrency submitters at the NTA node
//     sends to the four healthy recipients; after o.Warmup, the envelopes
//     recorded at their nodes in o.Duration give BaselinePerS;
//  2. fill: o.Queued envelopes for the down recipient, each sealed to its
//     key and signed with the NTA node's key as Node.Prepare does, are
//     written with queue.Queue.Enqueue through the same verifying reader
//     as the hub's submit handler (the acceptance receipt and its ledger
//     entry are left out: the queue is what a backlog is);
//  3. the hub's clock is moved a day ahead and the down recipient's loop
//     left to reach its 30 s backoff cap, the steady state of a long
//     outage;
//  4. the same closed loop with the backlog queued gives WithBacklogPerS;
//  5. the node is started again on the same configuration and port and
//     the drain of its backlog is timed.
//
// progress, if not nil, receives progress lines. A run that could not be
// carried out returns an error; a completed run returns its report, with
// Passed false when the goal or a consistency check failed.
func Isolation(ctx context.Context, o IsolationOptions, progress func(string)) (IsolationReport, error) {
	if err := o.defaults(); err != nil {
		return IsolationReport{}, err
	}
	start := time.Now()
	b := &isoRun{o: o}
	b.notes = notes{progress, &b.rep.Failures}
	b.rep = IsolationReport{
		Host: hostFacts(), Queued: o.Queued, Concurrency: o.Concurrency, WindowS: o.Duration.Seconds(),
		FillConcurrency: o.FillConcurrency, DownRecipient: devnet.SapporoID, DownNode: devnet.SapporoID,
		LoadAvgStart: tnLoadAvg(),
	}
	dir := o.Dir
	cleanup := func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "taxlink-bench-isolation-")
		if err != nil {
			return IsolationReport{}, fmt.Errorf("bench: %w", err)
		}
		dir, cleanup = d, func() { os.RemoveAll(d) }
	} else {
		d, _, err := tnWorkDir(dir)
		if err != nil {
			return IsolationReport{}, err
		}
		dir = d
	}
	defer cleanup()
	b.dir = dir
	err := b.run(ctx)
	if b.nw != nil {
		b.nw.Stop()
	}
	if b.logFile != nil {
		b.logFile.Close()
	}
	if err != nil {
		return IsolationReport{}, fmt.Errorf("bench: isolation: %w", err)
	}
	if s, err := ReadProc(0); err == nil {
		b.rep.PeakRSSMB = float64(s.HWMKiB) / 1024
	}
	b.rep.TotalS = time.Since(start).Seconds()
	b.rep.LoadAvgEnd = tnLoadAvg()
	if b.rep.Ratio < IsolationGoal {
		b.rep.Failures = append(b.rep.Failures, fmt.Sprintf("ratio %.3f is below the goal %.2f", b.rep.Ratio, IsolationGoal))
	}
	b.rep.Passed = len(b.rep.Failures) == 0
	return b.rep, nil
}

func (b *isoRun) run(ctx context.Context) error {
	f, err := FsyncRate(ctx, b.dir, ProbeSize, time.Second)
	if err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	b.rep.FsyncPerS = f.PerS
	b.logf("F: %.0f fsync/s (8 KiB write+fdatasync in %s)", f.PerS, b.dir)
	t0 := time.Now()
	if err := b.setup(ctx); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	b.rep.SetupS = time.Since(t0).Seconds()
	q := b.nw.Queue()
	h := b.nw.Hub.Hub

	// The outage starts: the node's listener closes; the hub's next
	// connection attempts are refused.
	b.logf("stopping node %s: %s is down", b.rep.DownNode, b.rep.DownRecipient)
	if err := b.downSvc.Stop(); err != nil {
		b.logf("node %s stopped with: %v", b.rep.DownNode, err)
	}

	// (a) Baseline: the down recipient's queue is empty.
	b.logf("baseline: %d submitters, %v warm-up, %v window", b.o.Concurrency, b.o.Warmup, b.o.Duration)
	a, err := b.window(ctx)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	b.rep.BaselinePerS, b.rep.BaselineAcceptPerS, b.rep.CPUBaselineS = a.perS, a.acceptPerS, a.cpuS
	b.rep.BaselinePerRecipientPerS = a.perS / float64(len(b.rep.HealthyRecipients))
	b.rep.CPUBaselineUsPerMsg = perMsg(a.cpuS, a.recorded)
	b.logf("baseline: %.0f recorded/s (%.0f accepted/s), %.0f µs CPU per message", a.perS, a.acceptPerS, b.rep.CPUBaselineUsPerMsg)

	// Fill the down recipient's queue.
	if err := b.fill(ctx, q); err != nil {
		return fmt.Errorf("fill: %w", err)
	}

	// "A day later": the hub's clock moves ahead; the delivery loop's
	// backoff (real timers) settles at its cap, as after any long outage.
	offset := 24 * time.Hour
	h.SetClock(func() time.Time { return time.Now().Add(offset) })
	b.rep.ClockOffsetH = offset.Hours()
	if err := b.settle(ctx); err != nil {
		return err
	}
	if t, ok, err := q.Oldest(ctx, queue.Token(b.rep.DownRecipient)); err == nil && ok {
		b.rep.OldestQueuedAgeH = time.Now().Add(offset).Sub(t).Hours()
	}

	// (b) The same load with the backlog queued.
	f0 := h.DeliveryFailures()[b.rep.DownRecipient]
	b.logf("with backlog: %d queued for %s, %d submitters, %v window", b.rep.BacklogAfterFill, b.rep.DownRecipient, b.o.Concurrency, b.o.Duration)
	w, err := b.window(ctx)
	if err != nil {
		return fmt.Errorf("with backlog: %w", err)
	}
	b.rep.DownFailuresInWindow = h.DeliveryFailures()[b.rep.DownRecipient] - f0
	b.rep.WithBacklogPerS, b.rep.WithBacklogAcceptPerS, b.rep.CPUWithBacklogS = w.perS, w.acceptPerS, w.cpuS
	b.rep.CPUBacklogUsPerMsg = perMsg(w.cpuS, w.recorded)
	b.rep.BaselineSecondCV, b.rep.WithBacklogSecondCV = a.cv, w.cv
	b.rep.OthersCPUBaselineS, b.rep.OthersCPUWithBacklogS = a.othersS, w.othersS
	if a.perS > 0 && w.perS > 0 {
		b.rep.Ratio = w.perS / a.perS
		b.rep.RatioCI95 = 1.96 * b.rep.Ratio * math.Hypot(a.se/a.perS, w.se/w.perS)
	}
	b.logf("with backlog: %.0f recorded/s (%.0f accepted/s): ratio %.3f ± %.3f (goal ≥ %.2f)", w.perS, w.acceptPerS, b.rep.Ratio, b.rep.RatioCI95, IsolationGoal)
	bl, err := q.Backlog(ctx, b.rep.DownRecipient)
	if err != nil {
		return err
	}
	b.rep.BacklogEndOfWindow = bl
	if bl != b.rep.BacklogAfterFill {
		b.fail("backlog of %s changed while it was down: %d → %d", b.rep.DownRecipient, b.rep.BacklogAfterFill, bl)
	}

	if err := b.drain(ctx, q); err != nil {
		return err
	}
	if b.o.RestartHub {
		return b.restartHub(ctx)
	}
	return nil
}

// restartHub stops the hub with what is still queued, starts it again on
// its configuration and times it until it accepts a submission.
func (b *isoRun) restartHub(ctx context.Context) error {
	total, err := b.nw.Queue().Total(ctx)
	if err != nil {
		return err
	}
	b.rep.HubRestartQueued = total
	b.logf("hub restart: stopping the hub with %d envelopes queued", total)
	t0 := time.Now()
	if err := b.nw.Hub.Stop(); err != nil {
		b.logf("hub stopped with: %v", err)
	}
	b.rep.HubRestartStopS = time.Since(t0).Seconds()
	t1 := time.Now()
	svc, err := restartOnPort(ctx, func() (*daemon.Service, error) {
		return daemon.StartHub(b.netCtx, b.nw.Layout.HubConfig, b.log.With("process", devnet.HubID))
	})
	if err != nil {
		return fmt.Errorf("restart the hub: %w", err)
	}
	b.nw.Hub = svc
	b.rep.HubRestartStartS = time.Since(t1).Seconds()
	rcpt, d := b.rep.HealthyRecipients[0], b.docs[0]
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := b.nta.Node.Submit(sctx, node.Submission{Recipient: rcpt, Type: d.Type, ContentType: d.ContentType, Payload: bytes.NewReader(d.Body)})
		cancel()
		if err == nil {
			break
		}
		if time.Since(t1) > 2*time.Minute {
			return fmt.Errorf("the restarted hub accepted nothing within 2 minutes: %w", err)
		}
		if err := isoSleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	b.rep.HubRestartAcceptS = time.Since(t1).Seconds()
	met := b.rep.HubRestartAcceptS <= HubRestartGoal.Seconds()
	b.rep.HubRestartMet = &met
	b.logf("hub restart: started in %.2f s, accepting %.2f s after the start (goal ≤ %v: %v)", b.rep.HubRestartStartS, b.rep.HubRestartAcceptS, HubRestartGoal, met)
	return nil
}

// setup starts the network, finds its nodes and primes every delivery
// loop with one notification per recipient.
func (b *isoRun) setup(ctx context.Context) error {
	lf, err := os.Create(filepath.Join(b.dir, "network.log"))
	if err != nil {
		return err
	}
	b.logFile = lf
	// The network logs warnings (the refused deliveries) and errors there.
	b.log = slog.New(slog.NewJSONHandler(lf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b.netCtx = context.WithoutCancel(ctx)
	b.logf("starting the dev network in %s", b.dir)
	nw, err := devnet.InitAndStart(b.netCtx, filepath.Join(b.dir, "net"), devnet.Options{}, b.log)
	if err != nil {
		return err
	}
	b.nw = nw
	b.nta = nw.Nodes[devnet.NTAID]
	b.downSvc = nw.Nodes[devnet.SapporoID]
	ni, ok := nw.Layout.Node(devnet.SapporoID)
	if b.nta == nil || b.downSvc == nil || !ok || len(ni.Tenants) != 1 || ni.Tenants[0] != devnet.SapporoID {
		return errors.New("the dev network lacks the NTA node or 札幌市's own node")
	}
	b.downCfg = ni.Config
	for _, n := range nw.Layout.Nodes {
		if n.ID == devnet.NTAID || n.ID == devnet.SapporoID {
			continue
		}
		b.healthy = append(b.healthy, nw.Nodes[n.ID])
		b.rep.HealthyRecipients = append(b.rep.HealthyRecipients, n.Tenants...)
	}
	// A pool of XML notifications: scans are left out, payload size is
	// not what this measures.
	g := synth.NewGenerator(b.o.Seed)
	for len(b.docs) < 64 {
		if d := g.Next("札幌市", "北海道"); d.ContentType == synth.ContentTypeXML {
			b.docs = append(b.docs, d)
		}
	}
	// Prime: one notification to every recipient, down one included, so
	// that every delivery loop and every hub→node connection is warm.
	b.logf("priming: one notification to each of %d recipients", len(nw.Layout.Recipients))
	for i, r := range nw.Layout.Recipients {
		d := b.docs[i%len(b.docs)]
		if _, _, err := b.nta.Node.Submit(ctx, node.Submission{Recipient: r, Type: d.Type, ContentType: d.ContentType, Payload: bytes.NewReader(d.Body)}); err != nil {
			return fmt.Errorf("prime %s: %w", r, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var n int64
		for _, s := range nw.Nodes {
			n += s.Node.Stats().Recorded
		}
		if n >= int64(len(nw.Layout.Recipients)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("priming: %d of %d recorded after a minute", n, len(nw.Layout.Recipients))
		}
		if err := isoSleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// isoWindow is what one closed-loop window measured.
type isoWindow struct {
	recorded, accepted int64
	perS, acceptPerS   float64
	cpuS               float64
	// cv is the coefficient of variation of the per-second counts, se
	// the standard error of perS from them.
	cv, se float64
	// othersS is the CPU time the rest of the machine used (-1: unknown).
	othersS float64
}

// machineBusyS returns the busy CPU seconds of the whole machine since
// boot (/proc/stat: all but idle and iowait), or -1.
func machineBusyS() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return -1
		}
		busy += n
	}
	return busy / clockTicks
}

// recordedHealthy returns what the healthy recipients' nodes recorded.
func (b *isoRun) recordedHealthy() int64 {
	var n int64
	for _, s := range b.healthy {
		n += s.Node.Stats().Recorded
	}
	return n
}

// window runs the closed loop for o.Warmup then o.Duration, counting in
// the latter, then stops it and waits until what it had accepted is
// recorded.
func (b *isoRun) window(ctx context.Context) (isoWindow, error) {
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var accepted, errs, next atomic.Int64
	var wg sync.WaitGroup
	recipients := b.rep.HealthyRecipients
	for range b.o.Concurrency {
		wg.Go(func() {
			for lctx.Err() == nil {
				i := next.Add(1)
				d := b.docs[int(i)%len(b.docs)]
				_, _, err := b.nta.Node.Submit(lctx, node.Submission{
					Recipient: recipients[int(i)%len(recipients)], Type: d.Type, ContentType: d.ContentType, Payload: bytes.NewReader(d.Body),
				})
				switch {
				case err == nil:
					accepted.Add(1)
				case lctx.Err() == nil:
					// Kept in the outbox; the node's loop resubmits it.
					errs.Add(1)
				}
			}
		})
	}
	var w isoWindow
	if err := isoSleep(ctx, b.o.Warmup); err != nil {
		stop()
		wg.Wait()
		return w, err
	}
	r0, a0, t0 := b.recordedHealthy(), accepted.Load(), time.Now()
	c0, _ := ReadProc(0)
	m0 := machineBusyS()
	var perSec []float64
	var err error
	prev := r0
	for k := 1; err == nil; k++ {
		next := t0.Add(time.Duration(k) * time.Second)
		if next.After(t0.Add(b.o.Duration)) {
			err = isoSleep(ctx, time.Until(t0.Add(b.o.Duration)))
			break
		}
		if err = isoSleep(ctx, time.Until(next)); err == nil {
			r := b.recordedHealthy()
			perSec = append(perSec, float64(r-prev))
			prev = r
		}
	}
	r1, a1, el := b.recordedHealthy(), accepted.Load(), time.Since(t0)
	c1, _ := ReadProc(0)
	m1 := machineBusyS()
	stop()
	wg.Wait()
	if err != nil {
		return w, err
	}
	w.recorded, w.accepted = r1-r0, a1-a0
	w.perS = float64(w.recorded) / el.Seconds()
	w.acceptPerS = float64(w.accepted) / el.Seconds()
	w.cpuS = (c1.CPUMicros() - c0.CPUMicros()) / 1e6
	w.othersS = -1
	if m0 >= 0 && m1 >= 0 {
		w.othersS = max(m1-m0-w.cpuS, 0)
	}
	if n := len(perSec); n >= 2 {
		var sum, sq float64
		for _, v := range perSec {
			sum += v
		}
		mean := sum / float64(n)
		for _, v := range perSec {
			sq += (v - mean) * (v - mean)
		}
		sd := math.Sqrt(sq / float64(n-1))
		if mean > 0 {
			w.cv = sd / mean
		}
		w.se = sd / math.Sqrt(float64(n))
	}
	b.rep.SubmitErrors += errs.Load()
	// Let the hub deliver what it accepted before the next phase.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		total, acc, rec, err := b.nta.Store.OutgoingCounts(ctx)
		if err != nil {
			return w, err
		}
		if rec >= total && acc >= total {
			return w, nil
		}
		if time.Now().After(deadline) {
			return w, fmt.Errorf("after the window: %d sent, %d accepted, %d recorded after 2 minutes", total, acc, rec)
		}
		if acc < total {
			b.nta.Node.ResubmitPending(ctx)
		}
		if err := isoSleep(ctx, 100*time.Millisecond); err != nil {
			return w, err
		}
	}
}

// fill queues o.Queued envelopes for the down recipient at the hub.
func (b *isoRun) fill(ctx context.Context, q *queue.Queue) error {
	rcpt := b.rep.DownRecipient
	dir := b.nta.Directory()
	p, err := dir.Participant(rcpt)
	if err != nil {
		return err
	}
	sk, err := p.SealingKeyAt(time.Now())
	if err != nil {
		return err
	}
	pub, err := p.PublicKey(sk)
	if err != nil {
		return fmt.Errorf("sealing key of %s: %w", rcpt, err)
	}
	ntaInfo, _ := b.nw.Layout.Node(devnet.NTAID)
	signer, err := devnet.ReadKey(b.nw.Layout, filepath.Join(filepath.Dir(ntaInfo.Config), "signing.key"))
	if err != nil {
		return fmt.Errorf("NTA signing key: %w", err)
	}
	b.rep.FillMethod = "queue.Queue.Enqueue in process (the hub's durable store, its SQLite file committed with synchronous=FULL), " +
		"each envelope sealed to the recipient's key and signed with the NTA node's key as Node.Prepare does, " +
		"its ciphertext read through envelope.VerifyingReader as the hub's submit does; no acceptance receipt or ledger entry"
	b.logf("fill: %d envelopes for %s, %d at a time", b.o.Queued, rcpt, b.o.FillConcurrency)
	c0, _ := ReadProc(0)
	t0 := time.Now()
	var next, done, bytesTotal atomic.Int64
	errs := make([]error, b.o.FillConcurrency)
	var wg sync.WaitGroup
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range errs {
		wg.Go(func() {
			for fctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(b.o.Queued) {
					return
				}
				n, err := b.enqueueOne(fctx, q, pub, sk.ID, signer, int(i))
				if err != nil {
					errs[w] = fmt.Errorf("envelope %d: %w", i, err)
					cancel()
					return
				}
				bytesTotal.Add(n)
				done.Add(1)
			}
		})
	}
	tick := time.NewTicker(5 * time.Second)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-tick.C:
			d := done.Load()
			b.logf("fill: %d of %d (%.0f/s)", d, b.o.Queued, float64(d)/time.Since(t0).Seconds())
		}
	}
	tick.Stop()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	el := time.Since(t0)
	c1, _ := ReadProc(0)
	b.rep.FillS = el.Seconds()
	b.rep.FillPerS = float64(b.o.Queued) / el.Seconds()
	b.rep.FillBytes = bytesTotal.Load()
	b.rep.CPUFillS = (c1.CPUMicros() - c0.CPUMicros()) / 1e6
	bl, err := q.Backlog(ctx, rcpt)
	if err != nil {
		return err
	}
	b.rep.BacklogAfterFill = bl
	b.logf("fill: %d queued in %.1f s (%.0f/s, %.0f MB); backlog of %s: %d", b.o.Queued, el.Seconds(), b.rep.FillPerS, float64(b.rep.FillBytes)/1e6, rcpt, bl)
	if bl != uint64(b.o.Queued) {
		b.fail("backlog of %s after the fill is %d, want %d", rcpt, bl, b.o.Queued)
	}
	return nil
}

// enqueueOne seals, signs and queues envelope i for the down recipient and
// returns its size on the wire.
func (b *isoRun) enqueueOne(ctx context.Context, q *queue.Queue, pub hpke.PublicKey, keyID string, signer crypto.Signer, i int) (int64, error) {
	d := b.docs[i%len(b.docs)]
	now := time.Now().UTC().Truncate(time.Millisecond)
	hdr := &envelope.Header{
		ID: ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String(), Type: d.Type,
		Sender: devnet.NTAID, Recipient: b.rep.DownRecipient, Created: now, ContentType: d.ContentType, KeyID: keyID,
	}
	var ct bytes.Buffer
	ct.Grow(len(d.Body) + 1024)
	if err := envelope.Seal(pub, hdr, bytes.NewReader(d.Body), &ct); err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	hb, err := hdr.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("header: %w", err)
	}
	sig, err := envelope.Sign(signer, hb)
	if err != nil {
		return 0, fmt.Errorf("sign: %w", err)
	}
	var pre bytes.Buffer
	if err := envelope.WritePreamble(&pre, hb, sig); err != nil {
		return 0, fmt.Errorf("preamble: %w", err)
	}
	if _, dup, err := q.Enqueue(ctx, hdr.Recipient, hdr.ID, pre.Bytes(), envelope.VerifyingReader(hdr, &ct), int64(hdr.CiphertextSize)); err != nil {
		return 0, err
	} else if dup {
		return 0, fmt.Errorf("envelope %s answered as a duplicate", hdr.ID)
	}
	return int64(pre.Len()) + int64(hdr.CiphertextSize), nil
}

// settle waits until the down recipient's delivery loop sits at its
// backoff cap: at least isoCapAttempts failures for each of its deliveries
// in flight.
func (b *isoRun) settle(ctx context.Context) error {
	h := b.nw.Hub.Hub
	want := int64(isoCapAttempts * isoHubParallel)
	t0 := time.Now()
	defer func() { b.rep.SettleS = time.Since(t0).Seconds() }()
	for {
		n := h.DeliveryFailures()[b.rep.DownRecipient]
		if n >= want {
			b.rep.BackoffCapped = true
			b.logf("down recipient's loop at its backoff cap: %d failed attempts", n)
			return nil
		}
		if b.o.Settle < 0 || time.Since(t0) > b.o.Settle {
			b.logf("not waiting further for the backoff cap: %d of %d failed attempts", n, want)
			return nil
		}
		if err := isoSleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// drain starts the down node again and times the drain of its backlog.
func (b *isoRun) drain(ctx context.Context, q *queue.Queue) error {
	rcpt := b.rep.DownRecipient
	b.logf("restarting node %s on its configuration and port", b.rep.DownNode)
	t0 := time.Now()
	svc, err := restartOnPort(ctx, func() (*daemon.Service, error) {
		return daemon.StartNode(b.netCtx, b.downCfg, b.log.With("process", b.rep.DownNode))
	})
	if err != nil {
		return fmt.Errorf("restart %s: %w", b.rep.DownNode, err)
	}
	b.nw.Nodes[b.rep.DownNode] = svc
	b.rep.RestartS = time.Since(t0).Seconds()
	c0, _ := ReadProc(0)
	firstDeadline := t0.Add(45 * time.Second)
	var tFirst time.Time
	var r0 int64
	lastLog := time.Now()
	type sample struct {
		t time.Time
		r int64
	}
	var samples []sample
	for {
		if err := isoSleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		r := svc.Node.Stats().Recorded
		now := time.Now()
		samples = append(samples, sample{now, r})
		if tFirst.IsZero() {
			if r == 0 {
				if now.After(firstDeadline) {
					b.fail("nothing recorded at %s within 45 s of its restart", rcpt)
					break
				}
				continue
			}
			tFirst, r0 = now, r
			b.rep.FirstDeliveryS = now.Sub(t0).Seconds()
			b.logf("drain: first envelope recorded %.1f s after the restart", b.rep.FirstDeliveryS)
			continue
		}
		if r >= int64(b.rep.BacklogAfterFill) || now.Sub(tFirst) >= b.o.DrainMax {
			b.rep.DrainRecorded = r - r0
			b.rep.DrainS = now.Sub(tFirst).Seconds()
			break
		}
		if now.Sub(lastLog) >= 5*time.Second {
			lastLog = now
			b.logf("drain: %d recorded (%.0f/s)", r-r0, float64(r-r0)/now.Sub(tFirst).Seconds())
		}
	}
	c1, _ := ReadProc(0)
	b.rep.CPUDrainS = (c1.CPUMicros() - c0.CPUMicros()) / 1e6
	if b.rep.DrainS > 0 {
		b.rep.DrainPerS = float64(b.rep.DrainRecorded) / b.rep.DrainS
		b.rep.CPUDrainUsPerMsg = perMsg(b.rep.CPUDrainS, b.rep.DrainRecorded)
	}
	if b.rep.BaselinePerS > 0 {
		b.rep.DrainRatio = b.rep.DrainPerS / b.rep.BaselinePerS
	}
	steadyFrom := t0.Add(31 * time.Second)
	for _, sm := range samples {
		if !sm.t.Before(steadyFrom) && !tFirst.IsZero() && !sm.t.Before(tFirst) {
			last := samples[len(samples)-1]
			if span := last.t.Sub(sm.t); span >= 5*time.Second {
				b.rep.DrainSteadyPerS = float64(last.r-sm.r) / span.Seconds()
			}
			break
		}
	}
	if b.rep.FsyncPerS > 0 {
		b.rep.DrainFsyncRatio = b.rep.DrainPerS / b.rep.FsyncPerS
	}
	if b.rep.BaselinePerS > 0 {
		b.rep.DrainSteadyRatio = b.rep.DrainSteadyPerS / b.rep.BaselinePerS
	}
	if b.rep.BaselinePerRecipientPerS > 0 {
		b.rep.DrainPerRecipientRatio = b.rep.DrainPerS / b.rep.BaselinePerRecipientPerS
	}
	// Read the backlog at once when the drain was cut short (it goes on);
	// when everything is recorded, let the last acknowledgements land.
	total := svc.Node.Stats().Recorded
	b.rep.DrainRecordedTotal = total
	deadline := time.Now()
	if total >= int64(b.rep.BacklogAfterFill) {
		deadline = deadline.Add(5 * time.Second)
	}
	for {
		bl, err := q.Backlog(ctx, rcpt)
		if err != nil {
			return err
		}
		b.rep.DrainRemaining = bl
		if bl == 0 || time.Now().After(deadline) {
			break
		}
		if err := isoSleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	b.rep.DrainComplete = b.rep.DrainRemaining == 0
	if b.rep.DrainComplete && total != int64(b.rep.BacklogAfterFill) {
		b.fail("%s recorded %d after its return, its backlog was %d", rcpt, total, b.rep.BacklogAfterFill)
	}
	// Recorded and still queued add up to the backlog, but for the
	// deliveries in flight (recorded, not yet acknowledged): at most the
	// consumer's 4 × isoHubParallel.
	if sum := uint64(total) + b.rep.DrainRemaining; sum < b.rep.BacklogAfterFill || sum > b.rep.BacklogAfterFill+4*isoHubParallel {
		b.fail("%s: %d recorded since its return + %d still queued ≠ its backlog of %d", rcpt, total, b.rep.DrainRemaining, b.rep.BacklogAfterFill)
	}
	b.logf("drain: %d recorded in %.1f s from the first (%.0f/s, %.2f × baseline; steady %.0f/s, %.2f ×); %d remain", b.rep.DrainRecorded, b.rep.DrainS, b.rep.DrainPerS, b.rep.DrainRatio, b.rep.DrainSteadyPerS, b.rep.DrainSteadyRatio, b.rep.DrainRemaining)
	return nil
}

// restartOnPort starts a process of the network again on its own port,
// retrying for up to 5 s while the port its predecessor held is still in
// use.
func restartOnPort(ctx context.Context, start func() (*daemon.Service, error)) (*daemon.Service, error) {
	for attempt := 0; ; attempt++ {
		svc, err := start()
		if err == nil || attempt >= 20 || !strings.Contains(err.Error(), "address already in use") {
			return svc, err
		}
		if err := isoSleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// perMsg returns cpuS seconds of CPU per message of n, in microseconds.
func perMsg(cpuS float64, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return cpuS * 1e6 / float64(n)
}

// isoSleep waits d or until ctx ends, returning ctx's error then.
func isoSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WriteIsolationReport writes r as `taxlink bench isolation` prints it: a
// table of the figures, then, as the last line, r as one JSON object.
func WriteIsolationReport(w io.Writer, r IsolationReport) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("machine", "%d CPUs, %.1f GB, %s", r.Host.CPUs, r.Host.MemTotalGB, r.Host.GoVersion)
	row("down recipient", "%s (node stopped: connections refused)", r.DownRecipient)
	row("healthy recipients", "%s", strings.Join(r.HealthyRecipients, ", "))
	row("fill", "%d envelopes in %.1f s: %.0f /s, %.0f MB, %d at a time (backlog %d)", r.Queued, r.FillS, r.FillPerS, float64(r.FillBytes)/1e6, r.FillConcurrency, r.BacklogAfterFill)
	row("fill method", "%s", r.FillMethod)
	row("hub clock", "+%.0f h; oldest queued envelope %.1f h old by it", r.ClockOffsetH, r.OldestQueuedAgeH)
	row("backoff settle", "%.1f s (at the 30 s cap: %v)", r.SettleS, r.BackoffCapped)
	row(fmt.Sprintf("baseline (empty queue), %d submitters", r.Concurrency), "%.0f recorded/s (%.0f accepted/s; %.0f per recipient)", r.BaselinePerS, r.BaselineAcceptPerS, r.BaselinePerRecipientPerS)
	row("with backlog", "%.0f recorded/s (%.0f accepted/s); %d failed attempts to the down recipient in the window", r.WithBacklogPerS, r.WithBacklogAcceptPerS, r.DownFailuresInWindow)
	row("ratio with backlog / baseline", "%.3f ± %.3f (goal ≥ %.2f; per-second CV %.2f / %.2f)", r.Ratio, r.RatioCI95, IsolationGoal, r.BaselineSecondCV, r.WithBacklogSecondCV)
	row("CPU per message baseline / with backlog", "%.0f / %.0f µs", r.CPUBaselineUsPerMsg, r.CPUBacklogUsPerMsg)
	row("other processes' CPU baseline / with backlog", "%.1f / %.1f s in %.0f s windows (%d CPUs)", r.OthersCPUBaselineS, r.OthersCPUWithBacklogS, r.WindowS, r.Host.CPUs)
	row("return: restart / first delivery", "%.2f s / %.1f s", r.RestartS, r.FirstDeliveryS)
	row("drain", "%d in %.1f s from the first: %.0f /s; %d recorded in all, %d remain", r.DrainRecorded, r.DrainS, r.DrainPerS, r.DrainRecordedTotal, r.DrainRemaining)
	row("drain / baseline (all) / baseline per recipient", "%.2f / %.2f", r.DrainRatio, r.DrainPerRecipientRatio)
	row("F: 8 KiB write+fdatasync, serial; drain / F", "%.0f /s; %.2f", r.FsyncPerS, r.DrainFsyncRatio)
	row("drain from restart+31 s (every backoff over)", "%.0f /s (%.2f × baseline)", r.DrainSteadyPerS, r.DrainSteadyRatio)
	row("CPU per message drain", "%.0f µs", r.CPUDrainUsPerMsg)
	if r.HubRestartMet != nil {
		row("hub restart: queued / stop / start / accepting", "%d / %.2f s / %.2f s / %.2f s after the start (goal ≤ %v: %v)",
			r.HubRestartQueued, r.HubRestartStopS, r.HubRestartStartS, r.HubRestartAcceptS, HubRestartGoal, *r.HubRestartMet)
	}
	row("total", "%.0f s (setup %.1f s; load average %.1f → %.1f)", r.TotalS, r.SetupS, r.LoadAvgStart, r.LoadAvgEnd)
	for _, f := range r.Failures {
		row("failure", "%s", f)
	}
	result := "PASS"
	if !r.Passed {
		result = "FAIL"
	}
	row("result", "%s", result)
	if err := tw.Flush(); err != nil {
		return err
	}
	j, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(j))
	return err
}
