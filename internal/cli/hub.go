package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
)

func hubCmd() *cobra.Command {
	var cfg string
	c := &cobra.Command{
		Use:   "hub --config FILE",
		Short: "Run the hub (機構サーバ): accept, store durably, relay, receipt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := jsonLogger(cmd.ErrOrStderr(), slog.LevelInfo)
			svc, err := daemon.StartHub(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			log.Info("hub started", "listen", svc.Addr)
			fmt.Fprintf(cmd.OutOrStdout(), "hub listening on https://%s\n", svc.Addr)
			<-cmd.Context().Done()
			log.Info("hub stopping")
			return svc.Stop()
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "hub configuration file (JSON)")
	_ = c.MarkFlagRequired("config")
	return c
}
