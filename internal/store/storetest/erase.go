package storetest

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"taxlink/internal/store"
)

// RunErase checks [store.Inbox.Erase]: open must return a new, empty inbox
// each time it is called. RunErase closes every inbox it opens.
func RunErase(t *testing.T, open func(t *testing.T) store.Inbox) {
	t.Helper()
	o := func(t *testing.T) store.Inbox {
		t.Helper()
		in := open(t)
		t.Cleanup(func() { _ = in.Close() })
		return in
	}
	t.Run("Scope", func(t *testing.T) { testEraseScope(t, o(t)) })
	t.Run("Nothing", func(t *testing.T) { testEraseNothing(t, o(t)) })
	t.Run("Vacuum", func(t *testing.T) { testVacuum(t, o(t)) })
	t.Run("Invalid", func(t *testing.T) { testEraseInvalid(t, o(t)) })
	t.Run("Closed", func(t *testing.T) {
		in := open(t)
		if err := in.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		q := store.EraseQuery{Recipient: "tenant-a", RecordedBefore: time.Now(), Limit: 1}
		if _, err := in.Erase(t.Context(), q); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Erase after Close: error = %v, want ErrClosed", err)
		}
	})
}

// testVacuum erases one tenant whole and vacuums a store that can: the
// other tenant's records stay intact, ciphertext included.
func testVacuum(t *testing.T, in store.Inbox) {
	v, ok := in.(store.Vacuumer)
	if !ok {
		t.Skip("the store does not implement store.Vacuumer")
	}
	ctx := t.Context()
	recordAt(t, in, 1, "tenant-a", "income-tax-return", -time.Hour, 300_000)
	keep := recordAt(t, in, 2, "tenant-b", "income-tax-return", -time.Hour, 70_000)
	if _, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", RecordedBefore: eraseBase.Add(time.Hour), Limit: store.MaxEraseLimit}); err != nil {
		t.Fatal(err)
	}
	if err := v.Vacuum(ctx); err != nil {
		t.Fatalf("Vacuum: %v", err)
	}
	if n, err := in.Count(ctx, "tenant-a"); err != nil || n != 0 {
		t.Errorf("tenant-a after erase and vacuum: %d records, %v", n, err)
	}
	rc, err := in.OpenCiphertext(ctx, "tenant-b", keep.ID)
	if err != nil {
		t.Fatalf("tenant-b's record after vacuum: %v", err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != keep.CiphertextSize {
		t.Errorf("tenant-b's ciphertext after vacuum: %d bytes, %v; want %d", n, err, keep.CiphertextSize)
	}
}

// eraseBase is the "now" of the erase tests.
var eraseBase = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// recordAt records a record of tenant and type, recorded at eraseBase+at.
func recordAt(t *testing.T, in store.Inbox, n int, tenant, typ string, at time.Duration, size int64) store.Record {
	t.Helper()
	rec := newRecord(ulid(n), tenant, size)
	rec.Type = typ
	rec.Created = eraseBase.Add(at - time.Minute)
	rec.RecordedAt = eraseBase.Add(at)
	return mustRecord(t, in, rec)
}

func testEraseScope(t *testing.T, in store.Inbox) {
	ctx := t.Context()
	const day = 24 * time.Hour
	const typeA, typeB = "income-tax-return", "juminzei.tokubetsu-choshu"
	old := []store.Record{ // tenant-a, typeA, expired, in Seq order
		recordAt(t, in, 1, "tenant-a", typeA, -10*day, 0),
		recordAt(t, in, 2, "tenant-a", typeA, -9*day, 300_000), // several chunks at any chunk size
		recordAt(t, in, 3, "tenant-a", typeA, -8*day, 10),
	}
	fresh := recordAt(t, in, 4, "tenant-a", typeA, -1*day, 20)
	edge := recordAt(t, in, 5, "tenant-a", typeA, -5*day, 30) // exactly at the bound: kept
	otherType := recordAt(t, in, 6, "tenant-a", typeB, -10*day, 40)
	otherTenant := recordAt(t, in, 7, "tenant-b", typeA, -10*day, 50)
	bound := eraseBase.Add(-5 * day)

	first, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", Type: typeA, RecordedBefore: bound, Limit: 2})
	if err != nil {
		t.Fatalf("Erase(tenant-a, %s, limit 2): %v", typeA, err)
	}
	want := store.Erased{Count: 2, IDs: []string{old[0].ID, old[1].ID}, Bytes: old[0].CiphertextSize + old[1].CiphertextSize}
	checkErased(t, first, want, "first batch (limit 2)")

	second, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", Type: typeA, RecordedBefore: bound, Limit: 10})
	if err != nil {
		t.Fatalf("Erase(tenant-a, %s, limit 10): %v", typeA, err)
	}
	checkErased(t, second, store.Erased{Count: 1, IDs: []string{old[2].ID}, Bytes: old[2].CiphertextSize}, "second batch")

	third, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", Type: typeA, RecordedBefore: bound, Limit: 10})
	if err != nil {
		t.Fatalf("Erase(tenant-a, %s) a third time: %v", typeA, err)
	}
	checkErased(t, third, store.Erased{}, "third batch (nothing left)")

	for _, r := range old {
		checkAbsent(t, in, r.Recipient, r.ID, 4, "after erasing "+r.ID)
	}
	checkCount(t, in, "tenant-a", 3, "after erasing")
	checkCount(t, in, "tenant-b", 1, "after erasing tenant-a's records")
	listed, err := in.List(ctx, store.Query{Recipient: "tenant-a", Limit: 100})
	if err != nil {
		t.Fatalf("List(tenant-a): %v", err)
	}
	if got, want := ids(listed), []string{fresh.ID, edge.ID, otherType.ID}; !slices.Equal(got, want) {
		t.Errorf("after erasing, List(tenant-a) = %v, want %v", got, want)
	}
	for _, r := range []store.Record{fresh, edge, otherType, otherTenant} {
		checkCiphertext(t, in, r, payload(r.ID, r.CiphertextSize))
	}

	// Every type, still only tenant-a and only before the bound.
	all, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", RecordedBefore: bound, Limit: 10})
	if err != nil {
		t.Fatalf("Erase(tenant-a, every type): %v", err)
	}
	checkErased(t, all, store.Erased{Count: 1, IDs: []string{otherType.ID}, Bytes: otherType.CiphertextSize}, "every type")
	checkAbsent(t, in, "tenant-a", otherType.ID, 3, "after erasing every type")
	if _, err := in.Get(ctx, "tenant-b", otherTenant.ID); err != nil {
		t.Errorf("Get(tenant-b, %s) after erasing tenant-a's records: %v", otherTenant.ID, err)
	}

	// The bound is exclusive: just after it, the edge record goes too.
	last, err := in.Erase(ctx, store.EraseQuery{Recipient: "tenant-a", RecordedBefore: bound.Add(time.Nanosecond), Limit: 10})
	if err != nil {
		t.Fatalf("Erase(tenant-a, just after the bound): %v", err)
	}
	checkErased(t, last, store.Erased{Count: 1, IDs: []string{edge.ID}, Bytes: edge.CiphertextSize}, "just after the bound")

	// A later Record of an erased ID stores it anew, with a higher Seq.
	again := recordAt(t, in, 1, "tenant-a", typeA, -10*day, 0)
	if again.Seq <= otherTenant.Seq {
		t.Errorf("re-recorded %s got seq %d, not above the last seq %d", again.ID, again.Seq, otherTenant.Seq)
	}
}

func checkErased(t *testing.T, got, want store.Erased, when string) {
	t.Helper()
	if got.Count != want.Count || got.Bytes != want.Bytes || !slices.Equal(got.IDs, want.IDs) {
		t.Errorf("%s: Erase = {Count %d, IDs %v, Bytes %d}, want {Count %d, IDs %v, Bytes %d}",
			when, got.Count, got.IDs, got.Bytes, want.Count, want.IDs, want.Bytes)
	}
}

func testEraseNothing(t *testing.T, in store.Inbox) {
	got, err := in.Erase(t.Context(), store.EraseQuery{Recipient: "tenant-a", RecordedBefore: eraseBase, Limit: 5})
	if err != nil {
		t.Fatalf("Erase of an empty inbox: %v", err)
	}
	checkErased(t, got, store.Erased{}, "empty inbox")
	recordAt(t, in, 1, "tenant-b", "t", -time.Hour, 1)
	got, err = in.Erase(t.Context(), store.EraseQuery{Recipient: "tenant-a", RecordedBefore: eraseBase, Limit: 5})
	if err != nil {
		t.Fatalf("Erase of a tenant without records: %v", err)
	}
	checkErased(t, got, store.Erased{}, "tenant without records")
	checkCount(t, in, "", 1, "after erasing another tenant's nothing")
}

func testEraseInvalid(t *testing.T, in store.Inbox) {
	rec := recordAt(t, in, 1, "tenant-a", "t", -time.Hour, 1)
	ok := store.EraseQuery{Recipient: "tenant-a", RecordedBefore: eraseBase, Limit: 1}
	for _, c := range []struct {
		name, mention string
		mut           func(q *store.EraseQuery)
	}{
		{"empty recipient", "Recipient", func(q *store.EraseQuery) { q.Recipient = "" }},
		{"recipient with a space", "Recipient", func(q *store.EraseQuery) { q.Recipient = "tenant a" }},
		{"type with a control character", "Type", func(q *store.EraseQuery) { q.Type = "t\n" }},
		{"zero time", "RecordedBefore", func(q *store.EraseQuery) { q.RecordedBefore = time.Time{} }},
		{"time out of range", "RecordedBefore", func(q *store.EraseQuery) { q.RecordedBefore = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"zero limit", "Limit", func(q *store.EraseQuery) { q.Limit = 0 }},
		{"negative limit", "Limit", func(q *store.EraseQuery) { q.Limit = -1 }},
		{"limit too large", "Limit", func(q *store.EraseQuery) { q.Limit = store.MaxEraseLimit + 1 }},
	} {
		q := ok
		c.mut(&q)
		got, err := in.Erase(t.Context(), q)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Erase error = %v, want ErrInvalid", c.name, err)
		} else if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: Erase error %q does not name %s", c.name, err, c.mention)
		}
		if got.Count != 0 || len(got.IDs) != 0 {
			t.Errorf("%s: Erase returned %+v with its error", c.name, got)
		}
	}
	if _, err := in.Get(t.Context(), rec.Recipient, rec.ID); err != nil {
		t.Errorf("after invalid Erase calls, Get(%s): %v; something was erased", rec.ID, err)
	}
	q := ok
	q.Limit = store.MaxEraseLimit
	if got, err := in.Erase(t.Context(), q); err != nil || got.Count != 1 {
		t.Errorf("Erase with Limit MaxEraseLimit = %+v, %v; want the one record erased", got, err)
	}
}
