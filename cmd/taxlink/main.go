// Command taxlink runs the national tax linkage network: the hub, the
// participants' nodes, and the tools around them. See `taxlink help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"taxlink/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
