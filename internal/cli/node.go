package cli

import (
	"encoding/json"
	"errors"
	"time"

	"fmt"
	"log/slog"
	"taxlink/internal/erasure"

	"github.com/spf13/cobra"

	"taxlink/internal/daemon"
)

func nodeCmd() *cobra.Command {
	var cfg string
	var prof profiles
	c := &cobra.Command{
		Use:   "node --config FILE",
		Short: "Run a node (国税庁・都道府県・市区町村サーバ): record deliveries, submit the outbox, collect receipts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := jsonLogger(cmd.ErrOrStderr(), slog.LevelInfo)
			stopProfiles, err := prof.start()
			if err != nil {
				return err
			}
			svc, err := daemon.StartNode(cmd.Context(), cfg, log)
			if err != nil {
				_ = stopProfiles()
				return err
			}
			log.Info("node started", "listen", svc.Addr, "metrics", svc.MetricsAddr)
			fmt.Fprintf(cmd.OutOrStdout(), "node listening on https://%s\n", svc.Addr)
			<-cmd.Context().Done()
			log.Info("node stopping")
			// The heap as it was in service, before the stop frees it.
			perr := stopProfiles()
			return errors.Join(svc.Stop(), perr)
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration file (JSON)")
	prof.flags(c.Flags())
	_ = c.MarkFlagRequired("config")
	c.AddCommand(nodeEraseCmd(), nodeVerifyEraseCmd(), nodeTransferOutCmd(), nodeTransferInCmd())
	return c
}

// nodeEraseCmd files a tenant's decommission for a second person's
// approval in the node's console.
func nodeEraseCmd() *cobra.Command {
	var cfg, tenant, by, reason string
	c := &cobra.Command{
		Use:   "erase --config FILE --tenant ID --requested-by OPERATOR --reason TEXT",
		Short: "Request the erasure of a tenant (keys destroyed, records removed, signed erase certificate); a second operator approves it in the node's console",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := daemon.RequestDecommission(cmd.Context(), cfg, tenant, by, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "decommission of %s requested by %s: approval %s\na second operator (admin or security officer) approves it on the node console's 承認 page; the node then erases and writes the certificate to data_dir/erase-certificates/\n", tenant, by, id)
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "node configuration file (JSON)")
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant to erase, e.g. lg:013323")
	c.Flags().StringVar(&by, "requested-by", "", "the requesting operator's ID in the console")
	c.Flags().StringVar(&reason, "reason", "", "why (e.g. the contract ended; the tenant moved to another outsourcer)")
	for _, f := range []string{"config", "tenant", "requested-by", "reason"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

// nodeVerifyEraseCmd checks an erase certificate against the node's key in
// the directory.
func nodeVerifyEraseCmd() *cobra.Command {
	var cfg string
	c := &cobra.Command{
		Use:   "verify-erase --config FILE CERTIFICATE",
		Short: "Verify an erase certificate with the issuing node's key from the directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := readLimited(args[0], erasure.MaxSize)
			if err != nil {
				return err
			}
			dc, err := loadDirContext(cfg)
			if err != nil {
				return err
			}
			d, err := dc.verify(dc.path)
			if err != nil {
				return err
			}
			var probe struct {
				Certificate struct {
					Node string `json:"node"`
				} `json:"certificate"`
			}
			if err := json.Unmarshal(doc, &probe); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			n, err := d.Node(probe.Certificate.Node)
			if err != nil {
				return err
			}
			c, err := erasure.Verify(doc, n.Key())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "valid erase certificate: node %s erased %s at %s (%d records, %d bytes; keys %v) requested by %s, approved by %s (approval %s)\n",
				c.Node, c.Tenant, c.Time.Format(time.RFC3339), c.Records, c.CiphertextBytes, c.KeysDestroyed, c.RequestedBy, c.ApprovedBy, c.Approval)
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "a hub or node configuration (for the directory and its key)")
	_ = c.MarkFlagRequired("config")
	return c
}

// nodeTransferOutCmd exports a moving tenant's records re-sealed to its
// new sealing key.
func nodeTransferOutCmd() *cobra.Command {
	var cfg, tenant, pub, keyID, out string
	c := &cobra.Command{
		Use:   "transfer-out --config FILE --tenant ID --to-key PUBFILE --key-id ID --out DIR",
		Short: "Export a tenant moving to another node: every record re-sealed to its new key, in a bundle this node signs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := daemon.TransferOut(cmd.Context(), cfg, tenant, pub, keyID, out, jsonLogger(cmd.ErrOrStderr(), slog.LevelWarn))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d records of %s re-sealed to key %s in %s; the new node imports them with `taxlink node transfer-in`\n", len(m.Entries), tenant, keyID, out)
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "the old node's configuration")
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant that moves")
	c.Flags().StringVar(&pub, "to-key", "", "file with the tenant's new sealing public key (base64)")
	c.Flags().StringVar(&keyID, "key-id", "", "the new key's ID")
	c.Flags().StringVar(&out, "out", "", "the bundle directory to create")
	for _, f := range []string{"config", "tenant", "to-key", "key-id", "out"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

// nodeTransferInCmd imports and verifies a bundle at the new node.
func nodeTransferInCmd() *cobra.Command {
	var cfg, tenant, from, bundle string
	c := &cobra.Command{
		Use:   "transfer-in --config FILE --tenant ID --from NODE --bundle DIR",
		Short: "Import a moving tenant's bundle: verify the old node's signature, open and check every record, record it, sign the verification",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := daemon.TransferIn(cmd.Context(), cfg, tenant, from, bundle, jsonLogger(cmd.ErrOrStderr(), slog.LevelWarn))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d records of %s (%d bytes) from %s opened, checked and recorded; signed verification in %s/verification.json\n", v.Records, tenant, v.PlainBytes, from, bundle)
			return nil
		},
	}
	c.Flags().StringVar(&cfg, "config", "", "the new node's configuration (with the tenant's new sealing key)")
	c.Flags().StringVar(&tenant, "tenant", "", "the tenant that moves")
	c.Flags().StringVar(&from, "from", "", "the old node's ID")
	c.Flags().StringVar(&bundle, "bundle", "", "the bundle directory")
	for _, f := range []string{"config", "tenant", "from", "bundle"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}
