// The failover drill (第4 9(2)ウ): the hub runs as a cluster of 3
// replicas, each a real process, carrying steady traffic while replicas
// are SIGKILLed one at a time and brought back. Afterwards every
// notification must be accepted, recorded exactly once, carry both
// verified receipts, acceptance must have paused for no more than a few
// seconds at each loss, and the replicas' ledgers must agree.

package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/devnet"
	"taxlink/internal/faultproxy"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
)

// FailoverGapLimit is the longest acceptance may pause after a replica is
// lost for the drill to pass.
const FailoverGapLimit = 10 * time.Second

// FailoverOptions configures Failover.
type FailoverOptions struct {
	// Binary is the taxlink executable the replicas and the nodes run as.
	// Required.
	Binary string
	// Dir is where the network, its data and logs are written (empty or
	// absent; kept). Empty: a temporary directory, removed when the drill
	// passes.
	Dir string
	// Duration is how long traffic flows (default 60s, at least 20s).
	Duration time.Duration
	// Rate is the notifications submitted per second (default 20).
	Rate float64
	// Replicas is the size of the cluster: 3 (default) or 5.
	Replicas int
	// Kills is how many times a replica is SIGKILLed (default 3); the
	// first is the replica every node uses, the others are drawn.
	Kills int
	// Down is how long a killed replica stays down (default 5s).
	Down time.Duration
	// Recipients widens the dev network (ChaosOptions.Recipients).
	Recipients int
	// Seed draws the targets; 0 picks one from the clock.
	Seed uint64
	// Progress receives progress lines (nil: none).
	Progress io.Writer
}

// FailoverSummary is the outcome: the last line of `taxlink drill
// failover`, as JSON.
type FailoverSummary struct {
	Replicas   int `json:"replicas"`
	Recipients int `json:"recipients"`
	Kills      int `json:"kills"`
	// Sent, Accepted, Recorded, Lost, Duplicates and ReceiptsVerified
	// are counted as in the chaos drill.
	Sent             int `json:"sent"`
	Accepted         int `json:"accepted"`
	Recorded         int `json:"recorded"`
	Lost             int `json:"lost"`
	Duplicates       int `json:"duplicates"`
	ReceiptsVerified int `json:"receipts_verified"`
	// MaxAcceptGapMS is the longest time from a replica's death to the
	// next acceptance receipt at the sender; AcceptGapsMS lists each.
	MaxAcceptGapMS int64   `json:"max_accept_gap_ms"`
	AcceptGapsMS   []int64 `json:"accept_gaps_ms"`
	GapLimitMS     int64   `json:"accept_gap_limit_ms"`
	// LedgerConsistent is the chaos drill's check on the first replica's
	// files; ReplicaLedgersAgree says every replica's ledger verifies and
	// is a prefix of the longest (LedgerEntries).
	LedgerConsistent    bool    `json:"ledger_consistent"`
	ReplicaLedgersAgree bool    `json:"replica_ledgers_agree"`
	LedgerEntries       int64   `json:"ledger_entries"`
	ReplicaEntries      []int64 `json:"replica_ledger_entries"`
	Restarts            int64   `json:"restarts"`
	DurationS           float64 `json:"duration_s"`
	SettleS             float64 `json:"settle_s"`
	ElapsedS            float64 `json:"elapsed_s"`
	Seed                uint64  `json:"seed"`
	// Passed: the chaos drill's conditions, every gap within the limit
	// and the replicas' ledgers in agreement.
	Passed bool `json:"passed"`
}

// FailoverReport is what Failover found.
type FailoverReport struct {
	Summary  FailoverSummary
	Kills    []Fault
	Problems []string
	Dir      string // where the network was kept ("" when removed)
}

// Failover runs the failover drill: a fresh dev network whose hub is a
// cluster of opts.Replicas processes, the recipient nodes as processes,
// the NTA's node sending from this process; replicas are killed and
// restarted during the traffic; then everything is verified from the
// files. The error is for a drill that could not run.
func Failover(ctx context.Context, opts FailoverOptions) (*FailoverReport, error) {
	if opts.Binary == "" {
		return nil, errors.New("drill: failover: the taxlink binary is required")
	}
	opts.Duration = cmp.Or(opts.Duration, 60*time.Second)
	opts.Down = cmp.Or(opts.Down, 5*time.Second)
	opts.Replicas = cmp.Or(opts.Replicas, 3)
	opts.Kills = cmp.Or(opts.Kills, 3)
	opts.Rate = cmp.Or(opts.Rate, 20)
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	switch {
	case opts.Replicas != 3 && opts.Replicas != 5:
		return nil, fmt.Errorf("drill: failover: %d replicas: expected 3 or 5", opts.Replicas)
	case opts.Duration < 20*time.Second:
		return nil, fmt.Errorf("drill: failover: duration %v is below 20s", opts.Duration)
	case opts.Kills < 1 || time.Duration(opts.Kills+1)*(opts.Down+2*time.Second) > opts.Duration:
		return nil, fmt.Errorf("drill: failover: %d kills of %v each do not fit in %v", opts.Kills, opts.Down, opts.Duration)
	case opts.Rate < 0 || opts.Rate > 1000:
		return nil, fmt.Errorf("drill: failover: rate %v is outside 0..1000 per second", opts.Rate)
	}
	c := &chaos{
		name:     "failover",
		replicas: opts.Replicas,
		opts: ChaosOptions{Binary: opts.Binary, Dir: opts.Dir, Duration: opts.Duration, Rate: opts.Rate,
			Seed: opts.Seed, Settle: 3 * time.Minute, Progress: opts.Progress, Recipients: opts.Recipients},
		proxies: map[string]*faultproxy.Proxy{},
		procs:   map[string]*proc{},
		mounts:  map[string]string{},
		sent:    map[string]sentNote{},
		byKind:  map[string]int{},
	}
	c.plan = func(r *rand.Rand) []Fault { return planKills(r, opts) }
	var s FailoverSummary
	// The gaps and the replicas' ledgers are checked once the processes
	// stopped, before the directory may be removed.
	c.afterVerify = func(rep *ChaosReport) {
		bad := func(format string, args ...any) {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
		s.ReplicaLedgersAgree, s.ReplicaEntries = c.compareReplicaLedgers(bad)
		s.AcceptGapsMS = c.acceptGaps()
		if len(s.AcceptGapsMS) > 0 {
			s.MaxAcceptGapMS = slices.Max(s.AcceptGapsMS)
		}
		s.GapLimitMS = FailoverGapLimit.Milliseconds()
		if s.MaxAcceptGapMS > s.GapLimitMS {
			bad("acceptance paused %d ms after a replica was lost (limit %d ms)", s.MaxAcceptGapMS, s.GapLimitMS)
		}
		s.Kills = rep.Summary.FaultsByKind[FaultKillReplica]
		rep.Summary.Passed = rep.Summary.Passed && s.ReplicaLedgersAgree && s.Kills == opts.Kills && s.MaxAcceptGapMS <= s.GapLimitMS
	}
	rep, err := c.run(ctx)
	if err != nil {
		return nil, err
	}
	cs := rep.Summary
	s.Recipients = cs.Recipients
	s.Replicas, s.Sent, s.Accepted, s.Recorded, s.Lost, s.Duplicates = opts.Replicas, cs.Sent, cs.Accepted, cs.Recorded, cs.Lost, cs.Duplicates
	s.ReceiptsVerified, s.LedgerConsistent, s.Restarts = cs.ReceiptsVerified, cs.LedgerConsistent, cs.Restarts
	s.DurationS, s.SettleS, s.ElapsedS, s.Seed, s.Passed = cs.DurationS, cs.SettleS, cs.ElapsedS, cs.Seed, cs.Passed
	if len(s.ReplicaEntries) > 0 {
		s.LedgerEntries = slices.Max(s.ReplicaEntries)
	}
	return &FailoverReport{Summary: s, Kills: rep.Faults, Problems: rep.Problems, Dir: rep.Dir}, nil
}

// planKills spreads opts.Kills replica kills over the run: the first hits
// hub-1, which every node uses first; the others a replica drawn from r.
func planKills(r *rand.Rand, opts FailoverOptions) []Fault {
	step := opts.Duration / time.Duration(opts.Kills+1)
	var fs []Fault
	for k := range opts.Kills {
		target := 1
		if k > 0 {
			target = 1 + r.IntN(opts.Replicas)
		}
		fs = append(fs, Fault{At: step * time.Duration(k+1), Kind: FaultKillReplica, Target: fmt.Sprintf("hub-%d", target), For: opts.Down})
	}
	return fs
}

// acceptGaps returns, for each replica kill, the milliseconds from the
// kill to the next acceptance at the sender (to the end of the traffic
// when none came).
func (c *chaos) acceptGaps() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	times := slices.Clone(c.acceptedAt)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gaps []int64
	for _, f := range c.faults {
		if f.Kind != FaultKillReplica {
			continue
		}
		at := c.start.Add(f.At)
		end := c.start.Add(c.opts.Duration)
		i, _ := slices.BinarySearchFunc(times, at, func(a, b time.Time) int { return a.Compare(b) })
		if i < len(times) {
			end = times[i]
		}
		gaps = append(gaps, end.Sub(at).Milliseconds())
	}
	return gaps
}

// compareReplicaLedgers checks every replica's ledger offline and that
// each is a prefix of the longest; it returns the verdict and the sizes.
func (c *chaos) compareReplicaLedgers(bad func(format string, args ...any)) (bool, []int64) {
	d := c.nta.Directory()
	hv, err := notekey.NewVerifier(devnet.HubID, d.HubKey())
	if err != nil {
		bad("hub key: %v", err)
		return false, nil
	}
	origin := "taxlink/" + d.Environment + "/" + devnet.HubID + "/ledger"
	var logs []*ledger.Log
	defer func() {
		for _, l := range logs {
			l.Close()
		}
	}()
	var sizes []int64
	ok := true
	for i, r := range c.lay.HubReplicas {
		dir := filepath.Join(dataDir(r.Config), "ledger")
		if _, err := ledger.VerifyDir(dir, note.VerifierList(hv)); err != nil {
			bad("replica %d's ledger: %v", i+1, err)
			ok = false
		}
		l, err := ledger.Open(dir, ledger.Options{Origin: origin, Verifier: hv})
		if err != nil {
			bad("replica %d's ledger: %v", i+1, err)
			return false, sizes
		}
		logs = append(logs, l)
		sizes = append(sizes, l.Size())
	}
	longest := logs[slices.Index(sizes, slices.Max(sizes))]
	for i, l := range logs {
		mine, err1 := l.TreeHash(l.Size())
		theirs, err2 := longest.TreeHash(l.Size())
		if err := errors.Join(err1, err2); err != nil || mine != theirs {
			bad("replica %d's ledger (%d entries) is not a prefix of the longest: %v", i+1, l.Size(), err)
			ok = false
		}
	}
	c.logf("replicas' ledgers: %v entries, each a prefix of the longest: %v", sizes, ok)
	return ok, sizes
}
