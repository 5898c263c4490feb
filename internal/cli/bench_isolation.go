package cli

import (
	"github.com/spf13/cobra"

	"taxlink/internal/bench"
)

// benchIsolationCmd is `taxlink bench isolation`: one recipient down with a
// large backlog queued for it at the hub, and the delivery rate to the
// others with and without it (bench.Isolation). Progress goes to stderr;
// the table and, as the last line, the report as one JSON object to
// stdout. It fails (exit status 1, after printing) when the ratio is below
// the goal or a consistency check failed.
func benchIsolationCmd() *cobra.Command {
	var o bench.IsolationOptions
	c := &cobra.Command{
		Use:   "isolation",
		Short: "Measure delivery to healthy recipients while one recipient is down with a large backlog, then its drain",
		Long: `Start the dev network in this process (hub with its queue file synced, nodes
with their SQLite stores, mTLS on every hop), prime every delivery loop, and
stop the node of 札幌市 (lg:011002): the hub's deliveries to it are refused.
Measure the end-to-end rate (submitted at the NTA node, recorded at the
healthy recipients' nodes) of a closed loop for --duration with the down
recipient's queue empty; queue --queued real sealed and signed envelopes for
it directly in the hub's durable store; move the hub's clock a day ahead and
let its delivery loop reach the 30 s backoff cap; measure the same closed
loop again. Then start the node again on its configuration and port and time
the drain of its backlog (at most --drain-max from the first delivery). With
--restart-hub, stop the hub with what is still queued, start it again and
time it until it accepts a submission.

The goal (issue 7): the rate with the backlog is at least 0.90 of the rate
without it. All data is synthetic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bench.Isolation(cmd.Context(), o, benchProgress(cmd, "isolation"))
			if err != nil {
				return err
			}
			return benchFinish(cmd, "isolation", bench.WriteIsolationReport(cmd.OutOrStdout(), r), r.Passed, r.Failures)
		},
	}
	f := c.Flags()
	f.IntVar(&o.Queued, "queued", 100_000, "envelopes queued for the down recipient")
	f.DurationVar(&o.Duration, "duration", 0, "length of each measured window (default 30s)")
	f.DurationVar(&o.Warmup, "warmup", 0, "closed-loop warm-up before each window (default 3s)")
	f.IntVar(&o.Concurrency, "concurrency", 16, "closed-loop submitters at the NTA node")
	f.IntVar(&o.FillConcurrency, "fill-concurrency", 32, "goroutines sealing and enqueueing the backlog")
	f.DurationVar(&o.Settle, "settle", 0, "longest wait for the down recipient's backoff to reach its cap (default 90s; negative: none)")
	f.DurationVar(&o.DrainMax, "drain-max", 0, "longest drain measurement from the first delivery after the return (default 60s)")
	f.StringVar(&o.Dir, "dir", "", "run in `DIR` (empty or new) and keep the network and its log there (default: a temporary directory, removed)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic documents")
	f.BoolVar(&o.RestartHub, "restart-hub", false, "end with a restart of the hub holding what is still queued, timed until it accepts again (goal: 10 s with 1,000,000 queued)")
	return c
}
