package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tinyTenants is the tiny run of the tests: 5 tenants, 300 records.
func tinyTenants(dir string) TenantsOptions {
	return TenantsOptions{
		Tenants: 5, Records: 300, Dir: dir, Queries: 40, Concurrency: 3, IndexWorkers: 2,
		PDFMin: 2000, PDFMax: 6000, Calibrate: 100 * time.Millisecond,
	}
}

// checkTenantsReport checks the consistency of a tiny run's report.
func checkTenantsReport(t *testing.T, r TenantsReport, o TenantsOptions, log string) {
	t.Helper()
	if !r.Passed || len(r.Failures) > 0 {
		t.Fatalf("not passed: %q\nlog:\n%s", r.Failures, log)
	}
	if r.Tenants != o.Tenants || r.Records != o.Records {
		t.Errorf("tenants %d, records %d, want %d, %d", r.Tenants, r.Records, o.Tenants, o.Records)
	}
	if r.BigTenantRecords < r.MedianTenantRecords || r.MedianTenantRecords < r.SmallTenantRecords || r.SmallTenantRecords < 1 ||
		r.BigTenant == r.SmallTenant || r.BigTenant == r.RetentionTenant || r.SmallTenant == r.RetentionTenant {
		t.Errorf("distribution: largest %s %d, median %d, smallest %s %d, retention %s",
			r.BigTenant, r.BigTenantRecords, r.MedianTenantRecords, r.SmallTenant, r.SmallTenantRecords, r.RetentionTenant)
	}
	if r.RecordPerS <= 0 || r.StoreBytes <= r.CiphertextBytes || r.CiphertextBytes <= r.PayloadBytes || r.IndexBuildS <= 0 || r.IndexBytes <= 0 {
		t.Errorf("record %v/s, store %d bytes, ciphertext %d, payload %d, index %v s, %d bytes",
			r.RecordPerS, r.StoreBytes, r.CiphertextBytes, r.PayloadBytes, r.IndexBuildS, r.IndexBytes)
	}
	if r.Searches != o.Queries || r.SearchesFound != r.Searches || r.SearchAllTenantsFound != r.SearchAllTenants ||
		r.SearchP50MS <= 0 || r.SearchP99MS < r.SearchP50MS {
		t.Errorf("searches %d, found %d; across %d, found %d; p50 %v, p99 %v",
			r.Searches, r.SearchesFound, r.SearchAllTenants, r.SearchAllTenantsFound, r.SearchP50MS, r.SearchP99MS)
	}
	if r.ExportBigRecords != r.BigTenantRecords || r.ExportSmallRecords != r.SmallTenantRecords || r.ExportAcks < 2 || r.ExportRecordsPerS <= 0 {
		t.Errorf("exported %d and %d records with %d acks, want %d and %d", r.ExportBigRecords, r.ExportSmallRecords, r.ExportAcks,
			r.BigTenantRecords, r.SmallTenantRecords)
	}
	if r.EraseRetentionRecords <= 0 || r.RetentionTenantRemains <= 0 || r.EraseRetentionBatches < 1 {
		t.Errorf("retention erasure: %d erased in %d batches, %d remain: want some of each",
			r.EraseRetentionRecords, r.EraseRetentionBatches, r.RetentionTenantRemains)
	}
	if r.EraseTenantRecords != int64(r.BigTenantRecords) || r.IndexForgotten != r.BigTenantRecords {
		t.Errorf("tenant erasure: %d erased, %d forgotten, want %d", r.EraseTenantRecords, r.IndexForgotten, r.BigTenantRecords)
	}
	// Only the two erasures took records away: the other tenants are intact.
	if want := int64(r.Records) - r.EraseRetentionRecords - r.EraseTenantRecords; r.RemainingRecords != want {
		t.Errorf("%d records remain, want %d", r.RemainingRecords, want)
	}

	var out bytes.Buffer
	if err := WriteTenantsReport(&out, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("the last line is not JSON: %v\n%s", err, out.String())
	}
	for _, k := range []string{
		"tenants", "records", "record_per_s", "store_bytes", "index_build_s", "search_p50_ms", "search_p99_ms",
		"export_big_tenant_s", "export_records_per_s", "erase_tenant_s", "vacuum_s", "store", "passed",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if m["store"] != o.Store && !(o.Store == "" && m["store"] == TenantsStoreSQLite) {
		t.Errorf("store %v", m["store"])
	}
}

func TestTenantsSQLiteTiny(t *testing.T) {
	o := tinyTenants(t.TempDir())
	var log strings.Builder
	r, err := Tenants(t.Context(), o, func(s string) { log.WriteString(s + "\n") })
	if err != nil {
		t.Fatalf("Tenants: %v\nlog:\n%s", err, log.String())
	}
	checkTenantsReport(t, r, o, log.String())
	if r.VacuumS <= 0 || r.StoreBytesAfter >= r.StoreBytes {
		t.Errorf("vacuum %v s, store %d -> %d bytes: want it to shrink", r.VacuumS, r.StoreBytes, r.StoreBytesAfter)
	}
	for _, bad := range []TenantsOptions{
		{Tenants: 2},
		{Tenants: 5, Records: 4},
		{Store: "mysql"},
		{Store: TenantsStorePostgres},
		{History: time.Hour, Keep: 2 * time.Hour},
	} {
		if _, err := Tenants(t.Context(), bad, nil); err == nil {
			t.Errorf("Tenants(%+v) accepted", bad)
		}
	}
}

// TestTenantsPostgresTiny runs the tiny benchmark on PostgreSQL when
// TAXLINK_TEST_PG_DSN or TAXLINK_TEST_POSTGRES_DSN names a server (under
// TAXLINK_TEST_STRICT=1 the default local server is tried, and a server
// that does not answer fails the test).
func TestTenantsPostgresTiny(t *testing.T) {
	dsn := os.Getenv("TAXLINK_TEST_PG_DSN")
	if dsn == "" {
		dsn = os.Getenv("TAXLINK_TEST_POSTGRES_DSN")
	}
	strict := os.Getenv("TAXLINK_TEST_STRICT") == "1"
	if dsn == "" {
		if !strict {
			t.Skip("set TAXLINK_TEST_POSTGRES_DSN to run the PostgreSQL variant")
		}
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	cancel()
	if err != nil {
		if strict {
			t.Fatalf("PostgreSQL unreachable (TAXLINK_TEST_STRICT=1): %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	conn.Close(context.Background())

	o := tinyTenants(t.TempDir())
	o.Store, o.DSN = TenantsStorePostgres, dsn
	var log strings.Builder
	r, err := Tenants(t.Context(), o, func(s string) { log.WriteString(s + "\n") })
	if err != nil {
		t.Fatalf("Tenants: %v\nlog:\n%s", err, log.String())
	}
	checkTenantsReport(t, r, o, log.String())
	if !strings.Contains(log.String(), "dropped") {
		t.Errorf("the schema was not dropped:\n%s", log.String())
	}
}

// TestTenantsScale is the full benchmark, run only when
// TAXLINK_BENCH_TENANTS and TAXLINK_BENCH_RECORDS are set (e.g. 200 and
// 100000); TAXLINK_BENCH_STORE=postgres with TAXLINK_BENCH_DSN selects
// PostgreSQL, TAXLINK_BENCH_DIR keeps the run's files. It prints what
// `taxlink bench tenants` prints: progress on stderr, the table and the
// JSON line on stdout. Give go test a long -timeout.
func TestTenantsScale(t *testing.T) {
	tenants, records := os.Getenv("TAXLINK_BENCH_TENANTS"), os.Getenv("TAXLINK_BENCH_RECORDS")
	if tenants == "" || records == "" {
		t.Skip("set TAXLINK_BENCH_TENANTS and TAXLINK_BENCH_RECORDS to run the scale benchmark")
	}
	var o TenantsOptions
	var err error
	if o.Tenants, err = strconv.Atoi(tenants); err != nil {
		t.Fatal(err)
	}
	if o.Records, err = strconv.Atoi(records); err != nil {
		t.Fatal(err)
	}
	o.Store, o.DSN, o.Dir = os.Getenv("TAXLINK_BENCH_STORE"), os.Getenv("TAXLINK_BENCH_DSN"), os.Getenv("TAXLINK_BENCH_DIR")
	r, err := Tenants(t.Context(), o, func(s string) { os.Stderr.WriteString("taxlink bench tenants: " + s + "\n") })
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTenantsReport(os.Stdout, r); err != nil {
		t.Fatal(err)
	}
	if !r.Passed {
		t.Errorf("failures: %q", r.Failures)
	}
}
