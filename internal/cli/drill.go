package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/devnet"
	"taxlink/internal/drill"
)

func drillCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "drill",
		Short: "Run drills against a network and report (模擬攻撃 …)",
	}
	c.AddCommand(drillAttackCmd(), drillChaosCmd(), drillRestoreCmd(), drillFailoverCmd())
	return c
}

func drillAttackCmd() *cobra.Command {
	var dev bool
	var cfg string
	c := &cobra.Command{
		Use:   "attack --dev | --config DIR",
		Short: "Attack a fresh dev network while legitimate traffic flows; exit 0 only if every attack was blocked and nothing was lost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev == (cfg != "") {
				return errors.New("give --dev (a fresh network in this process) or --config DIR (a running network written by `taxlink dev --init DIR`)")
			}
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			n := 0
			progress := func(r drill.Result) {
				n++
				mark := "blocked"
				if !r.Blocked {
					mark = "NOT BLOCKED"
				}
				fmt.Fprintf(errw, "attack %2d: %-60s %s\n", n, r.Attack, mark)
			}
			if cfg != "" {
				dir := cfg
				if filepath.Base(cfg) == "layout.json" {
					dir = filepath.Dir(cfg)
				}
				results, sum, err := drill.AttackRunning(cmd.Context(), dir, progress)
				if err != nil {
					return err
				}
				return reportAttacks(out, results, sum)
			}
			dir, err := os.MkdirTemp("", "taxlink-drill-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			fmt.Fprint(errw, devBanner)
			// The processes' own refusals are expected here; keep them quiet.
			nw, err := devnet.InitAndStart(cmd.Context(), dir, devnet.Options{}, jsonLogger(io.Discard, slog.LevelError))
			if err != nil {
				return err
			}
			defer nw.Stop()
			results, sum, err := drill.Attack(cmd.Context(), nw, progress)
			if err != nil {
				return err
			}
			return reportAttacks(out, results, sum)
		},
	}
	c.Flags().BoolVar(&dev, "dev", false, "attack a fresh dev network started in this process")
	c.Flags().StringVar(&cfg, "config", "", "attack the running network written by `taxlink dev --init DIR` (DIR or DIR/layout.json)")
	return c
}

func reportAttacks(out io.Writer, results []drill.Result, sum drill.AttackSummary) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tATTACK\tEXPECTED DEFENCE\tRESULT\tDETAIL")
	for i, r := range results {
		res := "blocked"
		if !r.Blocked {
			res = "NOT BLOCKED"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, r.Attack, r.Defence, res, r.Detail)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nlegitimate notifications during the drill: %d sent, %d recorded with both receipts verified, %d lost\n", sum.LegitSent, sum.LegitDone, sum.Lost)
	j, _ := json.Marshal(sum)
	fmt.Fprintln(out, string(j))
	if !sum.Passed {
		return errFailed
	}
	return nil
}

func drillChaosCmd() *cobra.Command {
	var (
		dev        bool
		duration   time.Duration
		rate       string
		seed       uint64
		keep       string
		recipients int
	)
	c := &cobra.Command{
		Use:   "chaos --dev [--duration 60s] [--rate 20/s] [--seed N] [--recipients 1788]",
		Short: "Kill, pause, partition and fill the disks of a fresh dev network of real processes under load; exit 0 only if nothing was lost or duplicated, every receipt verified and the ledger is consistent",
		Long: `Write a fresh dev network, run its hub and recipient nodes as processes of
this binary, each behind a TCP fault proxy, and send synthetic notifications
(XML returns, PDF scans) from the NTA's node to every recipient at --rate
for --duration, while a seeded schedule SIGKILLs the hub or a node (restarted
after 0.5-3 s), cuts, resets, delays and blackholes connections, fills a
node's disk (a real ENOSPC on a tmpfs when mounting is permitted, else the
node's disk-low refusal) and pauses a node (SIGSTOP) for a third of the
duration, or 35 s (beyond the hub's 30 s backoff cap) from --duration 105s.
Then undo every fault, wait for the receipts, stop the processes and check
from their files that every accepted notification was recorded exactly once
and opens to what was sent, that both receipts of each verify, and that the
hub's ledger, the audit logs and the nodes' witnesses are consistent.

Progress goes to stderr; stdout gets a table and, as its last line, one JSON
object. The dev network hosts 5 of the 1,788 local governments; --recipients
1788 spreads all of them over its recipient nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dev {
				return errors.New("give --dev: the chaos drill runs against a fresh dev network of real processes (a running network is not supported yet)")
			}
			perSecond, err := parseRate(rate)
			if err != nil {
				return err
			}
			bin, errw, err := startDevDrill(cmd)
			if err != nil {
				return err
			}
			rep, err := drill.Chaos(cmd.Context(), drill.ChaosOptions{
				Binary: bin, Dir: keep, Duration: duration, Rate: perSecond, Seed: seed, Progress: errw, Recipients: recipients,
			})
			if err != nil {
				return err
			}
			return reportChaos(cmd.OutOrStdout(), rep)
		},
	}
	c.Flags().BoolVar(&dev, "dev", false, "run against a fresh dev network of real processes (required)")
	c.Flags().DurationVar(&duration, "duration", 60*time.Second, "how long traffic flows and faults are injected")
	c.Flags().StringVar(&rate, "rate", "20/s", "notifications per second, `N` or N/s")
	c.Flags().IntVar(&recipients, "recipients", 0, "widen the dev network to `N` local governments (up to 1788, spread over its recipient nodes); 0: its own 5")
	c.Flags().Uint64Var(&seed, "seed", 0, "seed of the fault schedule and the traffic (0: from the clock; the report names it)")
	c.Flags().StringVar(&keep, "keep", "", "write the network, its data and the processes' logs into `DIR` (empty or new) and keep them; by default a temporary directory is removed when the drill passes")
	return c
}

// parseRate reads "20", "20/s" or "0.5/s".
func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v <= 0 || v > 1000 {
		return 0, fmt.Errorf("--rate %q: expected N or N/s with 0 < N <= 1000", s)
	}
	return v, nil
}

func reportChaos(out io.Writer, rep *drill.ChaosReport) error {
	s := rep.Summary
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tAT\tFAULT\tTARGET\tFOR\tWHAT HAPPENED")
	for i, f := range rep.Faults {
		d := "-"
		if f.For > 0 {
			d = fmt.Sprintf("%.1fs", f.For.Seconds())
		}
		fmt.Fprintf(tw, "%d\t+%.1fs\t%s\t%s\t%s\t%s\n", i+1, f.At.Seconds(), f.Kind, f.Target, d, f.Detail)
	}
	tw.Flush()
	fmt.Fprintln(out)
	var kinds []string
	for _, k := range drill.FaultKinds() {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, s.FaultsByKind[k]))
	}
	rows := [][2]string{
		{"faults", fmt.Sprintf("%d (%s)", s.Faults, strings.Join(kinds, ", "))},
		{"recipients", fmt.Sprintf("%d local governments on %d node processes (the dev layout; %d are listed nationally)", s.Recipients, s.RecipientNodes, s.LocalGovernments)},
		{"traffic", fmt.Sprintf("%.0fs at %g/s, seed %d", s.DurationS, s.RatePerS, s.Seed)},
		{"sent", fmt.Sprint(s.Sent)},
		{"accepted by the hub", fmt.Sprint(s.Accepted)},
		{"recorded (exactly once)", fmt.Sprint(s.Recorded)},
		{"lost", fmt.Sprint(s.Lost)},
		{"still queued at the hub", fmt.Sprint(s.QueuedAtHub)},
		{"duplicates", fmt.Sprint(s.Duplicates)},
		{"misrouted", fmt.Sprint(s.Misrouted)},
		{"opened and matched at recipient", fmt.Sprint(s.Opened)},
		{"both receipts verified", fmt.Sprintf("%d of %d", s.ReceiptsVerified, s.Sent)},
		{"recorded without acceptance receipt", fmt.Sprint(s.MissingAcceptance)},
		{"ledger consistent", fmt.Sprintf("%s (intact: %s; %d entries; %d logs and witnesses verified; %d recordings without their acceptance)",
			yesNo(s.LedgerConsistent), yesNo(s.LedgerIntact), s.LedgerEntries, s.LogsVerified, s.LedgerUnloggedAcceptances)},
		{"restarts / failed starts / unexpected exits", fmt.Sprintf("%d / %d / %d", s.Restarts, s.StartFailures, s.UnexpectedExits)},
		{"disk full", fmt.Sprintf("%s (%d ENOSPC lines in the nodes' logs)", s.DiskFull, s.ENOSPCErrors)},
		{"pause", fmt.Sprintf("%.1fs (the hub's delivery backoff caps at %.0fs)", s.PauseS, s.HubRetryMaxS)},
		{"redeliveries absorbed", fmt.Sprint(s.Redeliveries)},
		{"settled after the faults in", fmt.Sprintf("%.1fs", s.SettleS)},
		{"elapsed", fmt.Sprintf("%.1fs", s.ElapsedS)},
	}
	writeRows(out, rows, s.Passed)
	return drillTail(out, rep.Problems, rep.Dir, "network, data and logs", s, s.Passed)
}

func drillRestoreCmd() *cobra.Command {
	var (
		dev                      bool
		node, keep               string
		before, after, afterRest int
		settle                   time.Duration
	)
	c := &cobra.Command{
		Use:   "restore --dev [--node lg:011002] [--before 300] [--after-backup 60] [--after-restore 30]",
		Short: "Back up the hub and a node of a fresh dev network, destroy them, restore them and check counts, the ledger and that delivery resumes",
		Long: `Write a fresh dev network, run its hub and recipient nodes as processes of
this binary and send --before notifications from the NTA's node to every
recipient, waiting for both receipts of each. Then back up the hub and
--node: the hub's ledger and audit log from its own verified periodic
backup (backup.dir, checked with ledger.CheckBackup), the node's SQLite
databases online with VACUUM INTO, its audit log from its backup, the hub's
queue and receipt files by stopping the hub briefly and copying its data directory
(the downtime is reported). Send --after-backup more (two thirds with the
node stopped and the hub running, a third while the hub is down), SIGKILL
both, remove their data directories, restore them from the backups, start
them again, and send --after-restore more.

The report says what the restore lost (what the hub accepted after the
backup and had not delivered), what the sender's outbox recovered, whether
the restored ledger is consistent with what the participants witnessed,
and whether delivery resumed. Progress goes to stderr; stdout gets a table
and, as its last line, one JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dev {
				return errors.New("give --dev: the restore drill runs against a fresh dev network of real processes (it destroys data; a running network is not supported)")
			}
			bin, errw, err := startDevDrill(cmd)
			if err != nil {
				return err
			}
			rep, err := drill.Restore(cmd.Context(), drill.RestoreOptions{
				Binary: bin, Dir: keep, Node: node, Before: before, AfterBackup: after, AfterRestore: afterRest,
				Settle: settle, Progress: errw,
			})
			if err != nil {
				return err
			}
			return reportRestore(cmd.OutOrStdout(), rep)
		},
	}
	c.Flags().BoolVar(&dev, "dev", false, "run against a fresh dev network of real processes (required)")
	c.Flags().StringVar(&node, "node", "lg:011002", "the recipient node backed up and restored with the hub")
	c.Flags().IntVar(&before, "before", 300, "notifications sent and completed before the backup")
	c.Flags().IntVar(&after, "after-backup", 60, "notifications sent after the backup (at least 3)")
	c.Flags().IntVar(&afterRest, "after-restore", 30, "notifications sent after the restore")
	c.Flags().DurationVar(&settle, "settle", 2*time.Minute, "bound of each wait for receipts")
	c.Flags().StringVar(&keep, "keep", "", "write the network, backups and logs into `DIR` (empty or new) and keep them; by default a temporary directory is removed when the drill passes")
	return c
}

func reportRestore(out io.Writer, rep *drill.RestoreReport) error {
	s := rep.Summary
	fmt.Fprintln(out, "backup method:")
	for _, m := range rep.Method {
		fmt.Fprintln(out, "  -", m)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTEP\tTOOK\tWHAT HAPPENED")
	for i, st := range rep.Steps {
		fmt.Fprintf(tw, "%d\t%s\t%.2fs\t%s\n", i+1, st.Step, st.Took.Seconds(), st.Detail)
	}
	tw.Flush()
	fmt.Fprintln(out)
	rows := [][2]string{
		{"restored node", s.Node},
		{"records at the backup (expected / backed up / restored)", fmt.Sprintf("%d / %d / %d", s.ExpectedRecords, s.BackedUpRecords, s.RestoredRecords)},
		{"restored logs verify against their backups", yesNo(s.RestoredVerified)},
		{"hub downtime for the backup", fmt.Sprintf("%.2fs", s.HubDowntimeS)},
		{"sent after the backup", fmt.Sprintf("%d (%d accepted before the disaster, %d of them queued for %s)", s.AfterBackup, s.AcceptedAfterBackup, s.ToRestoredNode, s.Node)},
		{"recovered from the sender's outbox", fmt.Sprint(s.Recovered)},
		{"lost (named by the sender's outbox)", fmt.Sprintf("%d (%d)", s.Lost, s.LostIdentified)},
		{"ledger: backup / witnessed before the disaster", fmt.Sprintf("%d / %d entries", s.BackupLedgerEntries, s.WitnessedEntries)},
		{"ledger consistent with what was witnessed", yesNo(s.LedgerConsistent)},
		{"witness alarms / hub backup alerts", fmt.Sprintf("%d / %d", s.WitnessAlarms, s.BackupAlerts)},
		{"receipts stalled after the restore (cursor reset)", fmt.Sprintf("%d (%s)", s.ReceiptsStalled, yesNo(s.CursorReset))},
		{"delivery resumed", fmt.Sprintf("%s (%d sent after the restore)", yesNo(s.DeliveryResumed), s.AfterRestore)},
		{"destroy, restore and restart", fmt.Sprintf("%.2fs", s.RestoreS)},
		{"elapsed", fmt.Sprintf("%.1fs", s.ElapsedS)},
	}
	writeRows(out, rows, s.Passed)
	if len(rep.Findings) > 0 {
		fmt.Fprintln(out)
		for _, f := range rep.Findings {
			fmt.Fprintln(out, "finding:", f)
		}
	}
	return drillTail(out, rep.Problems, rep.Dir, "network, backups and logs", s, s.Passed)
}

func drillFailoverCmd() *cobra.Command {
	var (
		dev        bool
		keep       string
		duration   time.Duration
		down       time.Duration
		rate       float64
		replicas   int
		kills      int
		recipients int
		seed       uint64
	)
	c := &cobra.Command{
		Use:   "failover --dev [--duration 60s] [--kills 3] [--replicas 3]",
		Short: "Run a fresh dev network whose hub is a cluster of replica processes, SIGKILL replicas under traffic, and check that nothing is lost and acceptance pauses only seconds",
		Long: `Write a fresh dev network whose hub is a cluster of --replicas processes
(JetStream embedded in each, every stream and the ledger replicated), run
them and the recipient nodes as processes of this binary, and send
notifications from the NTA's node at --rate for --duration. Meanwhile
SIGKILL a replica --kills times (the first is the replica every node uses
first), each brought back after --down.

Afterwards every notification must be accepted and recorded exactly once
with both receipts verified, the ledger consistent, every replica's ledger
a prefix of the longest, and acceptance must have resumed within 10 s of
each loss. Progress goes to stderr; stdout gets a table and, as its last
line, one JSON object; the exit status is 0 only when the drill passed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dev {
				return errors.New("give --dev: the failover drill runs against a fresh dev network of real processes (it kills them)")
			}
			bin, errw, err := startDevDrill(cmd)
			if err != nil {
				return err
			}
			rep, err := drill.Failover(cmd.Context(), drill.FailoverOptions{
				Binary: bin, Dir: keep, Duration: duration, Down: down, Rate: rate, Replicas: replicas,
				Kills: kills, Seed: seed, Progress: errw, Recipients: recipients,
			})
			if err != nil {
				return err
			}
			return reportFailover(cmd.OutOrStdout(), rep)
		},
	}
	c.Flags().BoolVar(&dev, "dev", false, "run against a fresh dev network of real processes (required)")
	c.Flags().DurationVar(&duration, "duration", 60*time.Second, "how long traffic flows (at least 20s)")
	c.Flags().DurationVar(&down, "down", 5*time.Second, "how long a killed replica stays down")
	c.Flags().Float64Var(&rate, "rate", 20, "notifications per second")
	c.Flags().IntVar(&replicas, "replicas", 3, "hub replicas: 3 or 5")
	c.Flags().IntVar(&kills, "kills", 3, "replica kills during the run")
	c.Flags().IntVar(&recipients, "recipients", 0, "widen the dev network to `N` local governments (up to 1788); 0: its own 5")
	c.Flags().Uint64Var(&seed, "seed", 0, "seed of the kill targets (0: from the clock)")
	c.Flags().StringVar(&keep, "keep", "", "write the network and logs into `DIR` (empty or new) and keep them; by default a temporary directory is removed when the drill passes")
	return c
}

func reportFailover(out io.Writer, rep *drill.FailoverReport) error {
	s := rep.Summary
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tAT\tKILLED\tDOWN FOR\tACCEPTANCE RESUMED AFTER\tWHAT HAPPENED")
	for i, f := range rep.Kills {
		gap := "-"
		if i < len(s.AcceptGapsMS) {
			gap = fmt.Sprintf("%d ms", s.AcceptGapsMS[i])
		}
		fmt.Fprintf(tw, "%d\t+%.1fs\t%s\t%.1fs\t%s\t%s\n", i+1, f.At.Seconds(), f.Target, f.For.Seconds(), gap, f.Detail)
	}
	tw.Flush()
	fmt.Fprintln(out)
	rows := [][2]string{
		{"hub replicas / kills", fmt.Sprintf("%d / %d", s.Replicas, s.Kills)},
		{"sent / accepted / recorded", fmt.Sprintf("%d / %d / %d", s.Sent, s.Accepted, s.Recorded)},
		{"lost / duplicates", fmt.Sprintf("%d / %d", s.Lost, s.Duplicates)},
		{"receipts verified", fmt.Sprint(s.ReceiptsVerified)},
		{"longest acceptance pause after a loss", fmt.Sprintf("%d ms (limit %d ms)", s.MaxAcceptGapMS, s.GapLimitMS)},
		{"ledger consistent", yesNo(s.LedgerConsistent)},
		{"replicas' ledgers agree (entries)", fmt.Sprintf("%s %v", yesNo(s.ReplicaLedgersAgree), s.ReplicaEntries)},
		{"traffic / settle / elapsed", fmt.Sprintf("%.0fs / %.1fs / %.1fs", s.DurationS, s.SettleS, s.ElapsedS)},
		{"seed", fmt.Sprint(s.Seed)},
	}
	writeRows(out, rows, s.Passed)
	return drillTail(out, rep.Problems, rep.Dir, "network and logs", s, s.Passed)
}

// writeRows prints a drill's summary rows as a table ending with its
// result.
func writeRows(out io.Writer, rows [][2]string, passed bool) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	result := "PASS"
	if !passed {
		result = "FAIL"
	}
	fmt.Fprintf(tw, "result\t%s\n", result)
	tw.Flush()
}

// yesNo says yes, or NO loudly.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// startDevDrill returns this binary, which a drill on a fresh dev network
// runs its processes as, and the progress writer, after the dev banner.
func startDevDrill(cmd *cobra.Command) (string, io.Writer, error) {
	bin, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("the taxlink binary to run the processes with: %w", err)
	}
	errw := cmd.ErrOrStderr()
	fmt.Fprint(errw, devBanner)
	return bin, errw, nil
}

// drillTail ends a drill's report: its problems (at most 30), where its
// files were kept, the summary as the last line, and the exit status.
func drillTail(out io.Writer, problems []string, dir, kept string, summary any, passed bool) error {
	if len(problems) > 0 {
		fmt.Fprintln(out)
		for i, p := range problems {
			if i == 30 {
				fmt.Fprintf(out, "problem: … %d more\n", len(problems)-i)
				break
			}
			fmt.Fprintln(out, "problem:", p)
		}
	}
	if dir != "" {
		fmt.Fprintf(out, "%s kept in %s\n", kept, dir)
	}
	j, _ := json.Marshal(summary)
	fmt.Fprintln(out, string(j))
	if !passed {
		return errFailed
	}
	return nil
}
