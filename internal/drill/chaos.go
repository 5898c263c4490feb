// The chaos drill: a dev network of real processes (the hub and every
// recipient node, each `taxlink hub|node --config F` of the same binary),
// reached only through TCP fault proxies, carries a steady mixed load
// while a seeded schedule SIGKILLs the hub or a node, cuts, resets, delays
// and blackholes connections, fills a node's disk and pauses a node. Then
// every notification must be accepted, recorded exactly once at its
// recipient, carry both verified receipts, and the hub's ledger, the audit
// logs and the nodes' witnesses must be consistent.

package drill

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/audit"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/faultproxy"
	"taxlink/internal/ledger"
	"taxlink/internal/lgdata"
	"taxlink/internal/node"
	"taxlink/internal/notekey"
	"taxlink/internal/pause"
	"taxlink/internal/queue"
	"taxlink/internal/receipt"
	"taxlink/internal/store"
	"taxlink/internal/synth"
)

// Fault kinds of the chaos drill, as counted in ChaosSummary.FaultsByKind.
const (
	// FaultKillNode SIGKILLs a recipient node's process and restarts it
	// after 0.5–3 s.
	FaultKillNode = "kill-node"
	// FaultKillHub SIGKILLs the hub's process and restarts it after
	// 0.5–3 s.
	FaultKillHub = "kill-hub"
	// FaultCut closes every connection through one proxy with a FIN.
	FaultCut = "cut"
	// FaultReset closes every connection through one proxy with an RST.
	FaultReset = "reset"
	// FaultDelay delays every chunk through one proxy by 200 ms for 2–5 s.
	FaultDelay = "delay"
	// FaultBlackhole drops everything through one proxy for 2–5 s.
	FaultBlackhole = "blackhole"
	// FaultPause stops a node (SIGSTOP) for ChaosOptions.Pause, then
	// continues it (SIGCONT).
	FaultPause = "pause"
	// FaultKillReplica SIGKILLs one replica of a clustered hub and
	// restarts it after a while (the failover drill).
	FaultKillReplica = "kill-replica"
	// FaultDiskFull fills a node's data file system for 3–8 s: a real
	// ENOSPC on a tmpfs mounted on its data directory, or, where mounting
	// is not permitted, the node's disk-low refusal (min_free_bytes above
	// the free space, put in force by a restart).
	FaultDiskFull = "disk-full"
)

// FaultKinds returns every fault kind the chaos drill injects, in report
// order.
func FaultKinds() []string {
	return []string{FaultKillNode, FaultKillHub, FaultCut, FaultReset, FaultDelay, FaultBlackhole, FaultPause, FaultDiskFull}
}

// chaosHubRetryMax is the cap of the hub's delivery backoff (the default
// RetryMax of hub.Config), against which the pause is measured.
const chaosHubRetryMax = 30 * time.Second

// Tunables of the drill.
const (
	chaosDelay         = 200 * time.Millisecond // added per chunk by the delay fault
	chaosSubmitTimeout = 30 * time.Second       // one submission from the drill's sender
	chaosStartTimeout  = 60 * time.Second       // a process must listen within this
	chaosUpTimeout     = 3 * time.Minute        // a process that does not come back within this is a problem
	chaosStopTimeout   = 30 * time.Second       // SIGTERM, then SIGKILL
	chaosFillSlack     = 64 << 10               // bytes left free by the disk-full fault (tmpfs)
	chaosNodeMinFree   = 4 << 10                // min_free_bytes of a node on a tmpfs
	chaosFillName      = "chaos-disk-fill"      // the file that fills a node's disk
	chaosSenderWorkers = 8                      // concurrent submissions from the sender
	chaosPreparers     = 4                      // concurrent seal-and-enqueue workers
	maxChaosProblems   = 200                    // problems kept in the report
)

// ChaosOptions configures Chaos.
type ChaosOptions struct {
	// Binary is the taxlink executable the hub and the nodes run as
	// (`BINARY hub --config F`, `BINARY node --config F`). Required.
	Binary string
	// Dir is where the network, its data and the processes' logs are
	// written; it must be empty or not exist, and is kept. When empty, a
	// temporary directory is used, removed when the drill passes and kept
	// (ChaosReport.Dir) when it does not.
	Dir string
	// Duration is how long traffic flows and faults are injected
	// (default 60s, at least 5s).
	Duration time.Duration
	// Rate is the notifications submitted per second (default 20).
	Rate float64
	// Seed determines the fault schedule and the synthetic traffic; 0
	// picks one from the clock. The report names the seed used.
	Seed uint64
	// Pause is how long the pause fault stops a node. Default: 35s, beyond
	// the hub's 30s backoff cap, when Duration is at least 105s; else a
	// third of Duration.
	Pause time.Duration
	// Settle bounds the wait, after the faults, for every notification's
	// receipts (default 3m: a delivery left hanging on a connection that a
	// blackhole silenced is only released by the node's HTTP idle timeout,
	// 2 minutes).
	Settle time.Duration
	// Recipients widens the dev network to that many local governments
	// (up to all 1,788, spread over its recipient nodes; devnet.Widen); 0:
	// the dev network's own.
	Recipients int
	// Progress receives progress lines: the schedule, each fault as it is
	// injected and undone, counts every 5 s. Nil: none. Lines carry
	// envelope IDs, counts and paths, never payloads or keys.
	Progress io.Writer
}

// Fault is one fault of the chaos drill's schedule.
type Fault struct {
	// At is when the fault starts, from the start of the traffic.
	At time.Duration `json:"at"`
	// Kind is one of FaultKinds.
	Kind string `json:"kind"`
	// Target is the participant ID of the process or of the proxy in
	// front of it.
	Target string `json:"target"`
	// For is how long the fault lasts (a kill: until the restart); zero
	// for cut and reset.
	For time.Duration `json:"for"`
	// Detail says what the injection did.
	Detail string `json:"detail,omitempty"`
}

// String formats f on one line for the progress output: start, kind,
// target and duration.
func (f Fault) String() string {
	s := fmt.Sprintf("+%5.1fs %-9s %-20s", f.At.Seconds(), f.Kind, f.Target)
	if f.For > 0 {
		s += fmt.Sprintf(" for %.1fs", f.For.Seconds())
	}
	return s
}

// ChaosSummary is the outcome of the chaos drill: the last line of
// `taxlink drill chaos`, as JSON.
type ChaosSummary struct {
	// Faults is how many faults were injected, FaultsByKind per kind.
	Faults       int            `json:"faults"`
	FaultsByKind map[string]int `json:"faults_by_kind"`
	// Recipients is how many local governments received (every recipient
	// of the dev network), hosted by RecipientNodes real node processes;
	// LocalGovernments is how many the embedded list holds (1,788), of
	// which the dev layout hosts Recipients.
	Recipients       int `json:"recipients"`
	RecipientNodes   int `json:"recipient_nodes"`
	LocalGovernments int `json:"local_governments_listed"`
	// Sent is how many notifications the sender sealed into its outbox;
	// Accepted how many of them the hub took (an acceptance entry in its
	// ledger, an acceptance receipt at the sender, or a record at the
	// recipient, which only the hub delivers); Recorded how many accepted
	// ones their recipient recorded; Lost = Accepted - Recorded.
	Sent     int `json:"sent"`
	Accepted int `json:"accepted"`
	Recorded int `json:"recorded"`
	Lost     int `json:"lost"`
	// Duplicates counts records beyond the first of one envelope ID over
	// every recipient store; Misrouted counts records at a tenant other
	// than the envelope's recipient.
	Duplicates int `json:"duplicates"`
	Misrouted  int `json:"misrouted"`
	// Opened counts records opened with the recipient's key whose
	// plaintext matched what was sent.
	Opened int `json:"opened"`
	// QueuedAtHub counts envelopes still in the hub's queue when the drill
	// ended (not delivered within Settle; held durably, so late rather
	// than gone, but counted in Lost).
	QueuedAtHub uint64 `json:"queued_at_hub"`
	// ReceiptsVerified counts sent notifications whose acceptance and
	// recording receipts both verify (node.VerifyBoth);
	// MissingAcceptance counts those with a recording receipt but no
	// acceptance receipt at the sender.
	ReceiptsVerified  int `json:"receipts_verified"`
	MissingAcceptance int `json:"missing_acceptance_receipts"`
	// LedgerIntact: the hub's ledger and every audit log (and backup
	// copy) verify, every receipt the sender holds is the ledger entry at
	// its index, every recorded notification's recording is in the
	// ledger, every node's witness checkpoint is extended by the ledger,
	// and the sender saw no rollback or fork during the run.
	// LedgerUnloggedAcceptances counts envelopes whose recording is in the
	// ledger without their acceptance. LedgerConsistent is LedgerIntact
	// with no unlogged acceptance.
	LedgerConsistent          bool  `json:"ledger_consistent"`
	LedgerIntact              bool  `json:"ledger_intact"`
	LedgerUnloggedAcceptances int   `json:"ledger_unlogged_acceptances"`
	LedgerEntries             int64 `json:"ledger_entries"`
	LogsVerified              int   `json:"logs_verified"`
	// Restarts counts processes restarted after a fault; StartFailures
	// attempts to start one that failed (retried); UnexpectedExits
	// processes that died without being killed.
	Restarts        int64 `json:"restarts"`
	StartFailures   int64 `json:"start_failures"`
	UnexpectedExits int64 `json:"unexpected_exits"`
	// DiskFull says how the disk-full fault was injected: "tmpfs-enospc"
	// or "disk-low-refusal"; ENOSPCErrors counts the nodes' log lines
	// reporting a full disk.
	DiskFull     string `json:"disk_full"`
	ENOSPCErrors int    `json:"enospc_errors_logged"`
	// Redeliveries counts deliveries the nodes answered with the stored
	// receipt (repeated by the hub after a fault).
	Redeliveries int `json:"redeliveries_absorbed"`
	// PauseS is how long a paused node stayed stopped; HubRetryMaxS the
	// cap of the hub's delivery backoff.
	PauseS       float64 `json:"pause_s"`
	HubRetryMaxS float64 `json:"hub_retry_max_s"`
	RatePerS     float64 `json:"rate_per_s"`
	// DurationS is the traffic-and-faults phase; SettleS the wait for the
	// last receipts after it; ElapsedS the whole drill.
	DurationS float64 `json:"duration_s"`
	SettleS   float64 `json:"settle_s"`
	ElapsedS  float64 `json:"elapsed_s"`
	Seed      uint64  `json:"seed"`
	// Passed: something was sent, every sent notification was accepted,
	// nothing lost, duplicated or misrouted, every record opened to what
	// was sent, every receipt verified and the ledger consistent.
	Passed bool `json:"passed"`
}

// ChaosReport is what Chaos found.
type ChaosReport struct {
	Summary ChaosSummary
	// Faults lists the faults injected, in order.
	Faults []Fault
	// Problems lists what verification found wrong (envelope IDs, log
	// paths, never payloads), at most 200.
	Problems []string
	// Dir is where the network, its data and logs were kept ("" when they
	// were removed).
	Dir string
}

// Chaos runs the chaos drill: it writes a fresh dev network into
// opts.Dir, starts its hub and recipient nodes as processes of
// opts.Binary behind fault proxies, sends synthetic notifications from
// the NTA's node (loaded in this process, as `taxlink send` does) to every
// recipient at opts.Rate for opts.Duration while injecting the seeded
// fault schedule, then undoes every fault, waits (at most opts.Settle) for
// the receipts, stops the processes and verifies everything from their
// files. The error is for a drill that could not run; a drill that ran
// returns its report, whose Summary.Passed says the outcome.
func Chaos(ctx context.Context, opts ChaosOptions) (*ChaosReport, error) {
	if opts.Binary == "" {
		return nil, errors.New("drill: chaos: the taxlink binary is required")
	}
	if opts.Duration == 0 {
		opts.Duration = 60 * time.Second
	}
	if opts.Duration < 5*time.Second {
		return nil, fmt.Errorf("drill: chaos: duration %v is below 5s", opts.Duration)
	}
	if opts.Rate == 0 {
		opts.Rate = 20
	}
	if opts.Rate < 0 || opts.Rate > 1000 {
		return nil, fmt.Errorf("drill: chaos: rate %v is outside 0..1000 per second", opts.Rate)
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	if opts.Pause == 0 {
		opts.Pause = (opts.Duration / 3).Round(100 * time.Millisecond)
		if long := chaosHubRetryMax + 5*time.Second; opts.Duration >= 3*long {
			opts.Pause = long
		}
	}
	if opts.Pause < 0 || opts.Pause > opts.Duration {
		return nil, fmt.Errorf("drill: chaos: pause %v is outside 0..duration", opts.Pause)
	}
	if opts.Settle == 0 {
		opts.Settle = 3 * time.Minute
	}
	c := &chaos{
		name:    "chaos",
		opts:    opts,
		proxies: map[string]*faultproxy.Proxy{},
		procs:   map[string]*proc{},
		mounts:  map[string]string{},
		sent:    map[string]sentNote{},
		byKind:  map[string]int{},
	}
	return c.run(ctx)
}

// chaos is one run of the chaos drill.
type chaos struct {
	opts   ChaosOptions
	dir    string
	logDir string
	lay    *devnet.Layout
	// recipients are the recipient nodes, in layout order.
	recipients []devnet.NodeInfo
	proxies    map[string]*faultproxy.Proxy // by participant ID: the hub and every recipient node
	procs      map[string]*proc             // likewise
	mounts     map[string]string            // node ID → its data directory on a tmpfs
	diskMode   string
	setupErr   error
	nta        *daemon.LoadedNode
	start      time.Time
	settled    time.Duration // how long the wait for the last receipts took

	outMu sync.Mutex // serialises Progress lines

	mu       sync.Mutex // guards the fields below
	sent     map[string]sentNote
	faults   []Fault
	byKind   map[string]int
	problems []string
	nProblem int

	// acceptedAt holds when each acceptance receipt reached the sender.
	acceptedAt []time.Time

	// name prefixes progress lines and errors ("chaos", "failover").
	name string
	// replicas is the number of hub replicas (0: a single hub behind a
	// fault proxy); plan draws the schedule (nil: planFaults).
	replicas int
	plan     func(r *rand.Rand) []Fault
	// afterVerify, when set, adds checks to the report verify made,
	// while the files are still there.
	afterVerify func(rep *ChaosReport)

	restarts, startFailures, unexpected, alarms atomic.Int64
	// stopping is set once the drill stops the processes for good.
	stopping atomic.Bool
}

// sentNote is what the drill remembers of a notification it sent.
type sentNote struct {
	recipient string
	digest    [32]byte
}

func (c *chaos) logf(format string, args ...any) {
	if c.opts.Progress == nil {
		return
	}
	var at string
	if !c.start.IsZero() {
		at = fmt.Sprintf("[%+6.1fs] ", time.Since(c.start).Seconds())
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	fmt.Fprintf(c.opts.Progress, "%s: %s%s\n", c.name, at, fmt.Sprintf(format, args...))
}

func (c *chaos) problemf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nProblem++
	if len(c.problems) < maxChaosProblems {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

func (c *chaos) run(ctx context.Context) (rep *ChaosReport, err error) {
	began := time.Now()
	created := false
	if c.opts.Dir == "" {
		d, err := os.MkdirTemp("", "taxlink-chaos-")
		if err != nil {
			return nil, fmt.Errorf("drill: chaos: %w", err)
		}
		c.dir, created = d, true
	} else {
		if err := os.MkdirAll(c.opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("drill: chaos: %w", err)
		}
		if ents, err := os.ReadDir(c.opts.Dir); err != nil || len(ents) > 0 {
			return nil, fmt.Errorf("drill: chaos: %s must be an empty directory", c.opts.Dir)
		}
		c.dir = c.opts.Dir
	}
	keep := !created
	defer func() {
		passed := rep != nil && rep.Summary.Passed
		if created && !passed {
			keep = true
		}
		c.teardown(keep)
		switch {
		case keep:
			if rep != nil {
				rep.Dir = c.dir
			}
			c.logf("network, data and logs kept in %s", c.dir)
		default:
			_ = os.RemoveAll(c.dir)
		}
	}()

	if err := c.setup(ctx); err != nil {
		return nil, err
	}
	if err := c.exercise(ctx); err != nil {
		return nil, err
	}
	rep, err = c.verify(ctx)
	if err != nil {
		return nil, err
	}
	if c.afterVerify != nil {
		c.afterVerify(rep)
	}
	rep.Summary.ElapsedS = time.Since(began).Round(100 * time.Millisecond).Seconds()
	return rep, nil
}

// setup writes the network, puts the recipient nodes' data on tmpfs
// where it can, starts the processes and loads the sender.
func (c *chaos) setup(ctx context.Context) error {
	c.logDir = filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(c.logDir, 0o700); err != nil {
		return fmt.Errorf("drill: chaos: %w", err)
	}
	devOpts := devnet.Options{Endpoint: c.endpoint}
	if c.replicas > 1 {
		// The replicas are reached directly: the faults are their deaths.
		devOpts = devnet.Options{HubReplicas: c.replicas}
	}
	lay, err := devnet.Init(filepath.Join(c.dir, "net"), devOpts)
	if err == nil {
		err = c.setupErr
	}
	if err == nil && c.opts.Recipients > len(lay.Recipients) {
		err = devnet.Widen(lay, c.opts.Recipients)
	}
	if err != nil {
		return fmt.Errorf("drill: chaos: %w", err)
	}
	c.lay = lay
	for _, n := range lay.Nodes {
		if n.ID != devnet.NTAID {
			c.recipients = append(c.recipients, n)
		}
	}
	if c.replicas <= 1 {
		c.setupDisks()
	}

	if c.replicas > 1 {
		for i, r := range lay.HubReplicas {
			id := fmt.Sprintf("hub-%d", i+1)
			c.procs[id] = &proc{c: c, id: id, role: "hub", config: r.Config, listen: r.Listen}
		}
	} else {
		c.procs[devnet.HubID] = &proc{c: c, id: devnet.HubID, role: "hub", config: lay.HubConfig, listen: lay.HubListen}
	}
	for _, n := range c.recipients {
		c.procs[n.ID] = &proc{c: c, id: n.ID, role: "node", config: n.Config, listen: n.Listen}
	}
	// The replicas of a cluster start together: each waits for the others.
	if err := c.ensureUp(ctx, c.hubKeys()); err != nil {
		return fmt.Errorf("drill: %s: %w", c.name, err)
	}
	if err := c.ensureUp(ctx, c.nodeIDs()); err != nil {
		return fmt.Errorf("drill: %s: %w", c.name, err)
	}

	if err := c.startSender(ctx, lay); err != nil {
		return fmt.Errorf("drill: chaos: %w", err)
	}
	c.logf("network in %s: hub %s and %d recipient nodes (%d recipients) as processes of %s, each behind a fault proxy; the NTA's node (the sender) runs in the drill",
		c.dir, devnet.HubID, len(c.recipients), len(lay.Recipients), c.opts.Binary)
	c.logf("disk-full fault: %s", c.diskMode)
	return nil
}

// hubKeys returns the keys of c.procs that are the hub or its replicas.
func (c *chaos) hubKeys() []string {
	if c.replicas <= 1 {
		return []string{devnet.HubID}
	}
	var ks []string
	for i := range c.replicas {
		ks = append(ks, fmt.Sprintf("hub-%d", i+1))
	}
	return ks
}

// ensureUp starts the processes under keys at once and waits for them.
func (c *chaos) ensureUp(ctx context.Context, keys []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i, k := range keys {
		wg.Go(func() { errs[i] = c.procs[k].ensureUp(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// endpoint is devnet.Options.Endpoint: the hub and every recipient node
// are advertised at a fault proxy forwarding to their listener. The NTA's
// node receives nothing in the drill and keeps its own address.
// startSender opens the NTA's node in the drill's process (the sender,
// which the drills never kill) and waits until the hub answers it.
func (c *chaos) startSender(ctx context.Context, lay *devnet.Layout) error {
	n, _ := lay.Node(devnet.NTAID)
	var err error
	c.nta, err = daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("the sender: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.nta.Node.FetchDirectory(fctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("the hub does not answer the sender: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *chaos) endpoint(id, listen string) string {
	if id == devnet.NTAID {
		return ""
	}
	p, err := faultproxy.New("127.0.0.1:0", listen)
	if err != nil {
		c.setupErr = errors.Join(c.setupErr, fmt.Errorf("fault proxy for %s: %w", id, err))
		return ""
	}
	c.proxies[id] = p
	return p.Addr()
}

// dataDir returns the data directory of the hub's or a node's
// configuration at cfg, as devnet writes it.
func dataDir(cfg string) string { return filepath.Join(filepath.Dir(cfg), "data") }

// setupDisks mounts a tmpfs on every recipient node's data directory (with
// what devnet put there copied in), so that the disk-full fault is a real
// ENOSPC; where mounting is not permitted it falls back to the disk-low
// refusal.
func (c *chaos) setupDisks() {
	size := int64(256<<20) + int64(c.opts.Rate*c.opts.Duration.Seconds())*(48<<10)
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	var failure error
	for _, n := range c.recipients {
		if err := c.mountData(n, size); err != nil {
			failure = err
			break
		}
	}
	if failure == nil {
		c.diskMode = fmt.Sprintf("tmpfs-enospc: each recipient node's data directory is a %d MiB tmpfs (min_free_bytes %d); the fault fills it with a file, leaving %d KiB, until a real ENOSPC, then deletes the file",
			size>>20, chaosNodeMinFree, chaosFillSlack>>10)
		return
	}
	for id, d := range c.mounts {
		_ = c.unmountData(d, false)
		delete(c.mounts, id)
	}
	c.diskMode = fmt.Sprintf("disk-low-refusal: mounting a tmpfs is not permitted here (%v); the fault restarts the node with min_free_bytes above its free space, so it refuses deliveries with 503 disk-low, then restarts it as configured", failure)
}

func (c *chaos) mountData(n devnet.NodeInfo, size int64) error {
	data := dataDir(n.Config)
	init := data + ".init"
	if err := os.Rename(data, init); err != nil {
		return err
	}
	restore := func(err error) error {
		_ = os.Remove(data)
		_ = os.Rename(init, data)
		return err
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		return restore(err)
	}
	if err := mountTmpfs(data, size); err != nil {
		return restore(err)
	}
	if err := copyTree(init, data); err != nil {
		_ = unmount(data)
		return restore(err)
	}
	if err := setConfigInt(n.Config, "min_free_bytes", chaosNodeMinFree); err != nil {
		_ = unmount(data)
		return restore(err)
	}
	c.mounts[n.ID] = data
	return os.RemoveAll(init)
}

// unmountData unmounts the tmpfs on data, first copying its content to
// disk when keep is set.
func (c *chaos) unmountData(data string, keep bool) error {
	saved := data + ".tmpfs"
	if keep {
		if err := copyTree(data, saved); err != nil {
			c.logf("could not keep the content of %s: %v", data, err)
			keep = false
		}
	}
	if err := unmount(data); err != nil {
		return err
	}
	if keep {
		if err := copyTree(saved, data); err != nil {
			return err
		}
		return os.RemoveAll(saved)
	}
	return nil
}

// copyTree copies the regular files and directories under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		return copyFile(p, to)
	})
}

// setConfigInt sets (v != 0) or removes (v == 0) a top-level number in
// the JSON configuration at path, leaving the rest as it is.
func setConfigInt(path, key string, v int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if v == 0 {
		delete(m, key)
	} else {
		m[key] = json.RawMessage(fmt.Sprint(v))
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}

// teardown kills whatever still runs, closes the sender and the proxies
// and unmounts the tmpfs file systems (keeping their content when keep).
func (c *chaos) teardown(keep bool) {
	c.stopping.Store(true)
	for _, p := range c.procs {
		p.kill()
	}
	if c.nta != nil {
		_ = c.nta.Close()
		c.nta = nil
	}
	for _, p := range c.proxies {
		_ = p.Close()
	}
	for id, d := range c.mounts {
		if err := c.unmountData(d, keep); err != nil {
			c.logf("%s: %v", id, err)
		}
	}
}

// exercise runs the traffic and the faults for the duration, undoes every
// fault and waits for the receipts.
func (c *chaos) exercise(ctx context.Context) error {
	r := rand.New(rand.NewPCG(c.opts.Seed, c.opts.Seed^0x6a09e667f3bcc908))
	var nodes []string
	for _, n := range c.recipients {
		nodes = append(nodes, n.ID)
	}
	var schedule []Fault
	if c.plan != nil {
		schedule = c.plan(r)
	} else {
		schedule = planFaults(r, c.opts.Duration, c.opts.Pause, devnet.HubID, nodes, len(c.mounts) == 0)
	}
	c.logf("seed %d: %d faults over %v (pause %v; the hub's delivery backoff caps at %v):", c.opts.Seed, len(schedule), c.opts.Duration, c.opts.Pause, chaosHubRetryMax)
	for i, f := range schedule {
		c.logf("  schedule %2d %s", i+1, f)
	}

	c.start = time.Now()
	runCtx, endRun := context.WithTimeout(ctx, c.opts.Duration)
	defer endRun()
	loopsCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var loops sync.WaitGroup
	loops.Go(func() { c.receiptLoop(loopsCtx) })
	loops.Go(func() { c.resubmitLoop(loopsCtx) })
	loops.Go(func() { c.witnessLoop(loopsCtx) })
	loops.Go(func() { c.progressLoop(loopsCtx) })

	var traffic, faults sync.WaitGroup
	traffic.Go(func() { c.traffic(runCtx, ctx) })
	faults.Go(func() { c.runFaults(runCtx, ctx, schedule) })
	<-runCtx.Done()
	if ctx.Err() != nil {
		stopLoops()
		traffic.Wait()
		faults.Wait()
		loops.Wait()
		return fmt.Errorf("drill: chaos: interrupted: %w", ctx.Err())
	}
	c.logf("duration over: traffic stopped, faults undone")
	traffic.Wait()
	faults.Wait()
	c.restoreAll(ctx)
	stopLoops()
	loops.Wait()
	return c.settle(ctx)
}

// planFaults draws the fault schedule for a run of duration d from r:
// every kind once first (one every 0.5–1.2 s, durations shortened to fit
// when the run is short), then kinds at random, one every 0.8–2.5 s;
// never two process faults (kill, pause; and the disk-low restart when
// procDisk) or two network faults (delay, blackhole) on one target at
// once, and each ending, with the restart it needs, before d.
func planFaults(r *rand.Rand, d, pause time.Duration, hub string, nodes []string, procDisk bool) []Fault {
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
	proxies := append([]string{hub}, nodes...)
	busy := map[string]time.Duration{} // slot → busy until
	type kindSpec struct {
		name     string
		targets  []string
		slot     string        // "" for instant faults
		min, max time.Duration // of For
		margin   time.Duration // how long the target stays affected after For (a restart)
		weight   int
	}
	const restart = 4 * time.Second
	specs := []kindSpec{
		{FaultKillNode, nodes, "proc", 500 * time.Millisecond, 3 * time.Second, restart, 3},
		{FaultKillHub, []string{hub}, "proc", 500 * time.Millisecond, 3 * time.Second, restart, 2},
		{FaultCut, proxies, "", 0, 0, 0, 2},
		{FaultReset, proxies, "", 0, 0, 0, 2},
		{FaultDelay, proxies, "net", 2 * time.Second, 5 * time.Second, 0, 2},
		{FaultBlackhole, proxies, "net", 2 * time.Second, 5 * time.Second, 0, 2},
		{FaultPause, nodes, "proc", pause, pause, 0, 1},
		{FaultDiskFull, nodes, "disk", 3 * time.Second, 8 * time.Second, 0, 2},
	}
	if procDisk {
		specs[7].slot, specs[7].margin = "proc", 2*restart
	}
	if !pauseSupported || pause <= 0 {
		specs = slices.DeleteFunc(specs, func(s kindSpec) bool { return s.name == FaultPause })
	}
	// The first round places every kind once, the pause (the longest)
	// first so that it fits.
	must := r.Perm(len(specs))
	slices.SortStableFunc(must, func(a, b int) int {
		switch {
		case specs[a].name == FaultPause:
			return -1
		case specs[b].name == FaultPause:
			return 1
		}
		return 0
	})
	weighted := func() []int {
		var bag []int
		for i, s := range specs {
			for range s.weight {
				bag = append(bag, i)
			}
		}
		r.Shuffle(len(bag), func(i, j int) { bag[i], bag[j] = bag[j], bag[i] })
		return slices.Compact(bag)
	}
	var out []Fault
	for t := 1500 * time.Millisecond; t < d; {
		order := must
		if len(order) == 0 {
			order = weighted()
		}
		for _, k := range order {
			s := specs[k]
			dur := s.min
			if s.max > s.min {
				dur = between(s.min, s.max)
			}
			if room := d - t - s.margin - time.Second; dur > room {
				if room < s.min || (len(must) == 0 && s.min > 0) {
					continue
				}
				dur = room.Truncate(100 * time.Millisecond)
			}
			var free []string
			for _, tg := range s.targets {
				if s.slot == "" || busy[s.slot+":"+tg] <= t {
					free = append(free, tg)
				}
			}
			if len(free) == 0 {
				continue
			}
			tg := free[r.IntN(len(free))]
			if s.slot != "" {
				busy[s.slot+":"+tg] = t + dur + s.margin
			}
			out = append(out, Fault{At: t, Kind: s.name, Target: tg, For: dur})
			must = slices.DeleteFunc(must, func(x int) bool { return x == k })
			break
		}
		if len(must) > 0 {
			t += between(500*time.Millisecond, 1200*time.Millisecond)
		} else {
			t += between(800*time.Millisecond, 2500*time.Millisecond)
		}
	}
	return out
}

// runFaults injects each fault of schedule at its time until runCtx ends;
// then every fault still in force is undone at once.
func (c *chaos) runFaults(runCtx, ctx context.Context, schedule []Fault) {
	var wg sync.WaitGroup
	for i := range schedule {
		f := schedule[i]
		if !pause.Until(runCtx, c.start.Add(f.At)) {
			break
		}
		c.mu.Lock()
		c.byKind[f.Kind]++
		n := len(c.faults) + 1
		c.faults = append(c.faults, f)
		c.mu.Unlock()
		wg.Go(func() {
			detail := c.inject(runCtx, ctx, n, f)
			c.mu.Lock()
			c.faults[n-1].Detail = detail
			c.mu.Unlock()
		})
	}
	wg.Wait()
}

// inject applies fault number n, waits out its duration (cut short when
// faultCtx ends) and undoes it; restarts use ctx. It returns what it did.
func (c *chaos) inject(faultCtx, ctx context.Context, n int, f Fault) string {
	tag := fmt.Sprintf("fault %2d %-9s %s", n, f.Kind, f.Target)
	px := c.proxies[f.Target]
	p := c.procs[f.Target]
	switch f.Kind {
	case FaultKillNode, FaultKillHub, FaultKillReplica:
		pid := p.kill()
		c.logf("%s: SIGKILL (pid %d); restart in %.1fs", tag, pid, f.For.Seconds())
		pause.For(faultCtx, f.For)
		if err := p.ensureUp(ctx); err != nil {
			c.problemf("%s did not come back after %s: %v", f.Target, f.Kind, err)
			return "SIGKILL; NOT restarted: " + err.Error()
		}
		c.restarts.Add(1)
		c.logf("%s: restarted", tag)
		return fmt.Sprintf("SIGKILL pid %d, restarted after %.1fs", pid, f.For.Seconds())
	case FaultCut:
		k := px.CutAll()
		c.logf("%s: %d connections cut (FIN)", tag, k)
		return fmt.Sprintf("%d connections cut", k)
	case FaultReset:
		k := px.ResetAll()
		c.logf("%s: %d connections reset (RST)", tag, k)
		return fmt.Sprintf("%d connections reset", k)
	case FaultDelay:
		px.SetDelay(chaosDelay)
		c.logf("%s: +%v per chunk for %.1fs", tag, chaosDelay, f.For.Seconds())
		pause.For(faultCtx, f.For)
		px.SetDelay(0)
		c.logf("%s: delay removed", tag)
		return fmt.Sprintf("+%v per chunk", chaosDelay)
	case FaultBlackhole:
		px.SetBlackhole(true)
		c.logf("%s: blackhole for %.1fs", tag, f.For.Seconds())
		pause.For(faultCtx, f.For)
		px.SetBlackhole(false)
		c.logf("%s: blackhole lifted", tag)
		return "everything dropped"
	case FaultPause:
		if err := p.pause(); err != nil {
			c.logf("%s: SIGSTOP failed: %v", tag, err)
			return "SIGSTOP failed: " + err.Error()
		}
		c.logf("%s: SIGSTOP for %.1fs", tag, f.For.Seconds())
		pause.For(faultCtx, f.For)
		if err := p.resume(); err != nil {
			c.problemf("%s: SIGCONT failed: %v", f.Target, err)
		}
		c.logf("%s: SIGCONT", tag)
		return fmt.Sprintf("SIGSTOP %.1fs, SIGCONT", f.For.Seconds())
	case FaultDiskFull:
		if data, ok := c.mounts[f.Target]; ok {
			filled, err := fillDisk(data, chaosFillSlack)
			if err != nil {
				c.logf("%s: filling %s failed: %v", tag, data, err)
				return "fill failed: " + err.Error()
			}
			c.logf("%s: %d MiB written to %s until ENOSPC, %d KiB left; for %.1fs", tag, filled>>20, data, chaosFillSlack>>10, f.For.Seconds())
			pause.For(faultCtx, f.For)
			if err := os.Remove(filepath.Join(data, chaosFillName)); err != nil {
				c.problemf("%s: removing the disk fill: %v", f.Target, err)
			}
			c.logf("%s: disk space freed", tag)
			return fmt.Sprintf("tmpfs filled (%d MiB) to ENOSPC", filled>>20)
		}
		ni, _ := c.lay.Node(f.Target)
		if err := setConfigInt(ni.Config, "min_free_bytes", 1<<50); err != nil {
			return "config: " + err.Error()
		}
		err := p.restart(ctx)
		c.logf("%s: restarted with min_free_bytes 1 PiB (disk-low refusals) for %.1fs", tag, f.For.Seconds())
		pause.For(faultCtx, f.For)
		if e := setConfigInt(ni.Config, "min_free_bytes", 0); e != nil {
			err = errors.Join(err, e)
		}
		err = errors.Join(err, p.restart(ctx))
		if err != nil {
			c.problemf("%s: disk-low fault: %v", f.Target, err)
		}
		c.logf("%s: restarted as configured", tag)
		return "disk-low refusal (min_free_bytes), restarted twice"
	}
	return ""
}

// fillDisk writes a file into dir until the file system is full
// (ENOSPC), then gives slack bytes back, and returns the file's size.
func fillDisk(dir string, slack int64) (int64, error) {
	path := filepath.Join(dir, chaosFillName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			f.Close()
			os.Remove(path)
			return 0, err
		}
		break
	}
	if n > slack {
		n -= slack
		if err := f.Truncate(n); err != nil {
			f.Close()
			os.Remove(path)
			return 0, err
		}
	}
	return n, f.Close()
}

// restoreAll undoes whatever fault could remain and brings every process
// back up.
func (c *chaos) restoreAll(ctx context.Context) {
	for _, px := range c.proxies {
		px.SetDelay(0)
		px.SetBlackhole(false)
		px.SetRefuse(false)
	}
	for id, data := range c.mounts {
		if err := os.Remove(filepath.Join(data, chaosFillName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.problemf("%s: removing the disk fill: %v", id, err)
		}
	}
	if len(c.mounts) == 0 {
		for _, n := range c.recipients {
			if err := setConfigInt(n.Config, "min_free_bytes", 0); err != nil {
				c.problemf("%s: %v", n.ID, err)
			}
		}
	}
	var wg sync.WaitGroup
	for id, p := range c.procs {
		wg.Go(func() {
			_ = p.resume()
			if err := p.ensureUp(ctx); err != nil {
				c.problemf("%s is down after the faults: %v", id, err)
			}
		})
	}
	wg.Wait()
}

// traffic seals synthetic notifications to every recipient in turn at the
// drill's rate until runCtx ends, and submits each; what is not accepted
// at once stays in the outbox for the resubmission loop.
func (c *chaos) traffic(runCtx, ctx context.Context) {
	lg, err := lgdata.Load()
	if err != nil {
		c.problemf("traffic: %v", err)
		return
	}
	jobs := make(chan int)
	submit := make(chan string, 4096)
	var prep, subs sync.WaitGroup
	for w := range chaosPreparers {
		prep.Go(func() {
			g := synth.NewGenerator(c.opts.Seed + uint64(w) + 1)
			for i := range jobs {
				rcpt := c.lay.Recipients[i%len(c.lay.Recipients)]
				gov, _ := lg.Lookup(strings.TrimPrefix(rcpt, "lg:"))
				doc := g.Next(gov.Name, gov.Prefecture)
				pctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
				id, err := c.nta.Node.Prepare(pctx, node.Submission{
					Recipient: rcpt, Type: doc.Type, ContentType: doc.ContentType, Payload: bytes.NewReader(doc.Body),
				})
				cancel()
				if err != nil {
					c.problemf("sender: sealing into the outbox failed: %v", err)
					continue
				}
				c.mu.Lock()
				c.sent[id] = sentNote{recipient: rcpt, digest: sha256.Sum256(doc.Body)}
				c.mu.Unlock()
				select {
				case submit <- id:
				default: // the resubmission loop takes it
				}
			}
		})
	}
	for range chaosSenderWorkers {
		subs.Go(func() {
			for id := range submit {
				if runCtx.Err() != nil {
					continue // left in the outbox for the resubmission
				}
				sctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
				rc, err := c.nta.Node.SubmitPending(sctx, id)
				cancel()
				if err == nil && rc != nil {
					c.mu.Lock()
					c.acceptedAt = append(c.acceptedAt, time.Now())
					c.mu.Unlock()
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / c.opts.Rate)
	next := time.Now()
	for i := 0; ; i++ {
		if !pause.Until(runCtx, next) {
			break
		}
		select {
		case jobs <- i:
		case <-runCtx.Done():
		}
		next = next.Add(interval)
	}
	close(jobs)
	prep.Wait()
	close(submit)
	subs.Wait()
}

// receiptLoop collects recording receipts from the hub, as a node's loop
// does.
func (c *chaos) receiptLoop(ctx context.Context) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := c.nta.Node.PollReceipts(pctx, 2*time.Second)
		cancel()
		if err != nil {
			pause.For(ctx, 500*time.Millisecond)
		}
	}
}

// resubmitLoop resubmits what the hub has not accepted, as a node's loop
// does.
func (c *chaos) resubmitLoop(ctx context.Context) {
	for pause.For(ctx, 2*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
		c.nta.Node.ResubmitPending(rctx)
		cancel()
	}
}

// witnessLoop checks, as a node's loop does, that the hub's ledger only
// grows; a rollback or fork is an alarm.
func (c *chaos) witnessLoop(ctx context.Context) {
	for pause.For(ctx, 5*time.Second) {
		c.checkLedger(ctx)
	}
}

func (c *chaos) checkLedger(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.nta.Node.CheckLedger(lctx); errors.Is(err, ledger.ErrRollback) || errors.Is(err, ledger.ErrFork) {
		c.alarms.Add(1)
		c.problemf("the sender's witness: the hub's ledger does not extend the checkpoint it holds: %v", err)
		c.logf("ALARM: %v", err)
	}
}

// progressLoop prints the counts every 5 s.
func (c *chaos) progressLoop(ctx context.Context) {
	for pause.For(ctx, 5*time.Second) {
		c.printCounts(ctx, "")
	}
}

func (c *chaos) printCounts(ctx context.Context, prefix string) {
	tot, acc, rec, err := c.nta.Store.OutgoingCounts(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	nf := len(c.faults)
	c.mu.Unlock()
	var down []string
	for _, n := range append(c.hubKeys(), c.nodeIDs()...) {
		if s := c.procs[n].state(); s != "up" {
			down = append(down, n+" "+s)
		}
	}
	state := "all processes up"
	if len(down) > 0 {
		state = strings.Join(down, ", ")
	}
	c.logf("%ssent %d, accepted %d, recorded %d; %d faults so far; %s", prefix, tot, acc, rec, nf, state)
}

func (c *chaos) nodeIDs() []string {
	var ids []string
	for _, n := range c.recipients {
		ids = append(ids, n.ID)
	}
	return ids
}

// settle waits, at most opts.Settle, until every notification sent is
// accepted and recorded, or until nothing more can come (everything has
// its recording receipt and nothing is pending submission); then it takes
// a last look at the hub's ledger and stops the processes.
func (c *chaos) settle(ctx context.Context) error {
	began := time.Now()
	deadline := began.Add(c.opts.Settle)
	lastLog := began
	for {
		tot, acc, rec, err := c.nta.Store.OutgoingCounts(ctx)
		if err != nil {
			return fmt.Errorf("drill: chaos: the sender's outbox: %w", err)
		}
		pending, err := c.nta.Store.Pending(ctx, 1)
		if err != nil {
			return fmt.Errorf("drill: chaos: the sender's outbox: %w", err)
		}
		if rec >= tot && (acc >= tot || len(pending) == 0) {
			c.logf("settled in %.1fs: %d sent, %d with an acceptance receipt, %d with a recording receipt", time.Since(began).Seconds(), tot, acc, rec)
			break
		}
		if time.Now().After(deadline) {
			c.logf("gave up waiting after %v: %d sent, %d with an acceptance receipt, %d with a recording receipt", c.opts.Settle, tot, acc, rec)
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("drill: chaos: interrupted: %w", ctx.Err())
		}
		if len(pending) > 0 {
			rctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
			c.nta.Node.ResubmitPending(rctx)
			cancel()
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _ = c.nta.Node.PollReceipts(pctx, 500*time.Millisecond)
		cancel()
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			c.printCounts(ctx, "settling: ")
		}
	}
	c.settled = time.Since(began)
	c.checkLedger(ctx)

	// Nodes first, then the hub, as an operator would.
	c.stopping.Store(true)
	var wg sync.WaitGroup
	for _, n := range c.recipients {
		wg.Go(func() { c.procs[n.ID].stop() })
	}
	wg.Wait()
	for _, k := range c.hubKeys() {
		wg.Go(func() { c.procs[k].stop() })
	}
	wg.Wait()
	c.logf("processes stopped; verifying from their files")
	return nil
}

// ---------------------------------------------------------------------------
// Processes.

// proc is the hub or a node, run as a process of the drill's binary.
type proc struct {
	c                        *chaos
	id, role, config, listen string
	op                       sync.Mutex // serialises starting, killing and stopping
	mu                       sync.Mutex // guards cur and gen
	cur                      *procRun
	gen                      int
	paused                   atomic.Bool
}

// procRun is one process of a proc.
type procRun struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	// ours is set when the drill ends the process; ready once it listened.
	ours, ready atomic.Bool
}

func (r *procRun) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func (p *proc) current() *procRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// state says "up", "down" or "paused".
func (p *proc) state() string {
	r := p.current()
	switch {
	case r == nil || !r.alive() || !r.ready.Load():
		return "down"
	case p.paused.Load():
		return "paused"
	}
	return "up"
}

// ensureUp starts the process unless it runs, and waits until it
// listens; a start that fails is retried every second for up to
// chaosUpTimeout.
func (p *proc) ensureUp(ctx context.Context) error {
	p.op.Lock()
	defer p.op.Unlock()
	deadline := time.Now().Add(chaosUpTimeout)
	for {
		if r := p.current(); r != nil && r.alive() && r.ready.Load() {
			return nil
		}
		if p.c.stopping.Load() {
			return fmt.Errorf("%s: not started, the drill is stopping", p.id)
		}
		r, err := p.startLocked()
		if err == nil {
			err = p.waitReady(ctx, r)
		}
		if err == nil {
			r.ready.Store(true)
			return nil
		}
		if r != nil {
			r.ours.Store(true)
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", p.id, ctx.Err())
		}
		p.c.startFailures.Add(1)
		p.c.logf("%s did not start: %v; retrying", p.id, err)
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start within %v: %w", p.id, chaosUpTimeout, err)
		}
		pause.For(ctx, time.Second)
	}
}

func (p *proc) startLocked() (*procRun, error) {
	p.mu.Lock()
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	logPath := filepath.Join(p.c.logDir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(p.id, ":", "-"), gen))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(p.c.opts.Binary, p.role, "--config", p.config)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = chaosProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.id, err)
	}
	r := &procRun{cmd: cmd, log: logPath, done: make(chan struct{})}
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	p.paused.Store(false)
	go func() {
		_ = cmd.Wait()
		close(r.done)
		if r.ours.Load() || !r.ready.Load() || p.c.stopping.Load() {
			return
		}
		// Died by itself: a finding. Bring it back.
		p.c.unexpected.Add(1)
		p.c.problemf("%s exited by itself (%v); log %s", p.id, cmd.ProcessState, logPath)
		p.c.logf("UNEXPECTED: %s exited by itself (%v); restarting", p.id, cmd.ProcessState)
		if err := p.ensureUp(context.Background()); err != nil {
			p.c.problemf("%s: %v", p.id, err)
		}
	}()
	return r, nil
}

// waitReady waits until the process listens on its address.
func (p *proc) waitReady(ctx context.Context, r *procRun) error {
	deadline := time.Now().Add(chaosStartTimeout)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", p.listen, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		if !r.alive() {
			return fmt.Errorf("exited during start (%v); log %s: %s", r.cmd.ProcessState, r.log, lastLine(r.log))
		}
		if !pause.For(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("not listening on %s after %v; log %s", p.listen, chaosStartTimeout, r.log)
}

// lastLine returns the last line of the file at path, shortened.
func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[:300]
	}
	return l
}

// kill SIGKILLs the process if it runs and returns its pid (0 if none).
func (p *proc) kill() int {
	p.op.Lock()
	defer p.op.Unlock()
	r := p.current()
	if r == nil || !r.alive() {
		return 0
	}
	r.ours.Store(true)
	_ = r.cmd.Process.Kill()
	<-r.done
	p.paused.Store(false)
	return r.cmd.Process.Pid
}

// stop ends the process with SIGTERM (SIGKILL after chaosStopTimeout).
func (p *proc) stop() {
	p.op.Lock()
	defer p.op.Unlock()
	r := p.current()
	if r == nil || !r.alive() {
		return
	}
	r.ours.Store(true)
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = resumeProcess(r.cmd.Process)
	select {
	case <-r.done:
	case <-time.After(chaosStopTimeout):
		p.c.problemf("%s did not stop within %v of SIGTERM; killed", p.id, chaosStopTimeout)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	p.paused.Store(false)
}

// restart stops the process gracefully and starts it again.
func (p *proc) restart(ctx context.Context) error {
	p.stop()
	return p.ensureUp(ctx)
}

// pause stops the process with SIGSTOP.
func (p *proc) pause() error {
	p.op.Lock()
	defer p.op.Unlock()
	r := p.current()
	if r == nil || !r.alive() {
		return errors.New("not running")
	}
	if err := pauseProcess(r.cmd.Process); err != nil {
		return err
	}
	p.paused.Store(true)
	return nil
}

// resume continues a paused process.
func (p *proc) resume() error {
	r := p.current()
	if r == nil || !r.alive() || !p.paused.Load() {
		return nil
	}
	p.paused.Store(false)
	return resumeProcess(r.cmd.Process)
}

// ---------------------------------------------------------------------------
// Verification.

// verify checks everything from the files the stopped processes left and
// the sender's outbox, and returns the report.
func (c *chaos) verify(ctx context.Context) (*ChaosReport, error) {
	lg, err := lgdata.Load()
	if err != nil {
		return nil, err
	}
	s := ChaosSummary{
		FaultsByKind: map[string]int{}, Recipients: len(c.lay.Recipients), RecipientNodes: len(c.recipients),
		LocalGovernments: lg.Len(), PauseS: c.opts.Pause.Seconds(), HubRetryMaxS: chaosHubRetryMax.Seconds(),
		RatePerS: c.opts.Rate, DurationS: c.opts.Duration.Seconds(), SettleS: c.settled.Round(100 * time.Millisecond).Seconds(),
		Seed: c.opts.Seed, DiskFull: strings.SplitN(c.diskMode, ":", 2)[0],
		Restarts: c.restarts.Load(), StartFailures: c.startFailures.Load(), UnexpectedExits: c.unexpected.Load(),
	}
	for _, k := range FaultKinds() {
		s.FaultsByKind[k] = 0
	}
	c.mu.Lock()
	for k, n := range c.byKind {
		s.FaultsByKind[k] = n
		s.Faults += n
	}
	sent := maps.Clone(c.sent)
	c.mu.Unlock()
	s.Sent = len(sent)
	d := c.nta.Directory()

	// The sender's outbox.
	outs := map[string]store.Outgoing{}
	var missing []string // recorded, without an acceptance receipt
	after := ""
	for {
		page, err := c.nta.Store.ListOutgoing(ctx, after, store.MaxListLimit)
		if err != nil {
			return nil, fmt.Errorf("drill: chaos: the sender's outbox: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			after = o.ID
			if _, ok := sent[o.ID]; ok {
				outs[o.ID] = o
			}
		}
	}
	for id := range sent {
		o, ok := outs[id]
		if !ok {
			c.problemf("%s: sent but missing from the sender's outbox", id)
			continue
		}
		ae, re := node.VerifyBoth(d, devnet.HubID, o)
		if ae == nil && re == nil {
			s.ReceiptsVerified++
			continue
		}
		if o.Accepted == nil && o.Recorded != nil && re == nil {
			missing = append(missing, id)
			continue
		}
		c.problemf("%s to %s: receipts do not verify: acceptance: %v; recording: %v", id, o.Recipient, errString(ae), errString(re))
	}

	// The hub's ledger, the audit logs, the witnesses.
	lv := c.verifyLedgers(d, outs)
	for _, id := range missing {
		s.MissingAcceptance++
		where := "the hub never logged its acceptance either (it was killed between queueing the envelope and logging it; only a resubmission completes that)"
		if i, ok := lv.acceptedAt[id]; ok {
			where = fmt.Sprintf("the hub accepted it (ledger entry %d)", i)
		}
		c.problemf("%s to %s: recorded and its recording receipt verifies, but the sender holds no acceptance receipt; %s, and the sender never asks again: its outbox stops listing an entry as pending once the recording receipt is in (store.Outbox.Pending)",
			id, outs[id].Recipient, where)
	}
	s.LedgerEntries, s.LogsVerified = lv.entries, lv.logs

	// What each recipient recorded.
	count := map[string]int{}
	for _, ni := range c.recipients {
		if err := c.countRecords(ctx, ni, sent, count, &s); err != nil {
			return nil, err
		}
	}
	for id, n := range count {
		if n > 1 {
			s.Duplicates += n - 1
			c.problemf("%s recorded %d times", id, n)
		}
	}
	for id, sn := range sent {
		o, inOutbox := outs[id]
		accepted := lv.accepted[id] > 0 || (inOutbox && o.Accepted != nil) || count[id] > 0
		if !accepted {
			c.problemf("%s to %s: sent but never accepted by the hub", id, sn.recipient)
			continue
		}
		s.Accepted++
		if count[id] > 0 {
			s.Recorded++
			if lv.recorded[id] == 0 {
				lv.intact = false
				c.problemf("%s: recorded at %s, but the hub's ledger has no recording entry for it", id, sn.recipient)
			}
		} else {
			c.problemf("LOST: %s to %s: accepted by the hub, not recorded", id, sn.recipient)
		}
	}
	s.Lost = s.Accepted - s.Recorded
	if c.replicas <= 1 {
		// A replica's store cannot be opened alone; what stayed queued
		// in a cluster shows as lost.
		s.QueuedAtHub = c.queuedAtHub(ctx)
	}
	if s.QueuedAtHub > 0 {
		c.problemf("%d envelopes are still in the hub's queue: not delivered within the %v the drill waited", s.QueuedAtHub, c.opts.Settle)
	}
	s.LedgerIntact = lv.intact && c.alarms.Load() == 0
	s.LedgerUnloggedAcceptances = lv.unlogged
	s.LedgerConsistent = s.LedgerIntact && s.LedgerUnloggedAcceptances == 0
	s.ENOSPCErrors, s.Redeliveries = c.scanLogs()
	s.Passed = s.Sent > 0 && s.Accepted == s.Sent && s.Lost == 0 && s.Duplicates == 0 && s.Misrouted == 0 &&
		s.Opened == s.Recorded && s.ReceiptsVerified == s.Sent && s.LedgerConsistent

	c.mu.Lock()
	defer c.mu.Unlock()
	rep := &ChaosReport{Summary: s, Faults: slices.Clone(c.faults), Problems: slices.Clone(c.problems)}
	if c.nProblem > len(c.problems) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("… and %d more problems", c.nProblem-len(c.problems)))
	}
	return rep, nil
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// countRecords lists every record of ni's tenants (opening the node's
// store and keys from its configuration, the process being stopped),
// counts them per envelope ID and opens each to compare it with what was
// sent.
func (c *chaos) countRecords(ctx context.Context, ni devnet.NodeInfo, sent map[string]sentNote, count map[string]int, s *ChaosSummary) error {
	ln, err := daemon.LoadNode(ni.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("drill: chaos: opening %s's store: %w", ni.ID, err)
	}
	defer ln.Close()
	for _, tenant := range ni.Tenants {
		var after int64
		for {
			recs, err := ln.Store.List(ctx, store.Query{Recipient: tenant, AfterSeq: after, Limit: store.MaxListLimit})
			if err != nil {
				return fmt.Errorf("drill: chaos: %s's store: %w", ni.ID, err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				after = r.Seq
				count[r.ID]++
				sn, ok := sent[r.ID]
				switch {
				case !ok:
					c.problemf("%s: recorded at %s but never sent by the drill", r.ID, tenant)
				case sn.recipient != tenant:
					s.Misrouted++
					c.problemf("%s: recorded at %s, sent to %s", r.ID, tenant, sn.recipient)
				default:
					if match, err := openMatches(ctx, ln.Node, tenant, r.ID, sn.digest); match {
						s.Opened++
					} else {
						c.problemf("%s at %s: the record does not open to what was sent: %v", r.ID, tenant, errString(err))
					}
				}
			}
		}
	}
	return nil
}

// openMatches opens a record and reports whether its plaintext has the
// digest want.
func openMatches(ctx context.Context, n *node.Node, tenant, id string, want [32]byte) (bool, error) {
	rc, _, err := n.Open(ctx, tenant, id)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return false, err
	}
	return [32]byte(h.Sum(nil)) == want, nil
}

// ledgerResult is what verifyLedgers found.
type ledgerResult struct {
	// intact: see ChaosSummary.LedgerIntact; unlogged counts recording
	// entries without an acceptance entry.
	intact   bool
	unlogged int
	entries  int64
	logs     int
	// accepted and recorded count the hub ledger's acceptance and
	// recording entries per envelope ID; acceptedAt is the index of the
	// first acceptance entry.
	accepted, recorded map[string]int
	acceptedAt         map[string]int64
}

// verifyLedgers checks, as `taxlink audit verify --data` does, the hub's
// ledger and every audit log (with their backup copies) with the keys the
// directory publishes; that each receipt the sender holds is the ledger
// entry at the index it names; and that every node's witness checkpoint
// is extended by the hub's ledger.
func (c *chaos) verifyLedgers(d *directory.Directory, outs map[string]store.Outgoing) ledgerResult {
	res := ledgerResult{intact: true, accepted: map[string]int{}, recorded: map[string]int{}, acceptedAt: map[string]int64{}}
	bad := func(format string, args ...any) {
		res.intact = false
		c.problemf(format, args...)
	}
	hv, err := notekey.NewVerifier(devnet.HubID, d.HubKey())
	if err != nil {
		bad("hub key: %v", err)
		return res
	}
	hubDir := filepath.Dir(c.lay.HubConfig)
	verifyLog := func(path, id string, v note.Verifier, kind string) {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && strings.Contains(path, "backup") {
			return // no backup taken yet
		}
		var rep ledger.Report
		var err error
		if kind == "audit" {
			rep, err = audit.Verify(path, ledger.Options{Origin: "taxlink/" + d.Environment + "/" + id + "/audit", Verifier: v})
		} else {
			rep, err = ledger.VerifyDir(path, note.VerifierList(v))
		}
		if err != nil {
			bad("%s: %v", path, err)
			return
		}
		res.logs++
		if len(rep.Recoverable) > 0 {
			c.logf("%s: %d crash leftovers (Open repairs them)", path, len(rep.Recoverable))
		}
	}
	ledgerDir := filepath.Join(hubDir, "data", "ledger")
	verifyLog(ledgerDir, devnet.HubID, hv, "ledger")
	verifyLog(filepath.Join(hubDir, "backup", "ledger"), devnet.HubID, hv, "ledger")
	verifyLog(filepath.Join(hubDir, "data", "audit"), devnet.HubID, hv, "audit")
	verifyLog(filepath.Join(hubDir, "backup", "audit"), devnet.HubID, hv, "audit")
	for _, ni := range c.recipients {
		dn, err := d.Node(ni.ID)
		if err != nil {
			bad("%s: %v", ni.ID, err)
			continue
		}
		v, err := notekey.NewVerifier(ni.ID, dn.Key())
		if err != nil {
			bad("%s: %v", ni.ID, err)
			continue
		}
		verifyLog(filepath.Join(dataDir(ni.Config), "audit"), ni.ID, v, "audit")
		verifyLog(filepath.Join(filepath.Dir(ni.Config), "backup", "audit"), ni.ID, v, "audit")
	}

	lg, err := ledger.Open(ledgerDir, ledger.Options{Origin: "taxlink/" + d.Environment + "/" + devnet.HubID + "/ledger", Verifier: hv})
	if err != nil {
		bad("hub ledger: %v", err)
		return res
	}
	defer lg.Close()
	res.entries = lg.Size()
	for i := range lg.Size() {
		e, err := lg.Entry(i)
		if err != nil {
			bad("hub ledger entry %d: %v", i, err)
			continue
		}
		if bytes.HasPrefix(e, []byte("TLD1")) {
			continue // a directory change
		}
		rc, err := receipt.ParseLedgerEntry(e)
		if err != nil {
			bad("hub ledger entry %d: %v", i, err)
			continue
		}
		switch rc.Kind {
		case receipt.Accepted:
			if res.accepted[rc.EnvelopeID] == 0 {
				res.acceptedAt[rc.EnvelopeID] = i
			}
			res.accepted[rc.EnvelopeID]++
		case receipt.Recorded:
			res.recorded[rc.EnvelopeID]++
		}
	}
	// Every recording follows an acceptance.
	for id := range res.recorded {
		if res.accepted[id] == 0 {
			res.unlogged++
			c.problemf("%s: the hub's ledger holds its recording but no acceptance", id)
		}
	}
	// Each receipt the sender holds is the entry at the index it names.
	atIndex := func(id, what, raw string, index int64) {
		rc, err := receipt.Parse([]byte(raw))
		if err != nil {
			bad("%s: %s receipt: %v", id, what, err)
			return
		}
		want, err := rc.LedgerEntry()
		if err != nil {
			bad("%s: %s receipt: %v", id, what, err)
			return
		}
		got, err := lg.Entry(index)
		if err != nil || !bytes.Equal(got, want) {
			bad("%s: the %s receipt is not the hub's ledger entry %d it names", id, what, index)
		}
	}
	for id, o := range outs {
		if o.Accepted != nil {
			if rc, err := receipt.Parse(o.Accepted); err == nil {
				atIndex(id, "acceptance", string(o.Accepted), int64(rc.Seq))
			}
		}
		if o.Recorded != nil {
			if o.RecordedIndex < 0 {
				bad("%s: the recording receipt came without its ledger index", id)
			} else {
				atIndex(id, "recording", string(o.Recorded), o.RecordedIndex)
			}
		}
	}
	// Every witness checkpoint is a prefix of the ledger.
	for _, ni := range c.lay.Nodes {
		path := filepath.Join(dataDir(ni.Config), "hub-checkpoint")
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			bad("%s: %v", path, err)
			continue
		}
		cp, err := ledger.ParseCheckpoint(b, note.VerifierList(hv))
		if err != nil {
			bad("%s: %v", path, err)
			continue
		}
		if cp.Size > lg.Size() {
			bad("%s holds the hub's checkpoint of size %d, the ledger has %d entries: rolled back", path, cp.Size, lg.Size())
			continue
		}
		if h, err := lg.TreeHash(cp.Size); err != nil || h != cp.Hash {
			bad("%s holds the hub's checkpoint of size %d whose root the ledger does not have: forked", path, cp.Size)
			continue
		}
		res.logs++
	}
	return res
}

// queuedAtHub opens the stopped hub's queue and returns how many
// envelopes it still holds.
func (c *chaos) queuedAtHub(ctx context.Context) uint64 {
	q, err := queue.Open(ctx, queue.InDataDir(dataDir(c.lay.HubConfig)))
	if err != nil {
		c.problemf("the hub's queue: %v", err)
		return 0
	}
	defer q.Close()
	n, err := q.Total(ctx)
	if err != nil {
		c.problemf("the hub's queue: %v", err)
	}
	return n
}

// scanLogs counts, in the nodes' logs, the lines that report a full disk
// and the deliveries answered with a stored receipt.
func (c *chaos) scanLogs() (enospc, redeliveries int) {
	ents, err := os.ReadDir(c.logDir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), strings.ReplaceAll(devnet.HubID, ":", "-")) {
			continue
		}
		f, err := os.Open(filepath.Join(c.logDir, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "no space left on device") || strings.Contains(l, "disk is full") {
				enospc++
			}
			if strings.Contains(l, "repeated delivery answered with the stored receipt") {
				redeliveries++
			}
		}
		f.Close()
	}
	return enospc, redeliveries
}
