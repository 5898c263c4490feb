package searchindex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
	"taxlink/internal/synth"
)

const (
	tenantA = "lg:011002"
	tenantB = "lg:132012"
)

// base is the recording time of the first test record; the n-th record of
// a fixture is recorded n hours later.
var base = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// payload is a record's plaintext as the fake opener serves it.
type payload struct {
	contentType string
	body        []byte
	openErr     error
}

// fixture is a real store, an index and a fake opener over plaintexts.
type fixture struct {
	t        *testing.T
	st       *sqlite.Store
	ix       *Index
	ixPath   string
	mu       sync.Mutex
	payloads map[string]payload // by record ID
	opened   atomic.Int64
	n        int // records recorded
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, ixPath: filepath.Join(dir, "index.db"), payloads: map[string]payload{}}
	f.ix, err = Open(f.ixPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ix.Close() })
	return f
}

// record stores a record of tenant whose plaintext is p; the store holds
// zero bytes of the same size in place of ciphertext.
func (f *fixture) record(tenant, typ string, p payload) store.Record {
	f.t.Helper()
	id := ulid.Make().String()
	rec := store.Record{
		ID: id, Type: typ, Sender: "nta:0001", Recipient: tenant,
		Created:    base.Add(time.Duration(f.n)*time.Hour - time.Minute),
		RecordedAt: base.Add(time.Duration(f.n) * time.Hour),
		Header:     []byte("header " + id), Signature: []byte("sig"), Receipt: []byte(`{"r":1}`),
		CiphertextSize: int64(len(p.body)),
	}
	f.n++
	stored, _, err := f.st.Record(context.Background(), rec, bytes.NewReader(make([]byte, len(p.body))))
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.payloads[id] = p
	f.mu.Unlock()
	return stored
}

func (f *fixture) open(ctx context.Context, tenant, id string) (io.ReadCloser, string, error) {
	f.opened.Add(1)
	f.mu.Lock()
	p, ok := f.payloads[id]
	f.mu.Unlock()
	switch {
	case !ok:
		return nil, "", fmt.Errorf("no payload %s", id)
	case p.openErr != nil:
		return nil, "", p.openErr
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	return io.NopCloser(bytes.NewReader(p.body)), p.contentType, nil
}

func (f *fixture) sync(tenant string) int {
	f.t.Helper()
	n, err := f.ix.Sync(context.Background(), f.st, tenant, testKey(tenant), f.open)
	if err != nil {
		f.t.Fatalf("Sync %s: %v", tenant, err)
	}
	return n
}

func (f *fixture) search(q Query) ([]Entry, int) {
	f.t.Helper()
	es, total, err := f.ix.Search(context.Background(), q, map[string]Key{tenantA: testKey(tenantA), tenantB: testKey(tenantB)})
	if err != nil {
		f.t.Fatalf("Search %+v: %v", q, err)
	}
	return es, total
}

// xmlReturn is a minimal XML return for taxpayer and tax year (Reiwa).
func xmlReturn(taxpayer string, year int) payload {
	return payload{contentType: "application/xml", body: []byte(doc(
		`<NOZEISHA_BANGO ID="NOZEISHA_BANGO"><gen:kojinbango>` + taxpayer + `</gen:kojinbango></NOZEISHA_BANGO>` +
			fmt.Sprintf(`<NENBUN ID="NENBUN"><gen:era>5</gen:era><gen:yy>%d</gen:yy></NENBUN>`, year-2018)))}
}

// synthRecords records n synth notifications for tenant and returns, per
// record ID, the fields Extract finds.
func (f *fixture) synthRecords(tenant string, seed uint64, n int) map[string]Fields {
	f.t.Helper()
	g := synth.NewGenerator(seed)
	want := map[string]Fields{}
	for range n {
		nt := g.Next("札幌市", "北海道")
		rec := f.record(tenant, nt.Type, payload{contentType: nt.ContentType, body: nt.Body})
		fl, err := Extract(nt.ContentType, bytes.NewReader(nt.Body))
		if err != nil {
			f.t.Fatal(err)
		}
		want[rec.ID] = fl
	}
	return want
}

func ids(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestSyncIncremental(t *testing.T) {
	f := newFixture(t)
	f.synthRecords(tenantA, 1, 5)
	if n := f.sync(tenantA); n != 5 {
		t.Fatalf("first Sync added %d, want 5", n)
	}
	opened := f.opened.Load()
	if n := f.sync(tenantA); n != 0 || f.opened.Load() != opened {
		t.Fatalf("second Sync added %d and opened %d payloads, want none", n, f.opened.Load()-opened)
	}
	last := f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2024))
	f.record(tenantA, "income-tax-return", xmlReturn(otherNum, 2023))
	if n := f.sync(tenantA); n != 2 || f.opened.Load() != opened+2 {
		t.Fatalf("third Sync added %d and opened %d, want 2 and 2", n, f.opened.Load()-opened)
	}
	s, err := f.ix.Status(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != 7 || s.Unindexed != 0 || s.Cursor != last.Seq+1 {
		t.Errorf("Status = %+v, want 7 entries, cursor %d", s, last.Seq+1)
	}

	// The cursor survives reopening.
	if err := f.ix.Close(); err != nil {
		t.Fatal(err)
	}
	var err2 error
	if f.ix, err2 = Open(f.ixPath); err2 != nil {
		t.Fatal(err2)
	}
	if n := f.sync(tenantA); n != 0 {
		t.Errorf("Sync after reopening added %d", n)
	}
}

func TestSyncPages(t *testing.T) {
	f := newFixture(t)
	const n = SyncPageSize + 20
	for range n {
		f.record(tenantA, "notice", payload{contentType: "text/plain", body: []byte("x")})
	}
	if got := f.sync(tenantA); got != n {
		t.Fatalf("Sync added %d, want %d", got, n)
	}
	if _, total := f.search(Query{Tenants: []string{tenantA}}); total != n {
		t.Errorf("total %d, want %d", total, n)
	}
}

func TestSearch(t *testing.T) {
	f := newFixture(t)
	wantA := f.synthRecords(tenantA, 1, 40)
	wantB := f.synthRecords(tenantB, 2, 20)
	// The same taxpayer at both tenants, and a second return of one.
	shared := []store.Record{
		f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2023)),
		f.record(tenantB, "income-tax-return", xmlReturn(myNumber, 2023)),
		f.record(tenantA, "blue-return", xmlReturn(myNumber, 2024)),
	}
	wantA[shared[0].ID] = Fields{2023, myNumber}
	wantB[shared[1].ID] = Fields{2023, myNumber}
	wantA[shared[2].ID] = Fields{2024, myNumber}
	if n := f.sync(tenantA); n != len(wantA) {
		t.Fatalf("Sync A added %d, want %d", n, len(wantA))
	}
	if n := f.sync(tenantB); n != len(wantB) {
		t.Fatalf("Sync B added %d, want %d", n, len(wantB))
	}

	// Pick a synth taxpayer of A and one of B.
	var taxpayerA, taxpayerB string
	for _, fl := range wantA {
		if fl.Taxpayer != "" && fl.Taxpayer != myNumber {
			taxpayerA = fl.Taxpayer
		}
	}
	for _, fl := range wantB {
		if fl.Taxpayer != "" && fl.Taxpayer != myNumber {
			taxpayerB = fl.Taxpayer
		}
	}

	// matching lists the IDs of the records of want that pass keep.
	matching := func(keep func(id string, fl Fields) bool, wants ...map[string]Fields) []string {
		var out []string
		for _, w := range wants {
			for id, fl := range w {
				if keep(id, fl) {
					out = append(out, id)
				}
			}
		}
		return out
	}
	typeOf := map[string]string{}
	recordedAt := map[string]time.Time{}
	for _, tenant := range []string{tenantA, tenantB} {
		recs, err := f.st.List(context.Background(), store.Query{Recipient: tenant, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			typeOf[r.ID], recordedAt[r.ID] = r.Type, r.RecordedAt
		}
	}
	from, to := base.Add(10*time.Hour), base.Add(30*time.Hour)
	all := func(string, Fields) bool { return true }

	for _, tt := range []struct {
		name string
		q    Query
		want []string
	}{
		{"tenant A", Query{Tenants: []string{tenantA}}, matching(all, wantA)},
		{"both tenants", Query{Tenants: []string{tenantA, tenantB, tenantA}}, matching(all, wantA, wantB)},
		{"no tenants", Query{}, nil},
		{"unknown tenant", Query{Tenants: []string{"lg:999999"}}, nil},
		{"taxpayer in A", Query{Tenants: []string{tenantA}, Taxpayer: taxpayerA},
			matching(func(_ string, fl Fields) bool { return fl.Taxpayer == taxpayerA }, wantA)},
		{"taxpayer full-width with hyphens", Query{Tenants: []string{tenantA}, Taxpayer: "１２３４-５６７８-９０１８"},
			[]string{shared[0].ID, shared[2].ID}},
		{"shared taxpayer, A only", Query{Tenants: []string{tenantA}, Taxpayer: myNumber}, []string{shared[0].ID, shared[2].ID}},
		{"shared taxpayer, B only", Query{Tenants: []string{tenantB}, Taxpayer: myNumber}, []string{shared[1].ID}},
		{"shared taxpayer, both", Query{Tenants: []string{tenantA, tenantB}, Taxpayer: myNumber}, []string{shared[0].ID, shared[1].ID, shared[2].ID}},
		{"B's taxpayer asked of A", Query{Tenants: []string{tenantA}, Taxpayer: taxpayerB}, nil},
		{"B's taxpayer asked of B", Query{Tenants: []string{tenantB}, Taxpayer: taxpayerB},
			matching(func(_ string, fl Fields) bool { return fl.Taxpayer == taxpayerB }, wantB)},
		{"type", Query{Tenants: []string{tenantA}, Type: synth.TypeBlueReturn},
			matching(func(id string, _ Fields) bool { return typeOf[id] == synth.TypeBlueReturn }, wantA)},
		{"tax year", Query{Tenants: []string{tenantA}, TaxYear: 2023},
			matching(func(_ string, fl Fields) bool { return fl.TaxYear == 2023 }, wantA)},
		{"tax year and taxpayer", Query{Tenants: []string{tenantA}, TaxYear: 2024, Taxpayer: myNumber}, []string{shared[2].ID}},
		{"recorded range", Query{Tenants: []string{tenantA, tenantB}, From: from, To: to},
			matching(func(id string, _ Fields) bool { return !recordedAt[id].Before(from) && recordedAt[id].Before(to) }, wantA, wantB)},
		{"recorded from", Query{Tenants: []string{tenantA}, From: to},
			matching(func(id string, _ Fields) bool { return !recordedAt[id].Before(to) }, wantA)},
		{"recorded before far future", Query{Tenants: []string{tenantA}, To: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, matching(all, wantA)},
		{"empty range", Query{Tenants: []string{tenantA}, From: to, To: from}, nil},
		{"types: all", Query{Tenants: []string{tenantA}, Types: []string{"*"}}, matching(all, wantA)},
		{"types: scans only", Query{Tenants: []string{tenantA}, Types: []string{synth.TypePaperReturnScan}},
			matching(func(id string, _ Fields) bool { return typeOf[id] == synth.TypePaperReturnScan }, wantA)},
		{"types: none", Query{Tenants: []string{tenantA}, Types: []string{}}, nil},
		{"type outside types", Query{Tenants: []string{tenantA}, Types: []string{synth.TypePaperReturnScan}, Type: synth.TypeBlueReturn}, nil},
		{"taxpayer outside types", Query{Tenants: []string{tenantA}, Types: []string{synth.TypePaperReturnScan}, Taxpayer: myNumber}, nil},
		{"star among types is literal", Query{Tenants: []string{tenantA}, Types: []string{"*", "blue-return"}},
			matching(func(id string, _ Fields) bool { return typeOf[id] == synth.TypeBlueReturn }, wantA)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Limit = MaxLimit
			es, total := f.search(tt.q)
			got := ids(es)
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) || total != len(want) {
				t.Fatalf("got %d entries (total %d), want %d", len(got), total, len(want))
			}
			for i, e := range es {
				if !slices.Contains(tt.q.Tenants, e.Tenant) {
					t.Errorf("entry of tenant %s returned", e.Tenant)
				}
				if i > 0 && e.RecordedAt.After(es[i-1].RecordedAt) {
					t.Errorf("entries not newest first")
				}
				w := wantA[e.ID]
				if e.Tenant == tenantB {
					w = wantB[e.ID]
				}
				if !e.Indexed || e.TaxYear != w.TaxYear || e.Type != typeOf[e.ID] || !e.RecordedAt.Equal(recordedAt[e.ID]) || e.Size <= 0 {
					t.Errorf("entry %+v does not match its record", e)
				}
			}
		})
	}

	// Keys: a tenant without a key matches nothing by taxpayer.
	es, total, err := f.ix.Search(context.Background(), Query{Tenants: []string{tenantA, tenantB}, Taxpayer: myNumber},
		map[string]Key{tenantB: testKey(tenantB), tenantA: nil})
	if err != nil || total != 1 || len(es) != 1 || es[0].ID != shared[1].ID {
		t.Errorf("search with A's key missing: %v, %d, %v", ids(es), total, err)
	}
	// A's key used for B's entries finds nothing: the hash is per tenant.
	es, _, err = f.ix.Search(context.Background(), Query{Tenants: []string{tenantB}, Taxpayer: myNumber},
		map[string]Key{tenantB: testKey(tenantA)})
	if err != nil || len(es) != 0 {
		t.Errorf("search of B with A's key: %v, %v", ids(es), err)
	}

	// Paging: newest first, pages partition the result.
	var paged []string
	for off := 0; ; off += 7 {
		es, total := f.search(Query{Tenants: []string{tenantA}, Limit: 7, Offset: off})
		if total != len(wantA) {
			t.Fatalf("total %d, want %d", total, len(wantA))
		}
		if len(es) == 0 {
			break
		}
		paged = append(paged, ids(es)...)
	}
	recs, _ := f.st.List(context.Background(), store.Query{Recipient: tenantA, Limit: 1000})
	var newestFirst []string
	for _, r := range slices.Backward(recs) {
		newestFirst = append(newestFirst, r.ID)
	}
	if !slices.Equal(paged, newestFirst) {
		t.Errorf("paged results are not the records newest first")
	}
	if es, _ := f.search(Query{Tenants: []string{tenantA, tenantB}}); len(es) != DefaultLimit {
		t.Errorf("default limit gave %d entries", len(es))
	}
}

func TestSearchInvalid(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name string
		q    Query
	}{
		{"limit too large", Query{Tenants: []string{tenantA}, Limit: MaxLimit + 1}},
		{"negative limit", Query{Tenants: []string{tenantA}, Limit: -1}},
		{"negative offset", Query{Tenants: []string{tenantA}, Offset: -1}},
		{"negative year", Query{Tenants: []string{tenantA}, TaxYear: -1}},
		{"bad tenant", Query{Tenants: []string{"lg 011002"}}},
		{"empty tenant", Query{Tenants: []string{""}}},
		{"bad taxpayer", Query{Tenants: []string{tenantA}, Taxpayer: "12345678901"}},
		{"too many tenants", Query{Tenants: make([]string, MaxQueryTenants+1)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.ix.Search(context.Background(), tt.q, nil)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "12345678901") {
				t.Errorf("error %q contains the identifier", err)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		tenant string
		k      Key
		open   Opener
	}{
		{"bad tenant", "", testKey(tenantA), f.open},
		{"short key", tenantA, make(Key, 16), f.open},
		{"nil opener", tenantA, testKey(tenantA), nil},
	} {
		if _, err := f.ix.Sync(context.Background(), f.st, tt.tenant, tt.k, tt.open); !errors.Is(err, ErrInvalid) {
			t.Errorf("Sync with %s: err = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestSyncUnreadablePayloads(t *testing.T) {
	f := newFixture(t)
	good := f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2024))
	bad := []store.Record{
		f.record(tenantA, "income-tax-return", payload{contentType: "application/xml", body: []byte(`<DATA><NOZEISHA_BANGO><gen:kojinbango>` + otherNum + `</gen:kojinbango></NOZEISHA_BANGO>`)}),
		f.record(tenantA, "income-tax-return", payload{contentType: "application/xml", body: []byte(doc(`<NOZEISHA_BANGO><gen:kojinbango>1234</gen:kojinbango></NOZEISHA_BANGO>`))}),
		f.record(tenantA, "income-tax-return", payload{openErr: errors.New("decryption failed")}),
		f.record(tenantA, "income-tax-return", payload{contentType: "application/xml", body: []byte("<DATA>" + strings.Repeat(" ", MaxScan))}),
	}
	if n := f.sync(tenantA); n != 1+len(bad) {
		t.Fatalf("Sync added %d, want %d", n, 1+len(bad))
	}
	s, err := f.ix.Status(context.Background(), tenantA)
	if err != nil || s.Entries != 1+len(bad) || s.Unindexed != len(bad) {
		t.Fatalf("Status = %+v, %v; want %d unindexed", s, err, len(bad))
	}
	es, _ := f.search(Query{Tenants: []string{tenantA}})
	for _, e := range es {
		if e.Indexed != (e.ID == good.ID) {
			t.Errorf("entry %s: Indexed %v", e.ID, e.Indexed)
		}
		if !e.Indexed && e.TaxYear != 0 {
			t.Errorf("unindexed entry %s has tax year %d", e.ID, e.TaxYear)
		}
	}
	// Not retried.
	opened := f.opened.Load()
	if n := f.sync(tenantA); n != 0 || f.opened.Load() != opened {
		t.Errorf("second Sync added %d, opened %d", n, f.opened.Load()-opened)
	}
	if es, _ := f.search(Query{Tenants: []string{tenantA}, Taxpayer: otherNum}); len(es) != 0 {
		t.Errorf("the number of a malformed document was indexed")
	}
}

func TestSyncStopsAtContextEnd(t *testing.T) {
	f := newFixture(t)
	want := f.synthRecords(tenantA, 3, 12)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	open := func(ctx context.Context, tenant, id string) (io.ReadCloser, string, error) {
		if calls.Add(1) == 5 {
			cancel()
		}
		return f.open(ctx, tenant, id)
	}
	n, err := f.ix.Sync(ctx, f.st, tenantA, testKey(tenantA), open)
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("Sync = %d, %v; want 0, context.Canceled", n, err)
	}
	if s, _ := f.ix.Status(context.Background(), tenantA); s.Entries != 0 || s.Cursor != 0 {
		t.Fatalf("a cancelled page was kept: %+v", s)
	}
	if n := f.sync(tenantA); n != len(want) {
		t.Fatalf("Sync after cancel added %d, want %d", n, len(want))
	}
	if s, _ := f.ix.Status(context.Background(), tenantA); s.Unindexed != 0 {
		t.Errorf("cancellation marked %d payloads unindexed", s.Unindexed)
	}
}

func TestSyncConcurrent(t *testing.T) {
	f := newFixture(t)
	want := f.synthRecords(tenantA, 4, 15)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			n, err := f.ix.Sync(context.Background(), f.st, tenantA, testKey(tenantA), f.open)
			if err != nil {
				t.Error(err)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	if total.Load() != int64(len(want)) {
		t.Errorf("concurrent Syncs added %d in all, want %d", total.Load(), len(want))
	}
	if _, n := f.search(Query{Tenants: []string{tenantA}}); n != len(want) {
		t.Errorf("%d entries, want %d", n, len(want))
	}
}

// TestIndexFileHoldsNoClearNumber reads the database and its write-ahead log
// and checks that no taxpayer or relative number of any payload is there,
// while the blind index is.
func TestIndexFileHoldsNoClearNumber(t *testing.T) {
	f := newFixture(t)
	f.synthRecords(tenantA, 5, 40)
	f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2024))
	f.sync(tenantA)

	var numbers [][]byte
	for _, p := range f.payloads {
		if p.contentType == synth.ContentTypeXML {
			numbers = append(numbers, anyNumberRE.FindAll(p.body, -1)...)
		}
	}
	if len(numbers) < 20 {
		t.Fatalf("only %d numbers in the payloads", len(numbers))
	}
	check := func(when string, wantBlind bool) {
		t.Helper()
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(f.ixPath + suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		for _, n := range numbers {
			if bytes.Contains(all, n) {
				t.Fatalf("%s: the index files contain a clear identifier", when)
			}
			// Neither as UTF-16 nor with the full-width digits.
			var fw []byte
			for _, c := range string(n) {
				fw = append(fw, string(c-'0'+'０')...)
			}
			if bytes.Contains(all, fw) {
				t.Fatalf("%s: the index files contain a full-width identifier", when)
			}
		}
		h, _ := Blind(testKey(tenantA), myNumber)
		if bytes.Contains(all, h) != wantBlind {
			t.Fatalf("%s: blind index present = %v, want %v", when, !wantBlind, wantBlind)
		}
	}
	check("after Sync", true)
	if err := f.ix.Close(); err != nil { // checkpoints into the database
		t.Fatal(err)
	}
	var err error
	if f.ix, err = Open(f.ixPath); err != nil {
		t.Fatal(err)
	}
	check("after reopening", true)
	if _, err := f.ix.Forget(context.Background(), tenantA); err != nil {
		t.Fatal(err)
	}
	check("after Forget", false)
}

func TestForgetAndRemove(t *testing.T) {
	f := newFixture(t)
	var recsA []store.Record
	for i := range 6 {
		recsA = append(recsA, f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2020+i)))
	}
	recB := f.record(tenantB, "income-tax-return", xmlReturn(myNumber, 2024))
	f.sync(tenantA)
	f.sync(tenantB)
	ctx := context.Background()

	// Remove: only the given IDs of that tenant go; an ID of another
	// tenant is not touched.
	if err := f.ix.Remove(ctx, tenantA, []string{recsA[0].ID, recsA[1].ID, recB.ID, ulid.Make().String()}); err != nil {
		t.Fatal(err)
	}
	es, total := f.search(Query{Tenants: []string{tenantA}, Taxpayer: myNumber})
	if total != 4 || slices.Contains(ids(es), recsA[0].ID) || slices.Contains(ids(es), recsA[1].ID) {
		t.Fatalf("after Remove: %d entries", total)
	}
	if _, total := f.search(Query{Tenants: []string{tenantB}}); total != 1 {
		t.Fatalf("Remove of A removed B's entry")
	}
	if err := f.ix.Remove(ctx, tenantA, nil); err != nil {
		t.Errorf("Remove of nothing: %v", err)
	}
	if err := f.ix.Remove(ctx, tenantA, []string{""}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Remove of an empty ID: %v", err)
	}
	if n := f.sync(tenantA); n != 0 {
		t.Errorf("Sync after Remove re-added %d", n)
	}

	n, err := f.ix.Forget(ctx, tenantA)
	if err != nil || n != 4 {
		t.Fatalf("Forget = %d, %v; want 4", n, err)
	}
	if _, total := f.search(Query{Tenants: []string{tenantA}}); total != 0 {
		t.Errorf("%d entries left after Forget", total)
	}
	if s, _ := f.ix.Status(ctx, tenantA); s != (Status{}) {
		t.Errorf("Status after Forget = %+v", s)
	}
	if _, total := f.search(Query{Tenants: []string{tenantB}}); total != 1 {
		t.Errorf("Forget of A removed B's entry")
	}
	if n, err := f.ix.Forget(ctx, tenantA); err != nil || n != 0 {
		t.Errorf("second Forget = %d, %v", n, err)
	}
	if _, err := f.ix.Forget(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Forget of an empty tenant: %v", err)
	}
	// The store still holds A's records: Sync indexes them anew.
	if n := f.sync(tenantA); n != len(recsA) {
		t.Errorf("Sync after Forget added %d, want %d", n, len(recsA))
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "store.db")
	st, err := sqlite.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if ix, err := Open(p); err == nil {
		ix.Close()
		t.Fatal("Open accepted a store database")
	}
	if _, err := Open(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(\"\"): %v", err)
	}
	ip := filepath.Join(dir, "index.db")
	ix, err := Open(ip)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	fi, err := os.Stat(ip)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("index file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestSchema checks the stored column types: the blind index is a BLOB of
// 32 bytes, NULL when unknown, and the indexes exist.
func TestSchema(t *testing.T) {
	f := newFixture(t)
	f.record(tenantA, "income-tax-return", xmlReturn(myNumber, 2024))
	f.record(tenantA, "paper-return-scan", payload{contentType: "application/pdf", body: []byte("%PDF-1.4\n")})
	f.sync(tenantA)
	rows, err := f.ix.db.Query("SELECT typeof(taxpayer), length(taxpayer) FROM entries ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ string
		var n *int
		if err := rows.Scan(&typ, &n); err != nil {
			t.Fatal(err)
		}
		if n != nil {
			typ += fmt.Sprint(*n)
		}
		got = append(got, typ)
	}
	if !slices.Equal(got, []string{"blob32", "null"}) {
		t.Errorf("taxpayer column types %v, want [blob32 null]", got)
	}
	for _, name := range []string{"entries_tenant_recorded", "entries_tenant_taxpayer"} {
		var n int
		if err := f.ix.db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", name).Scan(&n); err != nil || n != 1 {
			t.Errorf("index %s: %d, %v", name, n, err)
		}
	}
}
