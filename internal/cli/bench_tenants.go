package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"taxlink/internal/bench"
)

// benchTenantsCmd is `taxlink bench tenants`: the scale benchmark of one
// node's store with many tenants (bench.Tenants). Progress goes to stderr;
// the table and, as the last line, the report as one JSON object to
// stdout. It fails (exit status 1, after printing) when a consistency check
// of the run failed.
func benchTenantsCmd() *cobra.Command {
	var o bench.TenantsOptions
	c := &cobra.Command{
		Use:   "tenants",
		Short: "Measure a node's store at scale: many tenants, many recorded notifications; search, export and erasure times",
		Long: `Build a real store — SQLite in a temporary directory (or --dir), or a fresh
schema of the PostgreSQL database named by --dsn, dropped afterwards — with
--tenants local governments (real codes: a few designated cities, many towns
and villages) and --records synthetic notifications spread over them by a
Zipf law (mostly e-Tax-like XML, about one in ten a small PDF scan), each a
real envelope sealed to its tenant's own key and recorded with store.Record
as a node's delivery does, with the store's full durability. Then time:
building the search index of every tenant, searches by taxpayer number
(blind index) and by type and tax year, the export API (called in process,
without TLS) taking over every record of the largest and of the smallest
tenant, a retention-style erasure of one tenant's older records, and the
whole-tenant erasure of the largest tenant with the store's vacuum and the
index's forget. Every figure is checked for consistency (counts per tenant,
the other tenants intact).

All data is synthetic; no payload or taxpayer number is ever printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bench.Tenants(cmd.Context(), o, benchProgress(cmd, "tenants"))
			if err != nil {
				return err
			}
			return benchFinish(cmd, "tenants", bench.WriteTenantsReport(cmd.OutOrStdout(), r), r.Passed, r.Failures)
		},
	}
	f := c.Flags()
	f.IntVar(&o.Tenants, "tenants", 200, "number of tenants (local governments) the node hosts")
	f.IntVar(&o.Records, "records", 100_000, "number of notifications recorded, spread over the tenants")
	f.StringVar(&o.Store, "store", bench.TenantsStoreSQLite, "store to measure: sqlite or postgres")
	f.StringVar(&o.DSN, "dsn", "", "PostgreSQL database for --store postgres (`DSN`, libpq string or URL); a fresh schema is created and dropped")
	f.StringVar(&o.Dir, "dir", "", "run in `DIR` (empty or new) and keep the files there (default: a temporary directory, removed)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the tenants, the distribution and the synthetic documents")
	f.Float64Var(&o.Skew, "skew", 1, "Zipf exponent of the records per tenant")
	f.IntVar(&o.Concurrency, "concurrency", 4, "goroutines recording at once")
	f.IntVar(&o.IndexWorkers, "index-workers", 0, "tenants indexed at once (0: GOMAXPROCS)")
	f.IntVar(&o.Queries, "queries", 1000, "searches within a tenant to time")
	f.IntVar(&o.ExportConcurrency, "export-concurrency", 4, "records of a page the export client fetches at once")
	f.IntVar(&o.PDFMin, "pdf-min", 20_000, "smallest PDF scan, in bytes")
	f.IntVar(&o.PDFMax, "pdf-max", 60_000, "largest PDF scan, in bytes")
	return c
}

// benchProgress prints a benchmark's progress lines on stderr.
func benchProgress(cmd *cobra.Command, name string) func(string) {
	return func(line string) { fmt.Fprintln(cmd.ErrOrStderr(), "taxlink bench "+name+":", line) }
}

// benchFinish ends a benchmark command: the report's write error, or its
// failed checks on stderr and a failing exit status.
func benchFinish(cmd *cobra.Command, name string, writeErr error, passed bool, failures []string) error {
	if writeErr != nil {
		return writeErr
	}
	if !passed {
		for _, f := range failures {
			fmt.Fprintln(cmd.ErrOrStderr(), "taxlink: bench "+name+":", f)
		}
		return errFailed
	}
	return nil
}
