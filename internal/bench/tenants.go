package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"taxlink/internal/audit"
	"taxlink/internal/envelope"
	"taxlink/internal/export"
	"taxlink/internal/ledger"
	"taxlink/internal/lgdata"
	"taxlink/internal/notekey"
	"taxlink/internal/receipt"
	"taxlink/internal/retention"
	"taxlink/internal/searchindex"
	"taxlink/internal/store"
	"taxlink/internal/store/postgres"
	"taxlink/internal/store/sqlite"
	"taxlink/internal/synth"
)

// Stores [Tenants] can measure (TenantsOptions.Store).
const (
	// TenantsStoreSQLite is store/sqlite: one database file in the run's
	// directory, WAL with synchronous=FULL and secure_delete, as a node
	// runs it.
	TenantsStoreSQLite = "sqlite"
	// TenantsStorePostgres is store/postgres in a fresh schema of the
	// database named by TenantsOptions.DSN, dropped at the end.
	TenantsStorePostgres = "postgres"
)

// Identities the scale benchmark plays. The node is a certified
// outsourcer's node hosting every tenant; the sender is the National Tax
// Agency.
const (
	tnNodeID = "corp:8700150012345"
	tnSender = "nta:hq"
)

// TenantsOptions configures [Tenants]. The zero value of a field means its
// default.
type TenantsOptions struct {
	// Tenants is the number of tenants (local governments) the node hosts
	// (default 200, at least 3, at most the number of municipalities in
	// lgdata). They are real municipality codes: a few designated cities,
	// a third of ordinary cities, the rest towns and villages.
	Tenants int
	// Records is the number of notifications recorded (default 100,000,
	// at least Tenants). They are spread over the tenants by a Zipf law of
	// exponent Skew over the tenants ranked as above, each tenant getting
	// at least one, and interleaved in time.
	Records int
	// Store is TenantsStoreSQLite (default) or TenantsStorePostgres.
	Store string
	// DSN names the PostgreSQL database (libpq string or URL); required
	// for TenantsStorePostgres, ignored otherwise. The run creates a fresh
	// schema there and drops it at the end.
	DSN string
	// Dir is where the run writes (store, search index, audit log, export
	// cursors); it must be empty or not exist, and is kept. Empty: a new
	// temporary directory, removed at the end.
	Dir string
	// Seed determines the tenants, the distribution and every synthetic
	// document (default 1). Sealing keys and envelope encryption are
	// random regardless.
	Seed uint64
	// Skew is the Zipf exponent of the records per tenant (default 1.0:
	// the largest tenant gets about Tenants times as many as the
	// smallest).
	Skew float64
	// PDFMin and PDFMax bound the size in bytes of the PDF scans, about
	// one notification in ten (defaults 20,000 and 60,000; the rest are
	// XML of a few KB). Where synth.Generator.Next gives a scan of
	// 150–500 KB it is replaced by a generic one of this size
	// (Generator.PDF), whose tax year the index cannot read.
	PDFMin, PDFMax int
	// Concurrency is the number of goroutines recording at once, as
	// concurrent deliveries would (default 4).
	Concurrency int
	// IndexWorkers is the number of tenants indexed at once (default
	// GOMAXPROCS).
	IndexWorkers int
	// Queries is the number of searches within one tenant timed, half by
	// taxpayer number and half by type and tax year (default 1,000); a
	// tenth as many searches by taxpayer across all tenants are timed
	// apart.
	Queries int
	// ExportConcurrency is the number of records of a page the export
	// client fetches at once (default 4).
	ExportConcurrency int
	// History is the span of recording times the records are spread over,
	// ending at the start of the run (default 3 × 365 days), and Keep the
	// retention period of the retention-style erasure (default 2 × 365
	// days): it erases the records of one tenant recorded before the
	// start minus Keep. Keep must be shorter than History.
	History, Keep time.Duration
	// Calibrate is how long the fsync probe (F, serial 8 KiB
	// write+fdatasync in Dir) runs (default 1s); negative skips it.
	Calibrate time.Duration
}

func (o *TenantsOptions) defaults() error {
	if o.Tenants == 0 {
		o.Tenants = 200
	}
	if o.Records == 0 {
		o.Records = 100_000
	}
	if o.Store == "" {
		o.Store = TenantsStoreSQLite
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Skew == 0 {
		o.Skew = 1
	}
	if o.PDFMin == 0 {
		o.PDFMin = 20_000
	}
	if o.PDFMax == 0 {
		o.PDFMax = 60_000
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.IndexWorkers == 0 {
		o.IndexWorkers = runtime.GOMAXPROCS(0)
	}
	if o.Queries == 0 {
		o.Queries = 1000
	}
	if o.ExportConcurrency == 0 {
		o.ExportConcurrency = 4
	}
	if o.History == 0 {
		o.History = 3 * 365 * 24 * time.Hour
	}
	if o.Keep == 0 {
		o.Keep = 2 * 365 * 24 * time.Hour
	}
	if o.Calibrate == 0 {
		o.Calibrate = time.Second
	}
	switch {
	case o.Tenants < 3:
		return fmt.Errorf("bench: tenants: %d, want at least 3", o.Tenants)
	case o.Records < o.Tenants:
		return fmt.Errorf("bench: records: %d, want at least one per tenant (%d)", o.Records, o.Tenants)
	case o.Store != TenantsStoreSQLite && o.Store != TenantsStorePostgres:
		return fmt.Errorf("bench: store %q: want %s or %s", o.Store, TenantsStoreSQLite, TenantsStorePostgres)
	case o.Store == TenantsStorePostgres && o.DSN == "":
		return errors.New("bench: the postgres store needs a DSN")
	case o.Skew < 0 || math.IsNaN(o.Skew) || math.IsInf(o.Skew, 0):
		return fmt.Errorf("bench: skew: %v", o.Skew)
	case o.PDFMin < 1 || o.PDFMax < o.PDFMin || o.PDFMax > 50<<20:
		return fmt.Errorf("bench: PDF sizes %d..%d", o.PDFMin, o.PDFMax)
	case o.Concurrency < 1 || o.IndexWorkers < 1 || o.Queries < 2 || o.ExportConcurrency < 1:
		return fmt.Errorf("bench: concurrency %d, index workers %d, queries %d, export concurrency %d: want positive (queries at least 2)",
			o.Concurrency, o.IndexWorkers, o.Queries, o.ExportConcurrency)
	case o.History <= 0 || o.Keep <= 0 || o.Keep >= o.History:
		return fmt.Errorf("bench: history %v, keep %v: want 0 < keep < history", o.History, o.Keep)
	}
	return nil
}

// TenantsReport is the outcome of [Tenants]. Its JSON form is the last
// line `taxlink bench tenants` prints. Times are wall-clock seconds or
// milliseconds measured in this process; sizes are bytes. Tenant IDs are
// local governments' participant IDs (public codes); nothing of a payload
// appears.
type TenantsReport struct {
	// Store is "sqlite" or "postgres".
	Store string `json:"store"`
	Host  Host   `json:"host"`
	Seed  uint64 `json:"seed"`

	// Tenants and Records are the population recorded; Skew its Zipf
	// exponent. BigTenant and SmallTenant are the tenants with the most
	// and the fewest records, MedianTenantRecords the median count.
	Tenants             int     `json:"tenants"`
	Records             int     `json:"records"`
	Skew                float64 `json:"skew"`
	BigTenant           string  `json:"big_tenant"`
	BigTenantRecords    int     `json:"big_tenant_records"`
	SmallTenant         string  `json:"small_tenant"`
	SmallTenantRecords  int     `json:"small_tenant_records"`
	MedianTenantRecords int     `json:"median_tenant_records"`
	// PDFs is how many of the records are PDF scans (the rest XML);
	// PayloadBytes and CiphertextBytes their total plaintext and sealed
	// sizes.
	PDFs            int   `json:"pdfs"`
	PayloadBytes    int64 `json:"payload_bytes"`
	CiphertextBytes int64 `json:"ciphertext_bytes"`
	// GenerateS is the time spent generating, sealing and signing (not
	// part of the recording time).
	GenerateS float64 `json:"generate_s"`

	// FsyncPerS is F: serial 8 KiB write+fdatasync in the run's
	// directory (0 when skipped). For postgres the server's disk is
	// what counts; it is the same machine in the usual setup.
	FsyncPerS float64 `json:"fsync_per_s"`
	// RecordS is the time spent in store.Record, RecordConcurrency
	// goroutines at a time; RecordPerS = Records / RecordS, and
	// RatioRecordFsync = RecordPerS / FsyncPerS. RecordP50MS and
	// RecordP99MS are the latencies of one Record call (queueing for the
	// store's serialized commit included).
	RecordS           float64 `json:"record_s"`
	RecordPerS        float64 `json:"record_per_s"`
	RecordConcurrency int     `json:"record_concurrency"`
	RatioRecordFsync  float64 `json:"ratio_record_fsync"`
	RecordP50MS       float64 `json:"record_p50_ms"`
	RecordP99MS       float64 `json:"record_p99_ms"`
	// StoreBytes is the store's size once everything is recorded: the
	// database file with its WAL and shared-memory files for sqlite, the
	// schema's tables with their TOAST and indexes
	// (pg_total_relation_size) for postgres. StoreBytesPerRecord divides
	// it by Records.
	StoreBytes          int64   `json:"store_bytes"`
	StoreBytesPerRecord float64 `json:"store_bytes_per_record"`

	// IndexBuildS is the time searchindex.Sync took to index every
	// tenant from scratch (opening every payload with the tenant's
	// sealing key), IndexWorkers tenants at a time; IndexPerS = Records /
	// IndexBuildS. IndexBytes is the index file's size, IndexUnindexed
	// the entries whose payload could not be read (want 0).
	IndexBuildS    float64 `json:"index_build_s"`
	IndexPerS      float64 `json:"index_records_per_s"`
	IndexWorkers   int     `json:"index_workers"`
	IndexBytes     int64   `json:"index_bytes"`
	IndexUnindexed int     `json:"index_unindexed"`

	// Searches is the number of timed searches within one tenant (tenants
	// drawn in proportion to their records): half by taxpayer number
	// (blind index), half by message type and tax year. SearchP50MS and
	// SearchP99MS cover both; the kinds are also given apart.
	// SearchesFound counts those that found what they looked for (want
	// all). SearchAllTenants* are searches by taxpayer number across all
	// tenants at once, as an operator's console would.
	Searches               int     `json:"searches"`
	SearchesFound          int     `json:"searches_found"`
	SearchP50MS            float64 `json:"search_p50_ms"`
	SearchP99MS            float64 `json:"search_p99_ms"`
	SearchTaxpayerP50MS    float64 `json:"search_taxpayer_p50_ms"`
	SearchTaxpayerP99MS    float64 `json:"search_taxpayer_p99_ms"`
	SearchTypeYearP50MS    float64 `json:"search_type_year_p50_ms"`
	SearchTypeYearP99MS    float64 `json:"search_type_year_p99_ms"`
	SearchAllTenants       int     `json:"search_all_tenants"`
	SearchAllTenantsP50MS  float64 `json:"search_all_tenants_p50_ms"`
	SearchAllTenantsP99MS  float64 `json:"search_all_tenants_p99_ms"`
	SearchAllTenantsFound  int     `json:"search_all_tenants_found"`
	SearchAllTenantsTenant int     `json:"search_all_tenants_tenants"`

	// Export: every record of BigTenant, then of SmallTenant, taken over
	// through export.Server's handler called in process (an
	// httptest.ResponseRecorder: no TCP, no TLS; the client certificate
	// is handed to the handler as a verified peer certificate, so the
	// figures leave out the mTLS transport). Per page of export.MaxLimit:
	// one list, the records fetched ExportConcurrency at a time (each
	// opened with the tenant's key and audited), one acknowledgement.
	ExportBigTenantS     float64 `json:"export_big_tenant_s"`
	ExportBigRecords     int     `json:"export_big_records"`
	ExportRecordsPerS    float64 `json:"export_records_per_s"`
	ExportMBPerS         float64 `json:"export_mb_per_s"`
	ExportSmallTenantS   float64 `json:"export_small_tenant_s"`
	ExportSmallRecords   int     `json:"export_small_records"`
	ExportFetchP50MS     float64 `json:"export_fetch_p50_ms"`
	ExportFetchP99MS     float64 `json:"export_fetch_p99_ms"`
	ExportListP50MS      float64 `json:"export_list_p50_ms"`
	ExportAckP50MS       float64 `json:"export_ack_p50_ms"`
	ExportAcks           int     `json:"export_acks"`
	ExportConcurrency    int     `json:"export_concurrency"`
	ExportTransportNotes string  `json:"export_transport"`

	// Retention-style erasure of RetentionTenant (the second largest):
	// its records recorded before RetentionCutoff, in batches of
	// retention.BatchSize, each batch audited and removed from the search
	// index, as the retention job and the console's erasure do.
	RetentionTenant        string    `json:"retention_tenant"`
	RetentionCutoff        time.Time `json:"retention_cutoff"`
	EraseRetentionRecords  int64     `json:"erase_retention_records"`
	EraseRetentionBatches  int       `json:"erase_retention_batches"`
	EraseRetentionS        float64   `json:"erase_retention_s"`
	EraseRetentionStoreS   float64   `json:"erase_retention_store_s"`
	EraseRetentionPerS     float64   `json:"erase_retention_records_per_s"`
	RetentionTenantRemains int64     `json:"retention_tenant_remaining"`

	// Whole-tenant erasure of BigTenant, as a decommission does: every
	// record erased in batches of store.MaxEraseLimit (EraseTenantS),
	// then the store's Vacuum (VacuumS), then the index's Forget
	// (IndexForgetS); DecommissionS is the three together.
	// StoreBytesAfter is the store's size afterwards.
	EraseTenantRecords int64   `json:"erase_tenant_records"`
	EraseTenantBytes   int64   `json:"erase_tenant_ciphertext_bytes"`
	EraseTenantS       float64 `json:"erase_tenant_s"`
	VacuumS            float64 `json:"vacuum_s"`
	IndexForgetS       float64 `json:"index_forget_s"`
	IndexForgotten     int     `json:"index_forgotten"`
	DecommissionS      float64 `json:"decommission_s"`
	StoreBytesAfter    int64   `json:"store_bytes_after"`
	// RemainingRecords is the store's count at the end.
	RemainingRecords int64 `json:"remaining_records"`

	// TotalS is the whole run's wall-clock time. LoadAvgStart and
	// LoadAvgEnd are the machine's 1-minute load average (/proc/loadavg,
	// -1 where unknown) at the start and the end: on a shared machine a
	// load above its CPUs means the figures are pessimistic.
	TotalS       float64 `json:"total_s"`
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
	// Passed is true when every consistency check held: counts per
	// tenant after recording, indexing, export and each erasure, every
	// search finding its record, the other tenants left intact.
	// Failures says which did not.
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// tnTenant is one tenant of the run.
type tnTenant struct {
	id      string // participant ID
	gov     lgdata.Government
	keyID   string
	key     hpke.PrivateKey
	ixKey   searchindex.Key
	planned int // records generated for it
	old     int // of which recorded before the retention cutoff
}

// tnSample is what a search looks for: fields of one generated record, kept
// in memory only (never printed).
type tnSample struct {
	tenant   int
	taxpayer string
	typ      string
	year     int
}

// tnItem is one generated envelope, ready to be recorded.
type tnItem struct {
	rec    store.Record
	hdr    *envelope.Header
	ct     []byte
	pdf    bool
	sample *tnSample
}

// tnRun is the state of one run of Tenants.
type tnRun struct {
	notes
	o        TenantsOptions
	dir      string
	start    time.Time
	cutoff   time.Time
	tenants  []*tnTenant
	byID     map[string]*tnTenant
	plan     []int32 // tenant of record i
	st       store.Inbox
	ix       *searchindex.Index
	al       *audit.Log
	sender   *ecdsa.PrivateKey
	node     *ecdsa.PrivateKey
	samples  []tnSample
	rep      TenantsReport
	pgSchema string
	pgDSN    string
}

// Tenants measures a node's store at scale: it records o.Records real
// sealed envelopes of synthetic notifications (package synth) for
// o.Tenants tenants with one sealing key each, through store.Record exactly
// as a node's delivery does (canonical header, the sender's ECDSA
// signature, a signed recording receipt; durability as configured by the
// store), then times building the search index of every tenant, searches,
// the export API taking over every record of the largest and of the
// smallest tenant, a retention-style erasure of part of one tenant and the
// whole-tenant erasure (with the store's Vacuum and the index's Forget) of
// the largest tenant. See [TenantsOptions] and [TenantsReport].
//
// progress, if not nil, receives progress lines (no payload data, no
// taxpayer identifiers). Tenants returns an error when the run cannot be
// carried out (bad options, a store that cannot be opened, a failed
// operation); a completed run whose consistency checks failed returns the
// report with Passed false and nil. Everything it writes goes to o.Dir (or
// a temporary directory it removes) and, for postgres, to a fresh schema
// it drops at the end.
func Tenants(ctx context.Context, o TenantsOptions, progress func(string)) (TenantsReport, error) {
	if err := o.defaults(); err != nil {
		return TenantsReport{}, err
	}
	b := &tnRun{o: o, start: time.Now().UTC().Truncate(time.Millisecond)}
	b.notes = notes{progress, &b.rep.Failures}
	b.cutoff = b.start.Add(-o.Keep)
	b.rep = TenantsReport{
		Store: o.Store, Host: hostFacts(), Seed: o.Seed, Tenants: o.Tenants, Records: o.Records, Skew: o.Skew,
		RecordConcurrency: o.Concurrency, IndexWorkers: o.IndexWorkers, ExportConcurrency: o.ExportConcurrency,
		ExportTransportNotes: "in-process handler (httptest.ResponseRecorder): no TCP, no TLS/mTLS",
		RetentionCutoff:      b.cutoff, LoadAvgStart: tnLoadAvg(),
	}
	dir, cleanup, err := tnWorkDir(o.Dir)
	if err != nil {
		return TenantsReport{}, err
	}
	defer cleanup()
	b.dir = dir
	err = b.run(ctx)
	if cerr := b.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return TenantsReport{}, err
	}
	b.rep.TotalS = time.Since(b.start).Seconds()
	b.rep.LoadAvgEnd = tnLoadAvg()
	b.rep.Passed = len(b.rep.Failures) == 0
	return b.rep, nil
}

// tnLoadAvg returns the 1-minute load average, -1 where unknown.
func tnLoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return -1
	}
	return v
}

// tnWorkDir returns the run's directory and what removes it: dir itself,
// which must be empty or not exist and is kept, or a new temporary one.
func tnWorkDir(dir string) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "taxlink-bench-tenants-")
		if err != nil {
			return "", nil, fmt.Errorf("bench: %w", err)
		}
		return d, func() { os.RemoveAll(d) }, nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("bench: %w", err)
		}
	case err != nil:
		return "", nil, fmt.Errorf("bench: %w", err)
	case len(ents) > 0:
		return "", nil, fmt.Errorf("bench: %s is not empty", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	return abs, func() {}, nil
}

func (b *tnRun) run(ctx context.Context) error {
	o := b.o
	if err := b.setup(ctx); err != nil {
		return err
	}
	if o.Calibrate > 0 {
		f, err := FsyncRate(ctx, b.dir, ProbeSize, o.Calibrate)
		if err != nil {
			return err
		}
		b.rep.FsyncPerS = f.PerS
		b.logf("F: %.0f fsync/s (8 KiB write+fdatasync in %s)", f.PerS, b.dir)
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"record", b.record},
		{"index", b.index},
		{"search", b.search},
		{"export", b.export},
		{"retention erasure", b.eraseRetention},
		{"tenant erasure", b.eraseTenant},
		{"final checks", b.finalChecks},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("bench: tenants: %s: %w", s.name, err)
		}
	}
	return nil
}

// setup chooses the tenants and their keys, plans the records and opens
// the store, the index and the audit log.
func (b *tnRun) setup(ctx context.Context) error {
	o := b.o
	govs, err := tnChooseTenants(o.Tenants, o.Seed)
	if err != nil {
		return err
	}
	counts := tnZipfCounts(o.Records, o.Tenants, o.Skew)
	b.byID = make(map[string]*tnTenant, len(govs))
	for i, g := range govs {
		key, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		t := &tnTenant{
			id: g.ParticipantID(), gov: g, keyID: "lg-" + g.Code + "-1", key: key,
			ixKey: searchindex.DeriveKey(secret, g.ParticipantID()), planned: counts[i],
		}
		b.tenants = append(b.tenants, t)
		b.byID[t.id] = t
	}
	// Interleave the records of all tenants in time.
	b.plan = make([]int32, 0, o.Records)
	for i, n := range counts {
		for range n {
			b.plan = append(b.plan, int32(i))
		}
	}
	rng := mrand.New(mrand.NewPCG(o.Seed, 0x7465_6e61_6e74))
	rng.Shuffle(len(b.plan), func(i, j int) { b.plan[i], b.plan[j] = b.plan[j], b.plan[i] })
	for i, t := range b.plan {
		if b.recordedAt(i).Before(b.cutoff) {
			b.tenants[t].old++
		}
	}
	big, small := b.tenants[0], b.tenants[len(b.tenants)-1]
	sorted := slices.Clone(counts)
	slices.Sort(sorted)
	b.rep.BigTenant, b.rep.BigTenantRecords = big.id, big.planned
	b.rep.SmallTenant, b.rep.SmallTenantRecords = small.id, small.planned
	b.rep.MedianTenantRecords = sorted[len(sorted)/2]
	b.rep.RetentionTenant = b.tenants[1].id
	b.logf("tenants: %d (largest %s: %d records, median %d, smallest %s: %d); records: %d",
		o.Tenants, big.id, big.planned, b.rep.MedianTenantRecords, small.id, small.planned, o.Records)

	if b.sender, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if b.node, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	switch o.Store {
	case TenantsStorePostgres:
		var suffix [6]byte
		if _, err := rand.Read(suffix[:]); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		b.pgSchema, b.pgDSN = "bench_tenants_"+hex.EncodeToString(suffix[:]), o.DSN
		st, err := postgres.Open(ctx, o.DSN, postgres.WithSchema(b.pgSchema), postgres.WithSpoolDir(b.dir))
		if err != nil {
			b.dropSchema()
			return fmt.Errorf("bench: %w", err)
		}
		b.st = st
		b.logf("store: postgres, schema %s (dropped at the end)", b.pgSchema)
	default:
		st, err := sqlite.Open(filepath.Join(b.dir, "node.db"))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		b.st = st
		b.logf("store: sqlite, %s", filepath.Join(b.dir, "node.db"))
	}
	if b.ix, err = searchindex.Open(filepath.Join(b.dir, "index.db")); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	signer, err := notekey.NewSigner(tnNodeID, b.node)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	verifier, err := notekey.NewVerifier(tnNodeID, &b.node.PublicKey)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	b.al, err = audit.Open(filepath.Join(b.dir, "audit"), ledger.Options{
		Origin: "taxlink/bench/" + tnNodeID + "/audit", Signer: signer, Verifier: verifier,
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// close releases what setup opened and drops the postgres schema.
func (b *tnRun) close() error {
	var errs []error
	if b.al != nil {
		errs = append(errs, b.al.Close())
	}
	if b.ix != nil {
		errs = append(errs, b.ix.Close())
	}
	if b.st != nil {
		errs = append(errs, b.st.Close())
	}
	if b.pgSchema != "" {
		errs = append(errs, b.dropSchema())
	}
	return errors.Join(errs...)
}

// dropSchema drops the run's postgres schema.
func (b *tnRun) dropSchema() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.pgDSN)
	if err != nil {
		return fmt.Errorf("bench: dropping schema %s: %w", b.pgSchema, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{b.pgSchema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("bench: dropping schema %s: %w", b.pgSchema, err)
	}
	b.logf("store: schema %s dropped", b.pgSchema)
	return nil
}

// tnChooseTenants returns n municipalities of lgdata ranked for the Zipf
// law: first about n/25 designated cities (at least one), then about a
// third ordinary cities and Tokyo's special wards, then towns and villages;
// each group shuffled by seed. A group too small is made up from the next.
func tnChooseTenants(n int, seed uint64) ([]lgdata.Government, error) {
	all, err := lgdata.All()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var groups [3][]lgdata.Government
	for _, g := range all {
		switch g.Kind {
		case lgdata.KindDesignatedCity:
			groups[0] = append(groups[0], g)
		case lgdata.KindCity, lgdata.KindSpecialWard:
			groups[1] = append(groups[1], g)
		case lgdata.KindTown, lgdata.KindVillage:
			groups[2] = append(groups[2], g)
		}
	}
	if total := len(groups[0]) + len(groups[1]) + len(groups[2]); n > total {
		return nil, fmt.Errorf("bench: tenants: %d, there are %d municipalities", n, total)
	}
	rng := mrand.New(mrand.NewPCG(seed, 0x6c67))
	for _, g := range groups {
		rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
	}
	want := [3]int{max(1, n/25), n * 35 / 100, 0}
	want[2] = n - want[0] - want[1]
	var take [3]int
	short := 0
	for i := range groups {
		take[i] = min(want[i], len(groups[i]))
		short += want[i] - take[i]
	}
	for i := range groups { // make up for groups too small
		extra := min(short, len(groups[i])-take[i])
		take[i] += extra
		short -= extra
	}
	var out []lgdata.Government
	for i := range groups {
		out = append(out, groups[i][:take[i]]...)
	}
	return out, nil
}

// tnZipfCounts splits records over n ranked tenants: one each, the rest in
// proportion to 1/rank^skew, remainders to the largest fractions.
func tnZipfCounts(records, n int, skew float64) []int {
	w := make([]float64, n)
	var sum float64
	for r := range n {
		w[r] = 1 / math.Pow(float64(r+1), skew)
		sum += w[r]
	}
	rest := records - n
	counts := make([]int, n)
	frac := make([]float64, n)
	given := 0
	for r := range n {
		share := float64(rest) * w[r] / sum
		counts[r] = 1 + int(share)
		frac[r] = share - math.Floor(share)
		given += int(share)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case frac[a] > frac[b]:
			return -1
		case frac[a] < frac[b]:
			return 1
		}
		return a - b
	})
	for i := 0; given < rest; i++ {
		counts[order[i%n]]++
		given++
	}
	return counts
}

// recordedAt is the recording time of record i: the records are spread
// evenly over History, ending at the start of the run.
func (b *tnRun) recordedAt(i int) time.Time {
	step := b.o.History / time.Duration(b.o.Records)
	return b.start.Add(-b.o.History + time.Duration(i)*step).Truncate(time.Millisecond)
}

// tnBatch is how many envelopes are generated, then recorded, at a time.
const tnBatch = 1000

// record generates and records every envelope, batch by batch: a batch is
// generated (in parallel, untimed), then recorded by o.Concurrency
// goroutines (timed), so that generation never throttles the store.
func (b *tnRun) record(ctx context.Context) error {
	o := b.o
	stride := max(1, o.Records/(2*o.Queries))
	lat := make([]float64, 0, o.Records)
	var recordDur, genDur time.Duration
	items := make([]tnItem, tnBatch)
	nextLog := o.Records / 10
	for first := 0; first < o.Records; first += tnBatch {
		n := min(tnBatch, o.Records-first)
		t0 := time.Now()
		if err := b.generate(ctx, first, items[:n], stride); err != nil {
			return err
		}
		genDur += time.Since(t0)
		for i := range items[:n] {
			it := &items[i]
			if it.pdf {
				b.rep.PDFs++
			}
			b.rep.PayloadBytes += int64(it.hdr.PayloadSize)
			b.rep.CiphertextBytes += int64(len(it.ct))
			if it.sample != nil {
				b.samples = append(b.samples, *it.sample)
			}
		}
		t0 = time.Now()
		l, err := b.recordBatch(ctx, items[:n])
		recordDur += time.Since(t0)
		if err != nil {
			return err
		}
		lat = append(lat, l...)
		if done := first + n; done >= nextLog || done == o.Records {
			b.logf("record: %d/%d, %.0f records/s (generating: %.0f s so far)", done, o.Records,
				float64(done)/recordDur.Seconds(), genDur.Seconds())
			nextLog += o.Records / 10
		}
		clear(items)
	}
	b.rep.GenerateS = genDur.Seconds()
	b.rep.RecordS = recordDur.Seconds()
	b.rep.RecordPerS = float64(o.Records) / recordDur.Seconds()
	if b.rep.FsyncPerS > 0 {
		b.rep.RatioRecordFsync = b.rep.RecordPerS / b.rep.FsyncPerS
	}
	b.rep.RecordP50MS = percentile(lat, 50)
	b.rep.RecordP99MS = percentile(lat, 99)

	size, err := b.storeBytes(ctx)
	if err != nil {
		return err
	}
	b.rep.StoreBytes = size
	b.rep.StoreBytesPerRecord = float64(size) / float64(o.Records)
	b.logf("record: %d records (%d PDFs) in %.1f s, %.0f/s; store %.1f MB (%.0f bytes/record, ciphertext %.1f MB)",
		o.Records, b.rep.PDFs, b.rep.RecordS, b.rep.RecordPerS, float64(size)/1e6, b.rep.StoreBytesPerRecord, float64(b.rep.CiphertextBytes)/1e6)

	total, err := b.st.Count(ctx, "")
	if err != nil {
		return err
	}
	if total != int64(o.Records) {
		b.fail("after recording the store counts %d records, want %d", total, o.Records)
	}
	for _, t := range b.tenants {
		n, err := b.st.Count(ctx, t.id)
		if err != nil {
			return err
		}
		if n != int64(t.planned) {
			b.fail("after recording %s has %d records, want %d", t.id, n, t.planned)
		}
	}
	return nil
}

// generate fills items with the envelopes of records first.. in parallel.
// Record i is determined by the seed and i alone (its sealing is random).
func (b *tnRun) generate(ctx context.Context, first int, items []tnItem, stride int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(items) {
					return
				}
				i := first + k
				if err := b.generateOne(i, &items[k], i%stride == 0); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// generateOne makes record i's envelope: a synthetic notification for its
// tenant (PDF scans replaced by a small one), sealed to the tenant's key,
// signed by the sender, with the node's signed recording receipt.
func (b *tnRun) generateOne(i int, it *tnItem, sample bool) error {
	ti := int(b.plan[i])
	t := b.tenants[ti]
	rng := mrand.New(mrand.NewPCG(b.o.Seed, uint64(i)))
	g := synth.NewGenerator(rng.Uint64())
	n := g.Next(t.gov.Name, t.gov.Prefecture)
	body, pdf := n.Body, n.ContentType == synth.ContentTypePDF
	if pdf {
		body = g.PDF(b.o.PDFMin + rng.IntN(b.o.PDFMax-b.o.PDFMin+1))
	}
	recorded := b.recordedAt(i)
	created := recorded.Add(-time.Duration(1+rng.IntN(3600)) * time.Second)
	var id ulid.ULID
	var entropy [10]byte
	for k := range entropy {
		entropy[k] = byte(rng.Uint32())
	}
	if err := id.SetTime(ulid.Timestamp(created)); err != nil {
		return fmt.Errorf("bench: ulid: %w", err)
	}
	if err := id.SetEntropy(entropy[:]); err != nil {
		return fmt.Errorf("bench: ulid: %w", err)
	}
	h := &envelope.Header{
		ID: id.String(), Type: n.Type, Sender: tnSender, Recipient: t.id,
		Created: created, ContentType: n.ContentType, KeyID: t.keyID,
	}
	var ct bytes.Buffer
	ct.Grow(len(body) + 4096)
	if err := envelope.Seal(t.key.PublicKey(), h, bytes.NewReader(body), &ct); err != nil {
		return fmt.Errorf("bench: seal: %w", err)
	}
	hb, err := h.MarshalBinary()
	if err != nil {
		return fmt.Errorf("bench: header: %w", err)
	}
	sig, err := envelope.Sign(b.sender, hb)
	if err != nil {
		return fmt.Errorf("bench: sign: %w", err)
	}
	rc := &receipt.Receipt{
		Kind: receipt.Recorded, EnvelopeID: h.ID, Type: h.Type, Sender: h.Sender, Recipient: h.Recipient,
		HeaderDigest: receipt.HeaderDigest(hb), Issuer: tnNodeID, Time: recorded,
	}
	if err := rc.Sign(b.node); err != nil {
		return fmt.Errorf("bench: receipt: %w", err)
	}
	rj, err := rc.MarshalJSON()
	if err != nil {
		return fmt.Errorf("bench: receipt: %w", err)
	}
	*it = tnItem{
		rec: store.Record{
			ID: h.ID, Type: h.Type, Sender: h.Sender, Recipient: h.Recipient,
			Created: h.Created, RecordedAt: recorded, Header: hb, Signature: sig,
			CiphertextSize: int64(h.CiphertextSize), Receipt: rj,
		},
		hdr: h, ct: ct.Bytes(), pdf: pdf,
	}
	if sample {
		f, err := searchindex.Extract(n.ContentType, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("bench: record %d: the synthetic payload does not parse: %w", i, err)
		}
		it.sample = &tnSample{tenant: ti, taxpayer: f.Taxpayer, typ: n.Type, year: f.TaxYear}
	}
	return nil
}

// recordBatch records items with o.Concurrency goroutines, as a node's
// delivery does (the ciphertext through envelope.VerifyingReader), and
// returns the latency of each Record in milliseconds.
func (b *tnRun) recordBatch(ctx context.Context, items []tnItem) ([]float64, error) {
	lat := make([]float64, len(items))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, b.o.Concurrency)
	for w := range errs {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(items) {
					return
				}
				it := &items[k]
				t0 := time.Now()
				_, existed, err := b.st.Record(ctx, it.rec, envelope.VerifyingReader(it.hdr, bytes.NewReader(it.ct)))
				lat[k] = ms(time.Since(t0))
				if err != nil {
					errs[w] = fmt.Errorf("recording %s: %w", it.rec.ID, err)
					return
				}
				if existed {
					errs[w] = fmt.Errorf("recording %s: the ID was already recorded", it.rec.ID)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return lat, errors.Join(errs...)
}

// storeBytes returns the store's size (see TenantsReport.StoreBytes).
func (b *tnRun) storeBytes(ctx context.Context) (int64, error) {
	if b.pgSchema == "" {
		return tnFileBytes(filepath.Join(b.dir, "node.db")), nil
	}
	conn, err := pgx.Connect(ctx, b.pgDSN)
	if err != nil {
		return 0, fmt.Errorf("bench: store size: %w", err)
	}
	defer conn.Close(ctx)
	var size int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`, b.pgSchema).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("bench: store size: %w", err)
	}
	return size, nil
}

// tnFileBytes returns the size of a SQLite database file with its -wal and
// -shm files (those missing count 0).
func tnFileBytes(path string) int64 {
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// open returns the plaintext of record id of tenant, opened with the
// tenant's sealing key as node.Open does, and its header.
func (b *tnRun) open(ctx context.Context, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
	t := b.byID[tenant]
	if t == nil {
		return nil, nil, fmt.Errorf("bench: tenant %s: %w", tenant, store.ErrNotFound)
	}
	rec, err := b.st.Get(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := envelope.ParseHeader(rec.Header)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: stored header of %s: %w", id, err)
	}
	if hdr.KeyID != t.keyID {
		return nil, nil, fmt.Errorf("bench: no sealing key %q for %s", hdr.KeyID, tenant)
	}
	ct, err := b.st.OpenCiphertext(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	pt, err := envelope.Open(t.key, hdr, ct)
	if err != nil {
		ct.Close()
		return nil, nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{pt, ct}, hdr, nil
}

// index builds the search index of every tenant, largest first,
// o.IndexWorkers at a time.
func (b *tnRun) index(ctx context.Context) error {
	opener := func(ctx context.Context, tenant, id string) (io.ReadCloser, string, error) {
		rc, h, err := b.open(ctx, tenant, id)
		if err != nil {
			return nil, "", err
		}
		return rc, h.ContentType, nil
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, b.o.IndexWorkers)
	t0 := time.Now()
	for w := range errs {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(b.tenants) {
					return
				}
				t := b.tenants[k]
				n, err := b.ix.Sync(ctx, b.st, t.id, t.ixKey, opener)
				if err != nil {
					errs[w] = err
					return
				}
				if n != t.planned {
					errs[w] = fmt.Errorf("indexing %s added %d entries, want %d", t.id, n, t.planned)
					return
				}
				if d := done.Add(1); d%int64(max(1, len(b.tenants)/10)) == 0 {
					b.logf("index: %d/%d tenants, %.0f s", d, len(b.tenants), time.Since(t0).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.rep.IndexBuildS = time.Since(t0).Seconds()
	b.rep.IndexPerS = float64(b.o.Records) / b.rep.IndexBuildS
	entries := 0
	for _, t := range b.tenants {
		s, err := b.ix.Status(ctx, t.id)
		if err != nil {
			return err
		}
		entries += s.Entries
		b.rep.IndexUnindexed += s.Unindexed
		if s.Entries != t.planned {
			b.fail("the index holds %d entries of %s, want %d", s.Entries, t.id, t.planned)
		}
	}
	if b.rep.IndexUnindexed != 0 {
		b.fail("%d payloads could not be indexed", b.rep.IndexUnindexed)
	}
	b.rep.IndexBytes = tnFileBytes(filepath.Join(b.dir, "index.db"))
	b.logf("index: %d entries in %.1f s, %.0f records/s; index %.1f MB", entries, b.rep.IndexBuildS, b.rep.IndexPerS, float64(b.rep.IndexBytes)/1e6)
	return nil
}

// search times o.Queries searches within one tenant, alternately by
// taxpayer and by type and tax year, then a tenth as many by taxpayer
// across all tenants. Each looks for a record generated for it.
func (b *tnRun) search(ctx context.Context) error {
	var withTaxpayer []tnSample
	for _, s := range b.samples {
		if s.taxpayer != "" {
			withTaxpayer = append(withTaxpayer, s)
		}
	}
	if len(b.samples) == 0 || len(withTaxpayer) == 0 {
		return errors.New("no sampled records to search for")
	}
	allTenants := make([]string, len(b.tenants))
	allKeys := make(map[string]searchindex.Key, len(b.tenants))
	for i, t := range b.tenants {
		allTenants[i] = t.id
		allKeys[t.id] = t.ixKey
	}
	rng := mrand.New(mrand.NewPCG(b.o.Seed, 0x7365_6172_6368))
	var all, byTaxpayer, byTypeYear, across []float64
	found, foundAcross := 0, 0
	for q := range b.o.Queries {
		var query searchindex.Query
		var keys map[string]searchindex.Key
		var s tnSample
		if q%2 == 0 {
			s = withTaxpayer[rng.IntN(len(withTaxpayer))]
			t := b.tenants[s.tenant]
			query = searchindex.Query{Tenants: []string{t.id}, Taxpayer: s.taxpayer}
			keys = map[string]searchindex.Key{t.id: t.ixKey}
		} else {
			s = b.samples[rng.IntN(len(b.samples))]
			query = searchindex.Query{Tenants: []string{b.tenants[s.tenant].id}, Type: s.typ, TaxYear: s.year}
		}
		t0 := time.Now()
		_, total, err := b.ix.Search(ctx, query, keys)
		d := ms(time.Since(t0))
		if err != nil {
			return err
		}
		all = append(all, d)
		if q%2 == 0 {
			byTaxpayer = append(byTaxpayer, d)
		} else {
			byTypeYear = append(byTypeYear, d)
		}
		if total > 0 {
			found++
		}
	}
	nAcross := max(1, b.o.Queries/10)
	for range nAcross {
		s := withTaxpayer[rng.IntN(len(withTaxpayer))]
		t0 := time.Now()
		entries, _, err := b.ix.Search(ctx, searchindex.Query{Tenants: allTenants, Taxpayer: s.taxpayer}, allKeys)
		across = append(across, ms(time.Since(t0)))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Tenant == b.tenants[s.tenant].id {
				foundAcross++
				break
			}
		}
	}
	r := &b.rep
	r.Searches, r.SearchesFound = b.o.Queries, found
	r.SearchP50MS, r.SearchP99MS = percentile(all, 50), percentile(all, 99)
	r.SearchTaxpayerP50MS, r.SearchTaxpayerP99MS = percentile(byTaxpayer, 50), percentile(byTaxpayer, 99)
	r.SearchTypeYearP50MS, r.SearchTypeYearP99MS = percentile(byTypeYear, 50), percentile(byTypeYear, 99)
	r.SearchAllTenants, r.SearchAllTenantsFound, r.SearchAllTenantsTenant = nAcross, foundAcross, len(allTenants)
	r.SearchAllTenantsP50MS, r.SearchAllTenantsP99MS = percentile(across, 50), percentile(across, 99)
	if found != b.o.Queries {
		b.fail("%d of %d searches within a tenant found nothing", b.o.Queries-found, b.o.Queries)
	}
	if foundAcross != nAcross {
		b.fail("%d of %d searches across all tenants missed the record", nAcross-foundAcross, nAcross)
	}
	b.logf("search: %d within a tenant, p50 %.2f ms, p99 %.2f ms; %d across %d tenants, p50 %.2f ms",
		r.Searches, r.SearchP50MS, r.SearchP99MS, nAcross, len(allTenants), r.SearchAllTenantsP50MS)
	return nil
}

// tnExportClient is one tax system of the export benchmark.
type tnExportClient struct {
	name   string
	tenant *tnTenant
	cert   *x509.Certificate
}

// tnExportStats accumulates the latencies of export requests.
type tnExportStats struct {
	mu               sync.Mutex
	fetch, list, ack []float64
	acks             int
	records          int
	bytes            int64
}

// export takes over every record of the largest and of the smallest tenant
// through export.Server's handler.
func (b *tnRun) export(ctx context.Context) error {
	now := time.Now()
	var clients []tnExportClient
	for _, c := range []struct {
		name   string
		tenant *tnTenant
	}{{"tax-system-big", b.tenants[0]}, {"tax-system-small", b.tenants[len(b.tenants)-1]}} {
		cert, err := tnSelfSigned(c.name, now)
		if err != nil {
			return err
		}
		clients = append(clients, tnExportClient{name: c.name, tenant: c.tenant, cert: cert})
	}
	cursors, err := export.OpenCursors(filepath.Join(b.dir, "export-cursors"))
	if err != nil {
		return err
	}
	cfg := export.Config{
		Store: b.st, Cursors: cursors, Audit: b.al,
		Open: func(ctx context.Context, _, _, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
			return b.open(ctx, tenant, id)
		},
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, c := range clients {
		sum := sha256Hex(c.cert.Raw)
		cfg.Clients = append(cfg.Clients, export.Client{Name: c.name, Tenant: c.tenant.id, CertSHA256: sum, Networks: loopback})
	}
	srv, err := export.NewServer(cfg)
	if err != nil {
		return err
	}
	h := srv.Handler()
	st := &tnExportStats{}
	for i, c := range clients {
		records0, bytes0 := st.records, st.bytes
		t0 := time.Now()
		if err := b.exportAll(ctx, h, c, st); err != nil {
			return fmt.Errorf("%s: %w", c.tenant.id, err)
		}
		d := time.Since(t0).Seconds()
		n, bytes := st.records-records0, st.bytes-bytes0
		if n != c.tenant.planned {
			b.fail("export of %s took over %d records, want %d", c.tenant.id, n, c.tenant.planned)
		}
		if i == 0 {
			b.rep.ExportBigTenantS, b.rep.ExportBigRecords = d, n
			b.rep.ExportRecordsPerS = float64(n) / d
			b.rep.ExportMBPerS = float64(bytes) / 1e6 / d
		} else {
			b.rep.ExportSmallTenantS, b.rep.ExportSmallRecords = d, n
		}
		b.logf("export: %s, %d records (%.1f MB) in %.1f s, %.0f records/s", c.tenant.id, n, float64(bytes)/1e6, d, float64(n)/d)
	}
	b.rep.ExportFetchP50MS, b.rep.ExportFetchP99MS = percentile(st.fetch, 50), percentile(st.fetch, 99)
	b.rep.ExportListP50MS = percentile(st.list, 50)
	b.rep.ExportAckP50MS = percentile(st.ack, 50)
	b.rep.ExportAcks = st.acks
	return nil
}

// exportAll pages through c's records: list, fetch each (checking its
// length against the header), acknowledge the page; until a list is empty.
func (b *tnRun) exportAll(ctx context.Context, h http.Handler, c tnExportClient, st *tnExportStats) error {
	for {
		t0 := time.Now()
		rr := tnServe(ctx, h, c.cert, http.MethodGet, export.PathRecords+"?limit="+strconv.Itoa(export.MaxLimit), nil)
		st.list = append(st.list, ms(time.Since(t0)))
		if rr.Code != http.StatusOK {
			return fmt.Errorf("list: HTTP %d", rr.Code)
		}
		var page export.ListResponse
		if err := json.Unmarshal(rr.Body.Bytes(), &page); err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if page.Tenant != c.tenant.id {
			return fmt.Errorf("list: tenant %s", page.Tenant)
		}
		if len(page.Records) == 0 {
			return nil
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, b.o.ExportConcurrency)
		for w := range errs {
			wg.Go(func() {
				for ctx.Err() == nil {
					k := int(next.Add(1) - 1)
					if k >= len(page.Records) {
						return
					}
					info := page.Records[k]
					t0 := time.Now()
					rr := tnServe(ctx, h, c.cert, http.MethodGet, export.PathRecords+"/"+info.ID, nil)
					d := ms(time.Since(t0))
					if rr.Code != http.StatusOK {
						errs[w] = fmt.Errorf("fetch %s: HTTP %d", info.ID, rr.Code)
						return
					}
					if n := int64(rr.Body.Len()); n != info.Size {
						errs[w] = fmt.Errorf("fetch %s: %d bytes, the header says %d", info.ID, n, info.Size)
						return
					}
					st.mu.Lock()
					st.fetch = append(st.fetch, d)
					st.records++
					st.bytes += info.Size
					st.mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		last := page.Records[len(page.Records)-1].Seq
		t0 = time.Now()
		rr = tnServe(ctx, h, c.cert, http.MethodPost, export.PathAck, []byte(`{"seq":`+strconv.FormatInt(last, 10)+`}`))
		st.ack = append(st.ack, ms(time.Since(t0)))
		if rr.Code != http.StatusOK {
			return fmt.Errorf("ack %d: HTTP %d", last, rr.Code)
		}
		var ack export.AckResponse
		if err := json.Unmarshal(rr.Body.Bytes(), &ack); err != nil || ack.Cursor != last {
			return fmt.Errorf("ack %d: cursor %d (%v)", last, ack.Cursor, err)
		}
		st.acks++
	}
}

// tnServe calls h with a request from 127.0.0.1 carrying cert as the
// verified TLS peer certificate, and returns the recorded response.
func tnServe(ctx context.Context, h http.Handler, cert *x509.Certificate, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	req.RemoteAddr = "127.0.0.1:50000"
	req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	return rr
}

// tnSelfSigned returns a throwaway self-signed P-256 client certificate
// valid from an hour before now for a day.
func tnSelfSigned(name string, now time.Time) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return x509.ParseCertificate(der)
}

// eraseRetention erases the records of the second largest tenant recorded
// before the cutoff, in batches of retention.BatchSize, each batch audited
// and removed from the index.
func (b *tnRun) eraseRetention(ctx context.Context) error {
	t := b.tenants[1]
	date := b.cutoff.Format(time.RFC3339)
	var storeDur time.Duration
	t0 := time.Now()
	for {
		s0 := time.Now()
		got, err := b.st.Erase(ctx, store.EraseQuery{Recipient: t.id, RecordedBefore: b.cutoff, Limit: retention.BatchSize})
		storeDur += time.Since(s0)
		if err != nil {
			return err
		}
		if got.Count == 0 {
			break
		}
		b.rep.EraseRetentionRecords += got.Count
		b.rep.EraseRetentionBatches++
		if _, err := b.al.Record(ctx, audit.Event{
			Actor: "retention", Action: "record.erase", Object: t.id + " *", From: "local", Result: audit.ResultOK,
			Detail: fmt.Sprintf("%d records recorded before %s: %s…%s", got.Count, date, got.IDs[0], got.IDs[len(got.IDs)-1]),
		}); err != nil {
			return err
		}
		if err := b.ix.Remove(ctx, t.id, got.IDs); err != nil {
			return err
		}
		if got.Count < retention.BatchSize {
			break
		}
	}
	r := &b.rep
	r.EraseRetentionS = time.Since(t0).Seconds()
	r.EraseRetentionStoreS = storeDur.Seconds()
	if r.EraseRetentionS > 0 {
		r.EraseRetentionPerS = float64(r.EraseRetentionRecords) / r.EraseRetentionS
	}
	if r.EraseRetentionRecords != int64(t.old) {
		b.fail("the retention erasure of %s erased %d records, want %d", t.id, r.EraseRetentionRecords, t.old)
	}
	n, err := b.st.Count(ctx, t.id)
	if err != nil {
		return err
	}
	r.RetentionTenantRemains = n
	if n != int64(t.planned-t.old) {
		b.fail("after the retention erasure %s has %d records, want %d", t.id, n, t.planned-t.old)
	}
	s, err := b.ix.Status(ctx, t.id)
	if err != nil {
		return err
	}
	if s.Entries != t.planned-t.old {
		b.fail("after the retention erasure the index holds %d entries of %s, want %d", s.Entries, t.id, t.planned-t.old)
	}
	b.logf("retention erasure: %s, %d records before %s in %d batches, %.2f s (store %.2f s), %d remain",
		t.id, r.EraseRetentionRecords, date, r.EraseRetentionBatches, r.EraseRetentionS, r.EraseRetentionStoreS, n)
	return nil
}

// eraseTenant erases every record of the largest tenant as a decommission
// does: the store's Erase in batches of store.MaxEraseLimit, its Vacuum,
// the index's Forget.
func (b *tnRun) eraseTenant(ctx context.Context) error {
	t := b.tenants[0]
	everything := time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC) // the latest storable time
	r := &b.rep
	t0 := time.Now()
	for {
		got, err := b.st.Erase(ctx, store.EraseQuery{Recipient: t.id, RecordedBefore: everything, Limit: store.MaxEraseLimit})
		if err != nil {
			return err
		}
		if got.Count == 0 {
			break
		}
		r.EraseTenantRecords += got.Count
		r.EraseTenantBytes += got.Bytes
	}
	r.EraseTenantS = time.Since(t0).Seconds()
	b.logf("tenant erasure: %s, %d records (%.1f MB of ciphertext) erased in %.2f s", t.id, r.EraseTenantRecords, float64(r.EraseTenantBytes)/1e6, r.EraseTenantS)
	if v, ok := b.st.(store.Vacuumer); ok {
		t1 := time.Now()
		if err := v.Vacuum(ctx); err != nil {
			return err
		}
		r.VacuumS = time.Since(t1).Seconds()
		b.logf("tenant erasure: store vacuum %.2f s", r.VacuumS)
	}
	t2 := time.Now()
	n, err := b.ix.Forget(ctx, t.id)
	if err != nil {
		return err
	}
	r.IndexForgetS = time.Since(t2).Seconds()
	r.IndexForgotten = n
	r.DecommissionS = time.Since(t0).Seconds()
	if _, err := b.al.Record(ctx, audit.Event{
		Actor: "bench", Action: "tenant.erase", Object: t.id, From: "local", Result: audit.ResultOK,
		Detail: fmt.Sprintf("%d records", r.EraseTenantRecords),
	}); err != nil {
		return err
	}
	if r.EraseTenantRecords != int64(t.planned) {
		b.fail("the erasure of %s erased %d records, want %d", t.id, r.EraseTenantRecords, t.planned)
	}
	if n != t.planned {
		b.fail("the index forgot %d entries of %s, want %d", n, t.id, t.planned)
	}
	if r.StoreBytesAfter, err = b.storeBytes(ctx); err != nil {
		return err
	}
	b.logf("tenant erasure: index forget %.2f s; decommission %.2f s; store %.1f MB -> %.1f MB",
		r.IndexForgetS, r.DecommissionS, float64(r.StoreBytes)/1e6, float64(r.StoreBytesAfter)/1e6)
	return nil
}

// finalChecks verifies that the erasures left every other tenant intact,
// in the store and in the index.
func (b *tnRun) finalChecks(ctx context.Context) error {
	want := int64(0)
	for i, t := range b.tenants {
		expect := t.planned
		switch i {
		case 0:
			expect = 0
		case 1:
			expect = t.planned - t.old
		}
		want += int64(expect)
		n, err := b.st.Count(ctx, t.id)
		if err != nil {
			return err
		}
		if n != int64(expect) {
			b.fail("at the end %s has %d records, want %d", t.id, n, expect)
		}
		s, err := b.ix.Status(ctx, t.id)
		if err != nil {
			return err
		}
		if s.Entries != expect {
			b.fail("at the end the index holds %d entries of %s, want %d", s.Entries, t.id, expect)
		}
	}
	total, err := b.st.Count(ctx, "")
	if err != nil {
		return err
	}
	b.rep.RemainingRecords = total
	if total != want {
		b.fail("at the end the store counts %d records, want %d", total, want)
	}
	b.logf("checks: %d records remain; %d failures", total, len(b.rep.Failures))
	return nil
}

// sha256Hex is the hex SHA-256 of b (a certificate fingerprint).
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// WriteTenantsReport writes r as `taxlink bench tenants` prints it: a table
// of the figures, then, as the last line, r as one JSON object.
func WriteTenantsReport(w io.Writer, r TenantsReport) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	mb := func(n int64) float64 { return float64(n) / 1e6 }
	row("machine", "%d CPUs, %.1f GB, %s", r.Host.CPUs, r.Host.MemTotalGB, r.Host.GoVersion)
	row("store", "%s", r.Store)
	row("tenants", "%d (largest %s: %d records, median %d, smallest %s: %d; Zipf %.2g)",
		r.Tenants, r.BigTenant, r.BigTenantRecords, r.MedianTenantRecords, r.SmallTenant, r.SmallTenantRecords, r.Skew)
	row("records", "%d (%d PDF scans), payload %.1f MB, ciphertext %.1f MB", r.Records, r.PDFs, mb(r.PayloadBytes), mb(r.CiphertextBytes))
	row("F: 8 KiB write+fdatasync, serial", "%.0f /s", r.FsyncPerS)
	row("record (store.Record, durable)", "%.0f /s, %.1f s, %d concurrent (%.2f × F)", r.RecordPerS, r.RecordS, r.RecordConcurrency, r.RatioRecordFsync)
	row("record p50 / p99", "%.2f / %.2f ms", r.RecordP50MS, r.RecordP99MS)
	row("store size", "%.1f MB (%.0f bytes/record)", mb(r.StoreBytes), r.StoreBytesPerRecord)
	row("index build, all tenants", "%.1f s, %.0f records/s, %d workers; index %.1f MB", r.IndexBuildS, r.IndexPerS, r.IndexWorkers, mb(r.IndexBytes))
	row("search within a tenant p50 / p99", "%.2f / %.2f ms (%d of %d found)", r.SearchP50MS, r.SearchP99MS, r.SearchesFound, r.Searches)
	row("  by taxpayer (blind) p50 / p99", "%.2f / %.2f ms", r.SearchTaxpayerP50MS, r.SearchTaxpayerP99MS)
	row("  by type + tax year p50 / p99", "%.2f / %.2f ms", r.SearchTypeYearP50MS, r.SearchTypeYearP99MS)
	row(fmt.Sprintf("search by taxpayer across %d tenants p50 / p99", r.SearchAllTenantsTenant), "%.2f / %.2f ms (%d of %d found)",
		r.SearchAllTenantsP50MS, r.SearchAllTenantsP99MS, r.SearchAllTenantsFound, r.SearchAllTenants)
	row("export, largest tenant", "%d records in %.1f s: %.0f records/s, %.1f MB/s", r.ExportBigRecords, r.ExportBigTenantS, r.ExportRecordsPerS, r.ExportMBPerS)
	row("export, smallest tenant", "%d records in %.2f s", r.ExportSmallRecords, r.ExportSmallTenantS)
	row("export fetch p50 / p99; list p50; ack p50", "%.2f / %.2f ms; %.1f ms; %.1f ms (%d acks, %d fetches at once)",
		r.ExportFetchP50MS, r.ExportFetchP99MS, r.ExportListP50MS, r.ExportAckP50MS, r.ExportAcks, r.ExportConcurrency)
	row("export transport", "%s", r.ExportTransportNotes)
	row("retention erasure", "%s: %d records before %s, %d batches, %.2f s (store %.2f s), %d remain",
		r.RetentionTenant, r.EraseRetentionRecords, r.RetentionCutoff.Format(time.DateOnly), r.EraseRetentionBatches, r.EraseRetentionS, r.EraseRetentionStoreS, r.RetentionTenantRemains)
	row("tenant erasure (largest)", "%d records, %.1f MB ciphertext: erase %.2f s", r.EraseTenantRecords, mb(r.EraseTenantBytes), r.EraseTenantS)
	row("  store vacuum / index forget", "%.2f s / %.2f s (decommission %.2f s)", r.VacuumS, r.IndexForgetS, r.DecommissionS)
	row("store size after", "%.1f MB", mb(r.StoreBytesAfter))
	row("remaining records", "%d", r.RemainingRecords)
	row("total", "%.0f s (load average %.1f at the start, %.1f at the end, %d CPUs)", r.TotalS, r.LoadAvgStart, r.LoadAvgEnd, r.Host.CPUs)
	for _, f := range r.Failures {
		row("failure", "%s", f)
	}
	result := "PASS"
	if !r.Passed {
		result = "FAIL"
	}
	row("result", "%s", result)
	if err := tw.Flush(); err != nil {
		return err
	}
	j, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, strings.TrimSpace(string(j)))
	return err
}
