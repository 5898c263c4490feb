package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
)

func nodeCmd() *cobra.Command {
	var cfg string
	c := &cobra.Command{
		Use:   "node --config FILE",
		Short: "Run a node (国税庁・都道府県・市区町村サーバ): record deliveries, submit the outbox, collect receipts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := jsonLogger(cmd.ErrOrStderr(), slog.LevelInfo)
			svc, err := daemon.StartNode(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			log.Info("node started", "listen", svc.Addr)
			fmt.Fprintf(cmd.OutOrStdout(), "node listening on https://%s\n", svc.Addr)
			<-cmd.Context().Done()
			log.Info("node stopping")
			return svc.Stop()
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration file (JSON)")
	_ = c.MarkFlagRequired("config")
	return c
}
