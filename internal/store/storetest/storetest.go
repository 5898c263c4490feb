// Package storetest is the conformance suite every [store.Inbox]
// implementation must pass. An implementation's tests call [Run] with a
// function opening a new, empty inbox, and [RunReopen] with one opening the
// inbox kept in a directory, to check persistence across Close.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/store"
)

// Sizes of the ciphertexts recorded and read back.
const (
	kib = 1 << 10
	mib = 1 << 20
)

// errBoom is what failing readers fail with.
var errBoom = errors.New("storetest: reader failed on purpose")

// Run runs the conformance suite against the implementation opened by
// open, which must return a new, empty inbox each time it is called (use
// t.TempDir for files). Run closes every inbox it opens.
func Run(t *testing.T, open func(t *testing.T) store.Inbox) {
	t.Helper()
	o := func(t *testing.T) store.Inbox {
		t.Helper()
		in := open(t)
		t.Cleanup(func() { _ = in.Close() }) // the Closed test closes it first
		return in
	}
	t.Run("RecordAndReadBack", func(t *testing.T) { testRecordAndReadBack(t, o) })
	t.Run("SeqIncreases", func(t *testing.T) { testSeqIncreases(t, o) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, o) })
	t.Run("Conflict", func(t *testing.T) { testConflict(t, o) })
	t.Run("FailingReader", func(t *testing.T) { testFailingReader(t, o) })
	t.Run("SizeMismatch", func(t *testing.T) { testSizeMismatch(t, o) })
	t.Run("TenantIsolation", func(t *testing.T) { testTenantIsolation(t, o) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, o) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, o) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, o) })
	t.Run("ConcurrentSameID", func(t *testing.T) { testConcurrentSameID(t, o) })
	t.Run("ConcurrentConflicting", func(t *testing.T) { testConcurrentConflicting(t, o) })
	t.Run("ConcurrentDifferentIDs", func(t *testing.T) { testConcurrentDifferentIDs(t, o) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, o) })
	t.Run("ReaderCloseAndContext", func(t *testing.T) { testReaderCloseAndContext(t, o) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, o) })
}

// RunReopen checks that records persist across Close: open must return the
// inbox kept in dir, creating it when dir is empty. RunReopen closes every
// inbox it opens.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Inbox) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()

	first := open(t, dir)
	var recs []store.Record
	for i, c := range []struct {
		tenant string
		size   int64
	}{{"tenant-a", 0}, {"tenant-b", 1}, {"tenant-a", 300_000}, {"tenant-b", 4 * kib}} {
		rec := newRecord(ulid(i), c.tenant, c.size)
		recs = append(recs, mustRecord(t, first, rec))
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close after recording %d records: %v", len(recs), err)
	}

	second := open(t, dir)
	t.Cleanup(func() { _ = second.Close() })
	for _, want := range recs {
		got, err := second.Get(ctx, want.Recipient, want.ID)
		if err != nil {
			t.Fatalf("after reopen, Get(%s, %s): %v; the record did not persist", want.Recipient, want.ID, err)
		}
		if d := diffRecord(got, want); d != "" {
			t.Errorf("after reopen, Get(%s, %s) differs from what Record returned: %s", want.Recipient, want.ID, d)
		}
		checkCiphertext(t, second, want, payload(want.ID, want.CiphertextSize))
	}
	for tenant, want := range map[string]int64{"tenant-a": 2, "tenant-b": 2, "": 4} {
		checkCount(t, second, tenant, want, "after reopen")
	}

	again, existed, err := second.Record(ctx, withReceipt(newRecord(recs[2].ID, recs[2].Recipient, recs[2].CiphertextSize), "later"),
		bytes.NewReader(payload(recs[2].ID, recs[2].CiphertextSize)))
	if err != nil || !existed || again.Seq != recs[2].Seq {
		t.Errorf("after reopen, re-Record(%s) = seq %d, existed %v, err %v; want seq %d, existed true, nil error",
			recs[2].ID, again.Seq, existed, err, recs[2].Seq)
	}
	next := mustRecord(t, second, newRecord(ulid(100), "tenant-a", 10))
	for _, r := range recs {
		if next.Seq <= r.Seq {
			t.Errorf("after reopen, new record got seq %d, not above the earlier seq %d of %s", next.Seq, r.Seq, r.ID)
		}
	}
}

// ulid returns a ULID-shaped envelope ID, distinct for each n.
func ulid(n int) string { return fmt.Sprintf("01JQ%022d", n) }

// newRecord returns a valid record of id for tenant whose ciphertext is
// payload(id, size). Its header is derived from id and tenant.
func newRecord(id, tenant string, size int64) store.Record {
	created := time.Date(2026, 4, 1, 9, 30, 0, 123456789, time.FixedZone("JST", 9*60*60))
	return store.Record{
		ID:             id,
		Type:           "juminzei.tokubetsu-choshu",
		Sender:         "hub-nta",
		Recipient:      tenant,
		Created:        created,
		RecordedAt:     created.Add(1500 * time.Millisecond),
		Header:         fmt.Appendf(nil, `{"id":%q,"recipient":%q,"type":"juminzei.tokubetsu-choshu"}`, id, tenant),
		Signature:      fmt.Appendf(nil, "sig-of-%s", id),
		CiphertextSize: size,
		Receipt:        fmt.Appendf(nil, `{"id":%q,"status":"recorded"}`, id),
	}
}

// withReceipt returns rec with another receipt and a later RecordedAt, as a
// node re-recording a redelivered envelope would pass.
func withReceipt(rec store.Record, tag string) store.Record {
	rec.Receipt = fmt.Appendf(nil, `{"id":%q,"status":"recorded","tag":%q}`, rec.ID, tag)
	rec.RecordedAt = rec.RecordedAt.Add(time.Hour)
	return rec
}

// payload returns size deterministic pseudo-random bytes derived from id.
func payload(id string, size int64) []byte {
	var seed [32]byte
	copy(seed[:], id)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(b) // never fails
	return b
}

// failingReader yields data[:failAt] and then fails with errBoom.
type failingReader struct {
	data   []byte
	failAt int
	off    int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= r.failAt {
		return 0, errBoom
	}
	n := copy(p, r.data[r.off:r.failAt])
	r.off += n
	return n, nil
}

// mustRecord records rec with payload(rec.ID, rec.CiphertextSize) and checks
// that it is new and returned as given, with a Seq.
func mustRecord(t *testing.T, in store.Inbox, rec store.Record) store.Record {
	t.Helper()
	got, existed, err := in.Record(t.Context(), rec, bytes.NewReader(payload(rec.ID, rec.CiphertextSize)))
	if err != nil {
		t.Fatalf("Record(%s, %d bytes for %s): %v", rec.ID, rec.CiphertextSize, rec.Recipient, err)
	}
	if existed {
		t.Fatalf("Record(%s) of a new ID returned existed=true", rec.ID)
	}
	if got.Seq <= 0 {
		t.Fatalf("Record(%s) returned seq %d, want > 0", rec.ID, got.Seq)
	}
	rec.Seq = got.Seq
	if d := diffRecord(got, rec); d != "" {
		t.Fatalf("Record(%s) returned a record that differs from the one given: %s", rec.ID, d)
	}
	return got
}

// diffRecord describes how got differs from want ("" if it does not).
// Times are compared with Equal.
func diffRecord(got, want store.Record) string {
	var d []string
	field := func(name string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
	}
	if got.Seq != want.Seq {
		field("Seq", got.Seq, want.Seq)
	}
	for _, f := range []struct{ name, g, w string }{
		{"ID", got.ID, want.ID}, {"Type", got.Type, want.Type},
		{"Sender", got.Sender, want.Sender}, {"Recipient", got.Recipient, want.Recipient},
	} {
		if f.g != f.w {
			field(f.name, fmt.Sprintf("%q", f.g), fmt.Sprintf("%q", f.w))
		}
	}
	if !got.Created.Equal(want.Created) {
		field("Created", got.Created, want.Created)
	}
	if !got.RecordedAt.Equal(want.RecordedAt) {
		field("RecordedAt", got.RecordedAt, want.RecordedAt)
	}
	for _, f := range []struct {
		name string
		g, w []byte
	}{{"Header", got.Header, want.Header}, {"Signature", got.Signature, want.Signature}, {"Receipt", got.Receipt, want.Receipt}} {
		if !bytes.Equal(f.g, f.w) {
			field(f.name, fmt.Sprintf("%q", f.g), fmt.Sprintf("%q", f.w))
		}
	}
	if got.CiphertextSize != want.CiphertextSize {
		field("CiphertextSize", got.CiphertextSize, want.CiphertextSize)
	}
	return strings.Join(d, "; ")
}

// checkCiphertext reads rec's ciphertext back, in small reads, and compares
// it with want.
func checkCiphertext(t *testing.T, in store.Inbox, rec store.Record, want []byte) {
	t.Helper()
	rc, err := in.OpenCiphertext(t.Context(), rec.Recipient, rec.ID)
	if err != nil {
		t.Fatalf("OpenCiphertext(%s, %s): %v", rec.Recipient, rec.ID, err)
	}
	defer rc.Close()
	var got bytes.Buffer
	// A buffer that is not a divisor of any chunk size makes reads straddle
	// chunk boundaries.
	if _, err := io.CopyBuffer(struct{ io.Writer }{&got}, struct{ io.Reader }{rc}, make([]byte, 10_007)); err != nil {
		t.Fatalf("reading the ciphertext of %s after %d bytes: %v", rec.ID, got.Len(), err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("closing the ciphertext reader of %s: %v", rec.ID, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		at := 0
		for at < min(got.Len(), len(want)) && got.Bytes()[at] == want[at] {
			at++
		}
		t.Fatalf("ciphertext of %s read back as %d bytes, want %d; first difference at byte %d", rec.ID, got.Len(), len(want), at)
	}
}

// checkCount checks Count(recipient); when says in which situation.
func checkCount(t *testing.T, in store.Inbox, recipient string, want int64, when string) {
	t.Helper()
	got, err := in.Count(t.Context(), recipient)
	if err != nil {
		t.Fatalf("%s: Count(%q): %v", when, recipient, err)
	}
	if got != want {
		t.Errorf("%s: Count(%q) = %d, want %d", when, recipient, got, want)
	}
}

// checkAbsent checks that no record of id exists for recipient and that
// the inbox holds total records in all.
func checkAbsent(t *testing.T, in store.Inbox, recipient, id string, total int64, when string) {
	t.Helper()
	if _, err := in.Get(t.Context(), recipient, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: Get(%s, %s) error = %v, want ErrNotFound: something was stored", when, recipient, id, err)
	}
	if rc, err := in.OpenCiphertext(t.Context(), recipient, id); !errors.Is(err, store.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("%s: OpenCiphertext(%s, %s) error = %v, want ErrNotFound: ciphertext was stored", when, recipient, id, err)
	}
	checkCount(t, in, "", total, when)
}

func testRecordAndReadBack(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, size := range []int64{0, 1, 4*kib - 1, 256 * kib, 300_000, 1*mib + 1, 5 * mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			in := open(t)
			rec := newRecord(ulid(int(size)), "tenant-a", size)
			stored := mustRecord(t, in, rec)
			got, err := in.Get(t.Context(), rec.Recipient, rec.ID)
			if err != nil {
				t.Fatalf("Get(%s) right after Record: %v", rec.ID, err)
			}
			if d := diffRecord(got, stored); d != "" {
				t.Errorf("Get(%s) differs from what Record returned: %s", rec.ID, d)
			}
			checkCiphertext(t, in, stored, payload(rec.ID, size))
			checkCount(t, in, rec.Recipient, 1, "after one Record")
		})
	}
}

func testSeqIncreases(t *testing.T, open func(*testing.T) store.Inbox) {
	in := open(t)
	var last int64
	for i := range 10 {
		got := mustRecord(t, in, newRecord(ulid(i), []string{"tenant-a", "tenant-b"}[i%2], int64(i)))
		if got.Seq <= last {
			t.Fatalf("record %d got seq %d after seq %d: seqs must increase", i, got.Seq, last)
		}
		last = got.Seq
	}
}

func testIdempotent(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, size := range []int64{0, 300_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			in := open(t)
			rec := newRecord(ulid(1), "tenant-a", size)
			first := mustRecord(t, in, rec)
			for i := range 3 {
				again, existed, err := in.Record(t.Context(), withReceipt(rec, fmt.Sprint(i)), bytes.NewReader(payload(rec.ID, size)))
				if err != nil {
					t.Fatalf("re-Record %d of %s with equal header: %v", i, rec.ID, err)
				}
				if !existed {
					t.Errorf("re-Record %d of %s returned existed=false, want true", i, rec.ID)
				}
				if d := diffRecord(again, first); d != "" {
					t.Errorf("re-Record %d of %s did not return the first recording (seq, receipt and time must stay): %s", i, rec.ID, d)
				}
			}
			checkCount(t, in, "", 1, "after re-recording one ID")
			got, err := in.Get(t.Context(), rec.Recipient, rec.ID)
			if err != nil {
				t.Fatalf("Get(%s) after re-recording: %v", rec.ID, err)
			}
			if d := diffRecord(got, first); d != "" {
				t.Errorf("re-recording changed the stored record: %s", d)
			}
			checkCiphertext(t, in, first, payload(rec.ID, size))
		})
	}
}

func testConflict(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, c := range []struct {
		name   string
		change func(*store.Record)
	}{
		{"header", func(r *store.Record) { r.Header = append(r.Header, ' ') }},
		{"header of another tenant", func(r *store.Record) {
			*r = newRecord(r.ID, "tenant-b", r.CiphertextSize)
		}},
		{"header and size", func(r *store.Record) {
			r.Header = bytes.ToUpper(r.Header)
			r.CiphertextSize++
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := open(t)
			rec := newRecord(ulid(7), "tenant-a", 1000)
			first := mustRecord(t, in, rec)
			other := rec
			c.change(&other)
			_, existed, err := in.Record(t.Context(), other, bytes.NewReader(payload("other", other.CiphertextSize)))
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Record(%s) with a different header: existed=%v, error = %v, want ErrConflict", rec.ID, existed, err)
			}
			got, err := in.Get(t.Context(), rec.Recipient, rec.ID)
			if err != nil {
				t.Fatalf("Get(%s) after the conflict: %v", rec.ID, err)
			}
			if d := diffRecord(got, first); d != "" {
				t.Errorf("the conflicting Record changed the stored record: %s", d)
			}
			checkCiphertext(t, in, first, payload(rec.ID, rec.CiphertextSize))
			checkCount(t, in, "", 1, "after a conflicting Record")
			if other.Recipient != rec.Recipient {
				checkAbsent(t, in, other.Recipient, rec.ID, 1, "after another tenant's conflicting Record")
			}
		})
	}
}

func testFailingReader(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, c := range []struct {
		name         string
		size, failAt int
	}{
		{"at once", 1000, 0},
		{"midway small", 1000, 500},
		{"midway large", 1 * mib, 700 * kib},
		{"instead of EOF small", 1000, 1000},
		{"instead of EOF large", 600 * kib, 600 * kib},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := open(t)
			rec := newRecord(ulid(c.size), "tenant-a", int64(c.size))
			data := payload(rec.ID, rec.CiphertextSize)
			_, _, err := in.Record(t.Context(), rec, &failingReader{data: data, failAt: c.failAt})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Record(%s) with a reader failing after %d of %d bytes: error = %v, want it to wrap the reader's error", rec.ID, c.failAt, c.size, err)
			}
			checkAbsent(t, in, rec.Recipient, rec.ID, 0, "after a failed read")
			mustRecord(t, in, rec) // a later good Record of the same ID works
			checkCiphertext(t, in, rec, data)
		})
	}
}

func testSizeMismatch(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, c := range []struct {
		name           string
		declared, real int64
	}{
		{"empty but one byte", 0, 1},
		{"one short", 1000, 999},
		{"one long", 1000, 1001},
		{"nothing of many", 300_000, 0},
		{"large one short", 1 * mib, 1*mib - 1},
		{"large one long", 1 * mib, 1*mib + 1},
		{"large far too long", 300_000, 3 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := open(t)
			rec := newRecord(ulid(1), "tenant-a", c.declared)
			_, _, err := in.Record(t.Context(), rec, bytes.NewReader(payload("mismatch", c.real)))
			if !errors.Is(err, store.ErrSizeMismatch) {
				t.Fatalf("Record(%s) declaring %d bytes with %d given: error = %v, want ErrSizeMismatch", rec.ID, c.declared, c.real, err)
			}
			checkAbsent(t, in, rec.Recipient, rec.ID, 0, "after a size mismatch")
			mustRecord(t, in, rec)
		})
	}
}

func testTenantIsolation(t *testing.T, open func(*testing.T) store.Inbox) {
	ctx := t.Context()
	in := open(t)
	a := mustRecord(t, in, newRecord(ulid(1), "tenant-a", 2000))
	b := mustRecord(t, in, newRecord(ulid(2), "tenant-b", 3000))
	b2 := mustRecord(t, in, newRecord(ulid(3), "tenant-b", 0))

	for _, c := range []struct{ tenant, id string }{{"tenant-b", a.ID}, {"tenant-a", b.ID}, {"tenant-c", a.ID}} {
		if got, err := in.Get(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s, %s) of another tenant's record returned the record of %q and error %v; want ErrNotFound", c.tenant, c.id, got.Recipient, err)
		}
		if rc, err := in.OpenCiphertext(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("OpenCiphertext(%s, %s) of another tenant's record: error = %v, want ErrNotFound", c.tenant, c.id, err)
		}
	}
	for tenant, want := range map[string][]store.Record{"tenant-a": {a}, "tenant-b": {b, b2}, "tenant-c": nil} {
		got, err := in.List(ctx, store.Query{Recipient: tenant, Limit: store.MaxListLimit})
		if err != nil {
			t.Fatalf("List(%s): %v", tenant, err)
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("List(%s) = %v, want %v", tenant, ids(got), ids(want))
		}
		checkCount(t, in, tenant, int64(len(want)), "with records of several tenants")
	}
	checkCount(t, in, "", 3, "with records of several tenants")
	checkCiphertext(t, in, a, payload(a.ID, a.CiphertextSize))
	checkCiphertext(t, in, b, payload(b.ID, b.CiphertextSize))
}

func ids(rs []store.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testListPaging(t *testing.T, open func(*testing.T) store.Inbox) {
	ctx := t.Context()
	in := open(t)
	tenants := []string{"tenant-a", "tenant-b", "tenant-c"}
	want := map[string][]store.Record{}
	for i := range 25 {
		tenant := tenants[i%len(tenants)]
		if i%5 == 4 {
			tenant = "tenant-a" // uneven shares
		}
		want[tenant] = append(want[tenant], mustRecord(t, in, newRecord(ulid(i), tenant, int64(i))))
	}
	for _, tenant := range tenants {
		for _, limit := range []int{1, 4, 7, store.MaxListLimit} {
			var got []store.Record
			after := int64(0)
			for page := 0; ; page++ {
				if page > 30 {
					t.Fatalf("List(%s, limit %d) did not end after %d pages", tenant, limit, page)
				}
				rs, err := in.List(ctx, store.Query{Recipient: tenant, AfterSeq: after, Limit: limit})
				if err != nil {
					t.Fatalf("List(%s, after %d, limit %d): %v", tenant, after, limit, err)
				}
				if len(rs) > limit {
					t.Fatalf("List(%s, after %d, limit %d) returned %d records", tenant, after, limit, len(rs))
				}
				if len(rs) == 0 {
					break
				}
				for _, r := range rs {
					if r.Seq <= after {
						t.Fatalf("List(%s, after %d, limit %d) returned seq %d, not above AfterSeq or out of order", tenant, after, limit, r.Seq)
					}
					after = r.Seq
				}
				got = append(got, rs...)
			}
			if !slices.Equal(ids(got), ids(want[tenant])) {
				t.Errorf("paging List(%s) by %d gave %v, want %v (in Seq order)", tenant, limit, ids(got), ids(want[tenant]))
				continue
			}
			for i := range got {
				if d := diffRecord(got[i], want[tenant][i]); d != "" {
					t.Errorf("List(%s) record %s differs from what Record returned: %s", tenant, got[i].ID, d)
				}
			}
		}
	}
	last := want["tenant-a"][len(want["tenant-a"])-1].Seq
	if rs, err := in.List(ctx, store.Query{Recipient: "tenant-a", AfterSeq: last, Limit: 10}); err != nil || len(rs) != 0 {
		t.Errorf("List(tenant-a) after its last seq %d = %v, %v; want no records and no error", last, ids(rs), err)
	}
}

func testNotFound(t *testing.T, open func(*testing.T) store.Inbox) {
	in := open(t)
	mustRecord(t, in, newRecord(ulid(1), "tenant-a", 10))
	checkAbsent(t, in, "tenant-a", ulid(2), 1, "for an unknown ID")
	checkAbsent(t, in, "tenant-z", ulid(2), 1, "for an unknown tenant")
}

func testInvalid(t *testing.T, open func(*testing.T) store.Inbox) {
	ctx := t.Context()
	in := open(t)
	good := newRecord(ulid(1), "tenant-a", 10)
	for _, c := range []struct {
		name   string
		change func(*store.Record)
	}{
		{"empty ID", func(r *store.Record) { r.ID = "" }},
		{"ID with a space", func(r *store.Record) { r.ID = "01JQ 1" }},
		{"ID with a newline", func(r *store.Record) { r.ID = "01JQ\n1" }},
		{"ID too long", func(r *store.Record) { r.ID = strings.Repeat("x", store.MaxIDLen+1) }},
		{"empty recipient", func(r *store.Record) { r.Recipient = "" }},
		{"empty type", func(r *store.Record) { r.Type = "" }},
		{"empty sender", func(r *store.Record) { r.Sender = "" }},
		{"negative size", func(r *store.Record) { r.CiphertextSize = -1 }},
		{"zero Created", func(r *store.Record) { r.Created = time.Time{} }},
		{"Created beyond 2262", func(r *store.Record) { r.Created = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"empty header", func(r *store.Record) { r.Header = nil }},
		{"empty signature", func(r *store.Record) { r.Signature = nil }},
		{"empty receipt", func(r *store.Record) { r.Receipt = nil }},
	} {
		rec := good
		c.change(&rec)
		_, _, err := in.Record(ctx, rec, bytes.NewReader(payload(good.ID, 10)))
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Record with %s: error = %v, want ErrInvalid", c.name, err)
		}
	}
	checkCount(t, in, "", 0, "after invalid Records")

	for _, c := range []struct{ recipient, id string }{{"", ulid(1)}, {"tenant-a", ""}, {"tenant a", ulid(1)}} {
		if _, err := in.Get(ctx, c.recipient, c.id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Get(%q, %q): error = %v, want ErrInvalid", c.recipient, c.id, err)
		}
		if _, err := in.OpenCiphertext(ctx, c.recipient, c.id); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("OpenCiphertext(%q, %q): error = %v, want ErrInvalid", c.recipient, c.id, err)
		}
	}
	for _, q := range []store.Query{
		{Recipient: "", Limit: 10},
		{Recipient: "tenant-a", Limit: 0},
		{Recipient: "tenant-a", Limit: -1},
		{Recipient: "tenant-a", Limit: store.MaxListLimit + 1},
		{Recipient: "tenant-a", AfterSeq: -1, Limit: 10},
	} {
		if _, err := in.List(ctx, q); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("List(%+v): error = %v, want ErrInvalid", q, err)
		}
	}
	if _, err := in.Count(ctx, "tenant a"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Count(%q): error = %v, want ErrInvalid", "tenant a", err)
	}
}

// concurrently runs f(0..n-1) in n goroutines released at once.
func concurrently(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			f(i)
		})
	}
	start.Done()
	done.Wait()
}

func testConcurrentSameID(t *testing.T, open func(*testing.T) store.Inbox) {
	for _, size := range []int64{100, 300_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const n = 8
			in := open(t)
			rec := newRecord(ulid(1), "tenant-a", size)
			data := payload(rec.ID, size)
			type result struct {
				rec     store.Record
				existed bool
				err     error
			}
			results := make([]result, n)
			concurrently(n, func(i int) {
				r, existed, err := in.Record(t.Context(), withReceipt(rec, fmt.Sprint(i)), bytes.NewReader(data))
				results[i] = result{r, existed, err}
			})
			created := 0
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("concurrent Record %d of the same ID: %v", i, r.err)
				}
				if !r.existed {
					created++
				}
				if r.rec.Seq != results[0].rec.Seq || !bytes.Equal(r.rec.Receipt, results[0].rec.Receipt) {
					t.Errorf("concurrent Record %d returned seq %d receipt %s; Record 0 returned seq %d receipt %s: all must return the one stored record",
						i, r.rec.Seq, r.rec.Receipt, results[0].rec.Seq, results[0].rec.Receipt)
				}
			}
			if created != 1 {
				t.Errorf("%d of %d concurrent Records of the same ID returned existed=false, want exactly 1", created, n)
			}
			checkCount(t, in, "", 1, "after concurrent Records of one ID")
			checkCiphertext(t, in, results[0].rec, data)
		})
	}
}

func testConcurrentConflicting(t *testing.T, open func(*testing.T) store.Inbox) {
	const n = 8
	in := open(t)
	rec := newRecord(ulid(1), "tenant-a", 300_000)
	data := payload(rec.ID, rec.CiphertextSize)
	results := make([]store.Record, n)
	errs := make([]error, n)
	concurrently(n, func(i int) {
		r := rec
		r.Header = fmt.Appendf(bytes.Clone(rec.Header), " variant %d", i)
		results[i], _, errs[i] = in.Record(t.Context(), r, bytes.NewReader(data))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("concurrent Records %d and %d of one ID with different headers both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent Record %d of one ID with its own header: error = %v, want nil for one and ErrConflict for the others", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d concurrent Records of one ID with different headers succeeded: %v", n, errs)
	}
	got, err := in.Get(t.Context(), rec.Recipient, rec.ID)
	if err != nil {
		t.Fatalf("Get(%s) after concurrent conflicting Records: %v", rec.ID, err)
	}
	if d := diffRecord(got, results[winner]); d != "" {
		t.Errorf("the stored record is not the one the successful Record %d returned: %s", winner, d)
	}
	checkCount(t, in, "", 1, "after concurrent conflicting Records")
	checkCiphertext(t, in, got, data)
}

func testConcurrentDifferentIDs(t *testing.T, open func(*testing.T) store.Inbox) {
	const n = 8
	in := open(t)
	results := make([]store.Record, n)
	errs := make([]error, n)
	concurrently(n, func(i int) {
		rec := newRecord(ulid(i), []string{"tenant-a", "tenant-b"}[i%2], int64(i)*40_000)
		var existed bool
		results[i], existed, errs[i] = in.Record(t.Context(), rec, bytes.NewReader(payload(rec.ID, rec.CiphertextSize)))
		if errs[i] == nil && existed {
			errs[i] = fmt.Errorf("existed=true for a new ID")
		}
	})
	seqs := map[int64]string{}
	for i, rec := range results {
		if errs[i] != nil {
			t.Fatalf("concurrent Record %d of a distinct ID: %v", i, errs[i])
		}
		if other, dup := seqs[rec.Seq]; dup {
			t.Errorf("records %s and %s were given the same seq %d", other, rec.ID, rec.Seq)
		}
		seqs[rec.Seq] = rec.ID
		checkCiphertext(t, in, rec, payload(rec.ID, rec.CiphertextSize))
	}
	checkCount(t, in, "", n, "after concurrent Records of distinct IDs")
	checkCount(t, in, "tenant-a", n/2, "after concurrent Records of distinct IDs")
}

func testCanceledContext(t *testing.T, open func(*testing.T) store.Inbox) {
	in := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, size := range []int64{10, 300_000} {
		rec := newRecord(ulid(int(size)), "tenant-a", size)
		if _, _, err := in.Record(ctx, rec, bytes.NewReader(payload(rec.ID, size))); err == nil {
			t.Errorf("Record(%s, %d bytes) with a canceled context succeeded, want an error", rec.ID, size)
		}
		checkAbsent(t, in, rec.Recipient, rec.ID, 0, "after a Record with a canceled context")
	}
}

func testClosed(t *testing.T, open func(*testing.T) store.Inbox) {
	ctx := t.Context()
	in := open(t)
	rec := mustRecord(t, in, newRecord(ulid(1), "tenant-a", 300_000))
	rc, err := in.OpenCiphertext(ctx, rec.Recipient, rec.ID)
	if err != nil {
		t.Fatalf("OpenCiphertext(%s): %v", rec.ID, err)
	}
	defer rc.Close()
	if err := in.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Record", func() error {
			r := newRecord(ulid(2), "tenant-a", 1)
			_, _, err := in.Record(ctx, r, bytes.NewReader(payload(r.ID, 1)))
			return err
		}},
		{"Get", func() error { _, err := in.Get(ctx, rec.Recipient, rec.ID); return err }},
		{"OpenCiphertext", func() error { _, err := in.OpenCiphertext(ctx, rec.Recipient, rec.ID); return err }},
		{"List", func() error { _, err := in.List(ctx, store.Query{Recipient: rec.Recipient, Limit: 1}); return err }},
		{"Count", func() error { _, err := in.Count(ctx, ""); return err }},
		{"reading an open ciphertext reader", func() error { _, err := io.Copy(io.Discard, rc); return err }},
		{"a second Close", in.Close},
	} {
		if err := c.call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", c.name, err)
		}
	}
}

// testReaderCloseAndContext cancels the context of an open ciphertext
// reader midway (the next chunk fails with context.Canceled) and reads
// after Close (ErrClosed).
func testReaderCloseAndContext(t *testing.T, open func(*testing.T) store.Inbox) {
	in := open(t)
	const size = 5 << 20 // several chunks whatever the chunk size
	rec := newRecord(ulid(7), "tenant-a", size)
	if _, _, err := in.Record(t.Context(), rec, bytes.NewReader(payload(rec.ID, size))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := in.OpenCiphertext(ctx, rec.Recipient, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
		t.Fatalf("reading the first byte: %v", err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("reading after the context was canceled: error = %v, want context.Canceled", err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Read after Close: error = %v, want ErrClosed", err)
	}
}
