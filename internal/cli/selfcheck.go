package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"taxlink/internal/standard"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/config"
	"taxlink/internal/devnet"
	"taxlink/internal/selfcheck"
)

// selfcheckReasonWidth cuts the reasons of the terminal table; the report
// files hold them whole.
const selfcheckReasonWidth = 110

// selfcheckTotal is the last line of `taxlink selfcheck`.
type selfcheckTotal struct {
	selfcheck.Summary
	Config    string `json:"config"`
	Processes int    `json:"processes"`
	Time      string `json:"time"`
}

// selfcheckCmd is `taxlink selfcheck`: the self-inspection of 第4 11(1)
// over every numbered item of 第2 to 第6 (package selfcheck).
func selfcheckCmd() *cobra.Command {
	var (
		cfg, out   string
		dev        bool
		offline    bool
		backupWait time.Duration
	)
	c := &cobra.Command{
		Use:   "selfcheck --config FILE | --dev [--out DIR]",
		Short: "Self-check (自己点検, 第4 11): every item of 第2–第6 checked or attested; exit 1 on any failure",
		Long: `Check a hub's or node's configuration and state against every numbered item
of 第2 to 第6 of 総務省告示第151号 (69 items): automated checks for what a
program can see (TLS 1.3 only, keys protected, lockout, backups verified and
current, audit log consistent, certifications, listeners …), and for the
organisational items the operators' dated attestations (taxlink selfcheck
attest). When the process runs, its listeners are probed too.

Writes DIR/selfcheck.md (自己点検結果, for auditors) and DIR/selfcheck.json,
prints a table and, as the last line, one JSON object with items, pass, fail,
attested, unattested, config and time. Exit status 1 if any item fails;
unattested items do not change it.

--dev starts a fresh dev network in this process, waits for its first backup
and checks the hub and every node, with a total over all of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev == (cfg != "") {
				return errors.New("give --config FILE (a hub's or node's configuration) or --dev (a fresh dev network in this process)")
			}
			w, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if cfg != "" {
				env, err := selfcheck.Load(cfg)
				if err != nil {
					return err
				}
				env.Live.Off = offline
				rep := selfcheck.Run(cmd.Context(), env)
				printSelfcheck(w, rep)
				return finishSelfcheck(w, errw, out, cfg, []*selfcheck.Report{rep})
			}
			return selfcheckDev(cmd, w, errw, out, backupWait)
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "the hub's or node's configuration `FILE`")
	c.Flags().BoolVar(&dev, "dev", false, "check a fresh dev network started in this process")
	c.Flags().StringVar(&out, "out", ".", "write selfcheck.md and selfcheck.json into `DIR`")
	c.Flags().BoolVar(&offline, "offline", false, "check configuration and files only: no probes of the running process")
	c.Flags().DurationVar(&backupWait, "backup-wait", 15*time.Second, "with --dev, how long to wait for the network's first backup")
	c.AddCommand(selfcheckAttestCmd(), selfcheckItemsCmd())
	return c
}

// selfcheckDev checks every process of a fresh dev network.
func selfcheckDev(cmd *cobra.Command, w, errw io.Writer, out string, backupWait time.Duration) error {
	ctx := cmd.Context()
	dir, err := os.MkdirTemp("", "taxlink-selfcheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprint(errw, devBanner)
	nw, err := devnet.InitAndStart(ctx, dir, devnet.Options{}, jsonLogger(io.Discard, slog.LevelError))
	if err != nil {
		return err
	}
	defer nw.Stop()
	type proc struct {
		cfg               string
		svc, con, metrics string
	}
	procs := []proc{{nw.Layout.HubConfig, nw.Hub.Addr, nw.Hub.ConsoleAddr, nw.Hub.MetricsAddr}}
	for _, n := range nw.Layout.Nodes {
		s := nw.Nodes[n.ID]
		procs = append(procs, proc{n.Config, s.Addr, s.ConsoleAddr, s.MetricsAddr})
	}
	// Every process of the network shares this operating-system process,
	// so each may see the others' listeners.
	var shared []string
	for _, p := range procs {
		for _, a := range []string{p.svc, p.con, p.metrics} {
			if a != "" {
				shared = append(shared, a)
			}
		}
	}
	envs := make([]*selfcheck.Env, len(procs))
	for i, p := range procs {
		env, err := selfcheck.Load(p.cfg)
		if err != nil {
			return err
		}
		env.Live = selfcheck.Live{Service: p.svc, Console: p.con, Metrics: p.metrics, PID: os.Getpid(), Shared: shared}
		envs[i] = env
	}
	// A fresh network has no backup until its first backup period ends.
	deadline := time.Now().Add(backupWait)
	for {
		all := true
		for _, e := range envs {
			all = all && e.BackupsWritten()
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(errw, "no complete backup after %s: the backup items report it\n", backupWait)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var reps []*selfcheck.Report
	for _, e := range envs {
		e.Now = time.Now()
		rep := selfcheck.Run(ctx, e)
		printSelfcheck(w, rep)
		fmt.Fprintln(w)
		reps = append(reps, rep)
	}
	return finishSelfcheck(w, errw, out, "dev", reps)
}

// printSelfcheck prints one process's table and summary line.
func printSelfcheck(w io.Writer, rep *selfcheck.Report) {
	fmt.Fprintf(w, "== %s (%s, %s): %s\n", rep.Participant, rep.Role, rep.Environment, rep.Config)
	_ = selfcheck.WriteTable(w, rep, selfcheckReasonWidth)
	s := rep.Summary
	fmt.Fprintf(w, "%s: %d items: %d pass, %d fail, %d attested, %d unattested\n", rep.Participant, s.Items, s.Pass, s.Fail, s.Attested, s.Unattested)
}

// finishSelfcheck writes the report files, prints the total as the last
// line and returns errFailed if any item failed.
func finishSelfcheck(w, errw io.Writer, out, config string, reps []*selfcheck.Report) error {
	now := time.Now()
	doc := selfcheck.NewDocument(now, reps...)
	md, js, err := doc.WriteFiles(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "report: %s, %s\n", md, js)
	if len(reps) > 1 {
		t := doc.Total
		fmt.Fprintf(w, "total over %d processes: %d items: %d pass, %d fail, %d attested, %d unattested\n", len(reps), t.Items, t.Pass, t.Fail, t.Attested, t.Unattested)
	}
	line, _ := json.Marshal(selfcheckTotal{Summary: doc.Total, Config: config, Processes: len(reps), Time: now.UTC().Format(time.RFC3339)})
	fmt.Fprintln(w, string(line))
	if doc.Total.Fail > 0 {
		return errFailed
	}
	return nil
}

// selfcheckAttestCmd records an attestation from the command line.
func selfcheckAttestCmd() *cobra.Command {
	var cfg, item, by, statement, valid string
	c := &cobra.Command{
		Use:   "attest --config FILE --item ID --by OPERATOR --statement TEXT [--valid 365d]",
		Short: "Record an operator's attestation of an organisational item (stop-gap until the console's page)",
		Long: `Record in DATA_DIR/attestations.jsonl that the organisational measures of one
item of the standard are in place: who attests (an operator ID), what is in
place and where the evidence is, valid from now for --valid ("365d", "1y",
at most three years). Only items of kind attestation can be attested (see
taxlink selfcheck items). ID is as in the catalogue ("第4-1-(1)") or in its
short form ("4-1-1").

STOP-GAP: this command trusts whoever can write the data directory; the
console will record attestations from signed-in operators. Attestations are
appended and never rewritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := selfcheck.Load(cfg)
			if err != nil {
				return err
			}
			it, ok := standard.Lookup(item)
			if !ok {
				return fmt.Errorf("--item %q is not an item of the catalogue (taxlink selfcheck items lists them)", item)
			}
			k, err := config.ParseKeep(valid)
			if err != nil {
				return fmt.Errorf("--valid: %v", err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			a := standard.Attestation{Item: it.ID, AttestedBy: by, Statement: statement, Date: now,
				Expires: now.AddDate(k.Years, 0, k.Days).Add(k.D)}
			if err := env.Attestations.Add(a); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "recorded: %s %s attested by %s, in force until %s (%s)\n", it.ID, it.Title, a.AttestedBy,
				a.Expires.Format(time.DateOnly), filepath.Join(env.Common.DataDir, standard.AttestationsFile))
			line, _ := json.Marshal(a)
			fmt.Fprintln(w, string(line))
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "the hub's or node's configuration `FILE` (the store is in its data_dir)")
	c.Flags().StringVar(&item, "item", "", "the item `ID`, e.g. 第4-1-(1) or 4-1-1")
	c.Flags().StringVar(&by, "by", "", "the attesting operator's `ID`")
	c.Flags().StringVar(&statement, "statement", "", "what is in place and where the evidence is (`TEXT`, one line)")
	c.Flags().StringVar(&valid, "valid", "365d", "how long the attestation stays in force (`Nd`, `Ny`)")
	for _, f := range []string{"config", "item", "by", "statement"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

// selfcheckItemsCmd lists the catalogue.
func selfcheckItemsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "items",
		Short: "List the items of the self-check: ID, kind (automated or attestation), title, checks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ITEM\tKIND\tTITLE\tCHECKS")
			var auto, att int
			for _, it := range standard.Catalogue() {
				if it.Kind == standard.Automated {
					auto++
				} else {
					att++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.ID, it.Kind, it.Title, strings.Join(it.Checks, ","))
			}
			tw.Flush()
			line, _ := json.Marshal(map[string]int{"items": auto + att, "automated": auto, "attestation": att})
			fmt.Fprintln(w, string(line))
			return nil
		},
	}
}
