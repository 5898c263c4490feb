package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/devnet"
)

const devBanner = `
  ************************************************************************
  *  DEVELOPMENT NETWORK — NOT FOR PRODUCTION, NOT FOR REAL TAX DATA     *
  *  throwaway CA and keys, environment "dev", loopback only             *
  ************************************************************************
`

func devCmd() *cobra.Command {
	var (
		initDir string
		keep    string
		n       int
		exit    bool
		seed    uint64
		timeout time.Duration
		verbose bool
		reps    int
	)
	c := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole development network on 127.0.0.1 (hub, NTA, 東京都, 札幌市, an outsourcer with three towns)",
		Long: `Run a whole development network in this process, on 127.0.0.1, with a
throwaway PKI. With --init DIR, write the same network as files instead, so
that each part runs as its own process (taxlink hub / taxlink node).
With --notifications N, send N synthetic notifications from the NTA to every
recipient, wait for both receipts of each, verify them, and print a summary
whose last line is JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if initDir != "" {
				return devInit(out, initDir, reps)
			}
			ctx := cmd.Context()
			dir := keep
			if dir == "" {
				d, err := os.MkdirTemp("", "taxlink-dev-")
				if err != nil {
					return err
				}
				dir = d
				defer os.RemoveAll(dir)
			}
			fmt.Fprint(errw, devBanner)
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			nw, err := devnet.InitAndStart(ctx, dir, devnet.Options{HubReplicas: reps}, jsonLogger(errw, level))
			if err != nil {
				return err
			}
			defer nw.Stop()
			printEndpoints(out, nw)
			if keep != "" {
				fmt.Fprintf(out, "data kept in %s\n", dir)
			}
			if n > 0 {
				sum, err := devnet.RunWorkload(ctx, nw, n, seed, timeout, func(p devnet.Progress) {
					fmt.Fprintf(errw, "progress: sent %d/%d, accepted %d, recorded %d\n", p.Sent, p.Total, p.Accepted, p.Recorded)
				})
				printSummary(out, sum)
				if err != nil {
					fmt.Fprintln(errw, "taxlink:", err)
				}
				if !sum.Passed {
					if exit {
						return errFailed
					}
					fmt.Fprintln(errw, "WORKLOAD FAILED; the network keeps running for inspection")
				}
			}
			if exit {
				return nil
			}
			fmt.Fprintln(out, "running; press Ctrl-C to stop")
			<-ctx.Done()
			fmt.Fprintln(out, "stopping")
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&initDir, "init", "", "write the dev network's PKI, directory and configs into `DIR` and exit")
	f.StringVar(&keep, "keep", "", "keep the network's data in `DIR` instead of a temporary directory")
	f.IntVar(&n, "notifications", 0, "send N synthetic notifications and verify both receipts of each")
	f.BoolVar(&exit, "exit", false, "stop after the notifications; exit status 0 only if all were recorded once and verified")
	f.Uint64Var(&seed, "seed", 1, "seed of the synthetic notifications")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for every receipt")
	f.BoolVar(&verbose, "verbose", false, "log every process's info messages")
	f.IntVar(&reps, "hub-replicas", 0, "run the hub as a cluster of `N` replicas (3 or 5; JetStream embedded in each, every stream and the ledger replicated)")
	return c
}

func devInit(out io.Writer, dir string, replicas int) error {
	lay, err := devnet.Init(dir, devnet.Options{HubReplicas: replicas})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote a dev network (DEVELOPMENT ONLY) into %s\n\nrun each part in its own terminal:\n", lay.Dir)
	rel := func(p string) string {
		if r, err := filepath.Rel(".", p); err == nil && len(r) < len(p) {
			return r
		}
		return p
	}
	if len(lay.HubReplicas) == 0 {
		fmt.Fprintf(out, "  taxlink hub  --config %s\n", rel(lay.HubConfig))
	}
	for i, r := range lay.HubReplicas {
		fmt.Fprintf(out, "  taxlink hub  --config %s   # replica %d of %d (start them together)\n", rel(r.Config), i+1, len(lay.HubReplicas))
	}
	for _, n := range lay.Nodes {
		fmt.Fprintf(out, "  taxlink node --config %s   # %s %s\n", rel(n.Config), n.ID, n.Name)
	}
	fmt.Fprintf(out, "\nthen, for example:\n  taxlink send --config %s --to lg:011002 --type income-tax-return FILE.xml\n  taxlink receipts --config %s\n", rel(lay.Nodes[0].Config), rel(lay.Nodes[0].Config))
	return nil
}

func printEndpoints(out io.Writer, nw *devnet.Network) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if len(nw.Replicas) == 0 {
		fmt.Fprintf(tw, "hub\t%s\thttps://%s\t機構 (Local Tax Agency)\n", devnet.HubID, nw.Hub.Addr)
	}
	for i, r := range nw.Replicas {
		fmt.Fprintf(tw, "hub\t%s\thttps://%s\t機構 (Local Tax Agency), replica %d of %d, routes on %s\n", devnet.HubID, r.Addr, i+1, len(nw.Replicas), nw.Layout.HubReplicas[i].Route)
	}
	for _, n := range nw.Layout.Nodes {
		fmt.Fprintf(tw, "node\t%s\thttps://%s\t%s\n", n.ID, nw.Nodes[n.ID].Addr, n.Name)
		if len(n.Tenants) > 1 || n.Tenants[0] != n.ID {
			for _, t := range n.Tenants {
				p, _ := nw.Hub.Directory().Participant(t)
				fmt.Fprintf(tw, "  tenant\t%s\t\t%s\n", t, p.Name)
			}
		}
	}
	fmt.Fprintf(tw, "configs\t%s\t\t\n", nw.Layout.Dir)
	tw.Flush()
	if nw.Hub.MetricsAddr != "" {
		fmt.Fprintf(out, "metrics: http://%s/metrics   (%s; /healthz, /readyz)\n", nw.Hub.MetricsAddr, devnet.HubID)
	}
	for _, n := range nw.Layout.Nodes {
		if a := nw.Nodes[n.ID].MetricsAddr; a != "" {
			fmt.Fprintf(out, "metrics: http://%s/metrics   (%s)\n", a, n.ID)
		}
	}
	for _, c := range nw.Layout.Consoles {
		fmt.Fprintf(out, "console: %s   (%s; enrol %s with code %s)\n", c.URL, c.Process, devnet.DevAdmin, c.AdminCode)
	}
	if len(nw.Layout.Consoles) > 0 {
		fmt.Fprintf(out, "sign in: open a console URL's /enrol page, enter operator %q and its code, and register a security key or\n"+
			"         platform authenticator with a PIN or biometric (Chrome DevTools > WebAuthn can emulate one); the first\n"+
			"         administrator is active at once and signs in at /login. The certificate is from the dev CA %s.\n",
			devnet.DevAdmin, filepath.Join(nw.Layout.Dir, "pki", "ca.pem"))
	}
}

func printSummary(out io.Writer, s devnet.Summary) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	rows := []struct {
		k string
		v any
	}{
		{"sent", s.Sent}, {"accepted (hub receipt)", s.Accepted}, {"recorded (once each)", s.Recorded},
		{"both receipts verified", s.ReceiptsVerified}, {"opened and matched at recipient", s.Opened},
		{"duplicates", s.Duplicates}, {"redeliveries absorbed", s.Redeliveries}, {"refused", s.Refused},
		{"payload MB", fmt.Sprintf("%.1f", float64(s.PayloadBytes)/1e6)},
		{"elapsed", (time.Duration(s.ElapsedMS) * time.Millisecond).String()},
		{"notifications/s", fmt.Sprintf("%.0f", s.PerSecond)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%v\t\n", r.k, r.v)
	}
	result := "PASS"
	if !s.Passed {
		result = "FAIL"
	}
	fmt.Fprintf(tw, "result\t%s\t\n", result)
	tw.Flush()
	j, _ := json.Marshal(s)
	fmt.Fprintln(out, string(j))
}
