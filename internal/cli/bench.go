package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/bench"
	"taxlink/internal/metrics"
)

func benchCmd() *cobra.Command {
	var (
		opts       bench.Options
		keep       string
		plot       string
		cpuprofile string
	)
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure this machine's fsync and JetStream bounds, then the whole relay against them (hub and nodes as processes)",
		Long: `Measure the physical bounds of this machine in the data directory — F, the
serial rate of 8 KiB write+fdatasync, and J, the rate of 8 KiB JetStream
publishes with SyncAlways — then run the whole relay with production
durability: a dev network with the hub and the recipient nodes as separate
processes of this binary, this process acting as the National Tax Agency's
node. Prints progress on stderr, a table on stdout and, as the last line, a
JSON object. Exit status 0 when every notification sent was accepted,
recorded once and had both receipts verified; the goals of issue 8 are
reported in "goals", not enforced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			opts.Dir = keep
			opts.Log = errw
			if opts.Profiles && keep == "" {
				return errors.New("--profiles writes the profiles next to the logs: give --keep DIR to keep them")
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				opts.CPUProfile = f
			}
			res, err := bench.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if plot != "" {
				f, err := os.Create(plot)
				if err != nil {
					return err
				}
				if err := bench.WriteSVG(f, res); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			printBench(out, res)
			if !res.Passed {
				for _, f := range res.Failures {
					fmt.Fprintln(errw, "taxlink: bench:", f)
				}
				return errFailed
			}
			return nil
		},
	}
	f := c.Flags()
	f.DurationVar(&opts.Duration, "duration", 60*time.Second, "length of the sustained closed-loop phase (the other phases scale with it)")
	f.StringVar(&keep, "keep", "", "run in `DIR` (empty or new) and keep the network, logs and probes there")
	f.IntVar(&opts.Recipients, "recipients", 1788, "number of local governments receiving (the dev network's 5, widened up to all 1,788)")
	f.IntVar(&opts.Concurrency, "concurrency", 0, "closed-loop submitters (0: search 4..64, and up to 256 while doubling gains 5%)")
	f.DurationVar(&opts.Calibrate, "calibrate", 0, "length of each physical probe (0: duration/12, 0.5 to 3 s)")
	f.BoolVar(&opts.Large, "large", false, "add the large payload phase (8 concurrent 50 MB PDFs vs one loopback mTLS stream)")
	f.IntVar(&opts.LargeCount, "large-count", 8, "concurrent PDFs of the large phase")
	f.IntVar(&opts.LargeSize, "large-size", 50_000_000, "bytes per PDF of the large phase")
	f.IntVar(&opts.CompareRecipients, "compare-recipients", 0, "after the main run, measure a fresh network with this many recipients (10 for the goal of issue 8)")
	f.StringVar(&plot, "plot", "", "write an SVG chart of the relay run (per second) to `FILE`")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of this process (the NTA role) during the relay phases to `FILE`")
	f.BoolVar(&opts.Profiles, "profiles", false, "the hub and the nodes write pprof CPU and heap profiles next to their logs (needs --keep)")
	c.AddCommand(benchTenantsCmd(), benchIsolationCmd())
	return c
}

// printBench writes the table of r and, as the last line, r as JSON.
func printBench(out io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	row := func(k string, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("machine", "%d CPUs, %.1f GB, %s", r.Host.CPUs, r.Host.MemTotalGB, r.Host.GoVersion)
	row("F: 8 KiB write+fdatasync, serial", "%.0f /s (p50 %.2f ms, p99 %.2f ms)", r.FsyncPerS, r.Fsync.P50MS, r.Fsync.P99MS)
	row("J: JetStream SyncAlways 8 KiB, sync", "%.0f /s (p50 %.2f ms, p99 %.2f ms)", r.JetStream.Sync, r.JetStream.SyncP50MS, r.JetStream.SyncP99MS)
	row(fmt.Sprintf("J: async, window %d", r.JetStream.Window), "%.0f /s", r.JetStream.Async)
	c := r.Crypto
	row(fmt.Sprintf("C: cryptography per notification (%d B)", c.PayloadSize), "%.0f µs: seal %.0f, 2 × header verify %.0f, 2 × receipt sign %.0f, 3 × receipt verify %.0f", c.PerMsgUs, c.SealUs, c.HeaderVerifyUs, c.ReceiptSignUs, c.ReceiptVerifyUs)
	row("C: ceiling on these CPUs", "%.0f /s (%.2f × F)", c.CeilingPerS, r.CryptoCeilingF())
	row("recipients", "%d (%d recorded the first notification; load goes to those)", r.Recipients, r.RecipientsRecording)
	row("prime: one notification to each, until all recorded", "%.1f s", r.PrimeS)
	for _, l := range r.Search {
		row(fmt.Sprintf("search: N=%d", l.Concurrency), "%.0f accepted/s", l.AcceptPerS)
	}
	row("concurrency N", "%d", r.Concurrency)
	row("accepted (hub receipt)", "%.0f /s", r.AcceptPerS)
	row("end to end (verified recording receipt)", "%.0f /s (%.0f /s within the window)", r.E2EPerS, r.E2EInWindowPerS)
	row("e2e / F", "%.2f", r.RatioE2EFsync)
	row("accepted / J", "%.2f", r.RatioAcceptJetStream)
	row("prepare (seal + outbox) p50 / p99", "%.1f / %.1f ms", r.P50PrepareMS, r.P99PrepareMS)
	row("accept p50 / p99", "%.1f / %.1f ms", r.P50AcceptMS, r.P99AcceptMS)
	row("end to end p50 / p99", "%.1f / %.1f ms", r.P50E2EMS, r.P99E2EMS)
	row(fmt.Sprintf("half rate %.0f/s: accept p50 / p99", r.HalfRate.TargetPerS), "%.1f / %.1f ms", r.HalfRate.P50AcceptMS, r.HalfRate.P99AcceptMS)
	row("half rate: submit p99 / e2e p99", "%.1f / %.1f ms", r.HalfRate.P99SubmitMS, r.HalfRate.P99E2EMS)
	if h := r.HalfRate.HubP99MS; h != nil {
		var steps []string
		for _, s := range metrics.AcceptSteps() {
			steps = append(steps, fmt.Sprintf("%s %.1f", s, h[s]))
		}
		row("half rate: at the hub, p99 of each step", "%s; whole acceptance %.1f ms", strings.Join(steps, ", "), h["total"])
	}
	for _, role := range sortedKeys(r.CPUUsPerMsg) {
		row("CPU per message: "+role, "%.0f µs", r.CPUUsPerMsg[role])
	}
	for _, role := range sortedKeys(r.WrittenKBPerMsg) {
		row("written to storage per message: "+role, "%.1f KB (payload %.1f KB)", r.WrittenKBPerMsg[role], float64(r.PayloadBytes)/1000)
	}
	for _, role := range sortedKeys(r.PeakRSSMB) {
		row("peak RSS: "+role, "%.0f MB", r.PeakRSSMB[role])
	}
	if l := r.Large; l != nil {
		row(fmt.Sprintf("large: %d × %.0f MB end to end", l.Count, float64(l.Bytes)/1e6), "%.1f s, %.0f MB/s", l.SecondsE2E, l.MBPerS)
		row("large: slowest seal+outbox / upload+accept", "%.1f s / %.1f s", l.PrepareS, l.AcceptS)
		row("large: one loopback mTLS stream", "%.0f MB/s (ratio %.2f)", l.TLSStreamMBPerS, l.RatioTLS)
		if l.WritesPerByte > 0 {
			row("large: D, sequential durable writes", "%.0f MB/s", l.DiskMBPerS)
			row("large: written to storage per payload byte", "%.1f (hub %.0f MB, node %.0f MB, nta %.0f MB)",
				l.WritesPerByte, l.WrittenMB["hub"], l.WrittenMB["node"], l.WrittenMB["nta"])
			row("large: D over the writes per byte", "%.0f MB/s (%.2f × one mTLS stream)", l.DiskCeilingMBPerS, l.RatioDiskCeilingTLS)
		}
		for _, role := range sortedKeys(l.PeakRSSMB) {
			row("large: peak RSS "+role, "%.0f MB (%.0f MB at the phase's start)", l.PeakRSSMB[role], l.StartRSSMB[role])
		}
	}
	if c := r.Compare; c != nil {
		row(fmt.Sprintf("compare: %d recipients, accepted / e2e", c.Recipients), "%.0f / %.0f /s (ratio %d:%d recipients: accept %.2f, e2e %.2f)", c.AcceptPerS, c.E2EPerS, r.Recipients, c.Recipients, c.RatioAccept, c.Ratio)
	}
	row("notifications", "%d sent, %d accepted, %d verified, %d at recipients", r.Notifications, r.Accepted, r.Verified, r.AtRecipients)
	for _, k := range sortedKeys(r.Goals) {
		g := r.Goals[k]
		v := "not measured"
		if g.Met != nil {
			v = "NOT MET"
			if *g.Met {
				v = "met"
			}
			if g.Value != nil {
				v += fmt.Sprintf(" (%.2f)", *g.Value)
			}
		}
		row("goal: "+g.Target, "%s", v)
	}
	for _, f := range r.Failures {
		if r := []rune(f); len(r) > 160 {
			f = string(r[:157]) + "..."
		}
		row("failure", "%s", f)
	}
	result := "PASS"
	if !r.Passed {
		result = "FAIL"
	}
	row("result", "%s", result)
	tw.Flush()
	j, _ := json.Marshal(r)
	fmt.Fprintln(out, string(j))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
