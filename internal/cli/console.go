package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"taxlink/internal/config"
	"taxlink/internal/console"
	"taxlink/internal/daemon"
	"taxlink/internal/operator"
)

func consoleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "console",
		Short: "Administer the web console's operators from the machine itself",
	}
	c.AddCommand(consoleInviteCmd())
	return c
}

// consoleInviteCmd invites the first administrator of a console: someone
// with access to the machine and its configuration, as the installation.
// Later operators are invited in the console by an administrator.
func consoleInviteCmd() *cobra.Command {
	var cfgPath, id, name string
	cmd := &cobra.Command{
		Use:   "invite-admin --config FILE --id ID --name NAME",
		Short: "Invite the first administrator of a hub's or node's console and print its one-time enrolment code",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var common config.Common
			if h, err := config.LoadHub(cfgPath); err == nil {
				common = h.Common
			} else if n, nerr := config.LoadNode(cfgPath); nerr == nil {
				common = n.Common
			} else {
				return fmt.Errorf("%s is neither a valid hub nor node configuration: %w", cfgPath, errors.Join(err, nerr))
			}
			if common.Console == nil {
				return fmt.Errorf("%s configures no console", cfgPath)
			}
			ops, err := daemon.OpenOperators(common.Console, time.Now)
			if err != nil {
				return err
			}
			defer ops.Close()
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			list, err := ops.List(ctx)
			if err != nil {
				return err
			}
			for _, o := range list {
				if o.Role == operator.RoleAdmin && o.State == operator.StateActive {
					return fmt.Errorf("the console already has an active administrator (%s): invite operators in the console, where an administrator's enrolment needs a second person", o.ID)
				}
			}
			code, err := ops.Invite(ctx, console.SystemActor, operator.Operator{
				ID: id, Name: name, Role: operator.RoleAdmin, Grant: operator.Grant{Tenants: []string{"*"}, Types: []string{"*"}},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "invited %s as the first administrator of %s\nenrolment code (valid %s, shown once): %s\nenrol at %s/enrol with a security key (or smart card and PIN)\n",
				id, common.ID, strings.TrimSuffix(operator.CodeTTL.String(), "0m0s"), code, common.Console.Origin)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "hub or node configuration file")
	cmd.Flags().StringVar(&id, "id", "", "operator ID, e.g. tanaka")
	cmd.Flags().StringVar(&name, "name", "", "display name")
	for _, f := range []string{"config", "id", "name"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
