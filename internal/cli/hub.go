package cli

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
)

func hubCmd() *cobra.Command {
	var cfg string
	var prof profiles
	c := &cobra.Command{
		Use:   "hub --config FILE",
		Short: "Run the hub (機構サーバ): accept, store durably, relay, receipt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := jsonLogger(cmd.ErrOrStderr(), slog.LevelInfo)
			stopProfiles, err := prof.start()
			if err != nil {
				return err
			}
			svc, err := daemon.StartHub(cmd.Context(), cfg, log)
			if err != nil {
				_ = stopProfiles()
				return err
			}
			log.Info("hub started", "listen", svc.Addr, "metrics", svc.MetricsAddr)
			fmt.Fprintf(cmd.OutOrStdout(), "hub listening on https://%s\n", svc.Addr)
			<-cmd.Context().Done()
			log.Info("hub stopping")
			// The heap as it was in service, before the stop frees it.
			perr := stopProfiles()
			return errors.Join(svc.Stop(), perr)
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "hub configuration file (JSON)")
	prof.flags(c.Flags())
	_ = c.MarkFlagRequired("config")
	return c
}
