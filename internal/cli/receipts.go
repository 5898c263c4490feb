package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
	"taxlink/internal/node"
)

func receiptsCmd() *cobra.Command {
	var cfg string
	var fetch bool
	c := &cobra.Command{
		Use:   "receipts --config NODECONFIG",
		Short: "List what a node sent, with the verification status of both receipts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := daemon.LoadNode(cfg, jsonLogger(cmd.ErrOrStderr(), slog.LevelWarn))
			if err != nil {
				return err
			}
			defer l.Close()
			ctx := cmd.Context()
			if fetch {
				if _, err := l.Node.PollReceipts(ctx, 0); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "could not reach the hub for new receipts: %v\n", err)
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTO\tTYPE\tACCEPTED\tRECORDED\tSTATUS")
			var total, ok, pending, bad int
			after := ""
			for {
				page, err := l.Store.ListOutgoing(ctx, after, 500)
				if err != nil {
					return err
				}
				if len(page) == 0 {
					break
				}
				for _, o := range page {
					after = o.ID
					total++
					accErr, recErr := node.VerifyBoth(l.Directory(), l.Config.HubID, o)
					status := "verified"
					switch {
					case o.Accepted == nil && o.LastError != "":
						status, pending = "not accepted: "+o.LastError, pending+1
					case o.Accepted == nil:
						status, pending = "in outbox", pending+1
					case accErr != nil:
						status, bad = "ACCEPTANCE RECEIPT INVALID: "+accErr.Error(), bad+1
					case o.Recorded == nil:
						status, pending = "awaiting recording", pending+1
					case recErr != nil:
						status, bad = "RECORDING RECEIPT INVALID: "+recErr.Error(), bad+1
					default:
						ok++
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.ID, o.Recipient, o.Type, stamp(o.AcceptedAt), stamp(o.RecordedAt), status)
				}
			}
			tw.Flush()
			j, _ := json.Marshal(map[string]int{"total": total, "verified": ok, "pending": pending, "invalid": bad})
			fmt.Fprintln(cmd.OutOrStdout(), string(j))
			if bad > 0 {
				return errFailed
			}
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration file")
	c.Flags().BoolVar(&fetch, "fetch", true, "first collect new recording receipts from the hub")
	_ = c.MarkFlagRequired("config")
	return c
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
