package cli

import (
	"fmt"
	"log/slog"
	"mime"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
	"taxlink/internal/node"
)

func sendCmd() *cobra.Command {
	var cfg, to, typ, from, contentType string
	c := &cobra.Command{
		Use:   "send --config NODECONFIG --to PARTICIPANT --type TYPE FILE",
		Short: "Seal, sign and submit FILE from a node's outbox; print the acceptance receipt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := daemon.LoadNode(cfg, jsonLogger(cmd.ErrOrStderr(), slog.LevelWarn))
			if err != nil {
				return err
			}
			defer l.Close()
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if contentType == "" {
				contentType = mime.TypeByExtension(filepath.Ext(args[0]))
				if t, _, err := mime.ParseMediaType(contentType); err == nil {
					contentType = t
				}
				if contentType == "text/xml" {
					contentType = "application/xml"
				}
			}
			if contentType == "" {
				return fmt.Errorf("cannot tell the content type of %s: give --content-type", args[0])
			}
			id, rc, err := l.Node.Submit(cmd.Context(), node.Submission{
				Sender: from, Recipient: to, Type: typ, ContentType: contentType, Payload: f,
			})
			if err != nil {
				if id != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "envelope %s: %v\n", id, err)
					return errFailed
				}
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "accepted  %s\n", rc.EnvelopeID)
			fmt.Fprintf(out, "  from %s to %s, type %s\n", rc.Sender, rc.Recipient, rc.Type)
			fmt.Fprintf(out, "  by %s at %s, sequence %d, header digest %x\n", rc.Issuer, rc.Time.Format("2006-01-02T15:04:05.000Z07:00"), rc.Seq, rc.HeaderDigest)
			j, _ := rc.MarshalJSON()
			fmt.Fprintln(out, string(j))
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration file")
	c.Flags().StringVar(&to, "to", "", "recipient participant ID, e.g. lg:011002")
	c.Flags().StringVar(&typ, "type", "", "notification type, e.g. income-tax-return")
	c.Flags().StringVar(&from, "from", "", "sending tenant (needed when the node hosts several)")
	c.Flags().StringVar(&contentType, "content-type", "", "content type (default: from the file name)")
	for _, f := range []string{"config", "to", "type"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}
