package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"taxlink/internal/devnet"
	"taxlink/internal/drill"
)

func drillCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "drill",
		Short: "Run drills against a network and report (模擬攻撃 …)",
	}
	c.AddCommand(drillAttackCmd())
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
