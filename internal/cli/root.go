// Package cli implements the taxlink command line, one file per subcommand.
// Run is the whole program: it parses arguments, runs the subcommand and
// returns the exit status, so that tests can call it in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// exitError carries an exit status other than 1.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// errFailed marks a command whose outcome was reported and is a failure:
// exit 1 without another message.
var errFailed = errors.New("failed")

// Run runs the taxlink command line with args and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "taxlink",
		Short:         "taxlink: the national tax linkage network (国税連携ネットワークシステム)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(devCmd(), hubCmd(), nodeCmd(), sendCmd(), receiptsCmd(), directoryCmd(), drillCmd(), sbomCmd(), benchCmd())
	root.AddCommand(auditCmd(), consoleCmd(), selfcheckCmd())
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errFailed):
		return 1
	default:
		fmt.Fprintln(stderr, "taxlink:", err)
		return 1
	}
}

// jsonLogger returns the structured logger of a long-running process.
func jsonLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
