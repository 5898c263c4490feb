package storetest

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/store"
)

// RunOutbox runs the conformance suite of [store.Outbox] (and the Close of
// a [store.NodeStore]) against the
// implementation opened by open, which must return a new, empty store each
// time it is called. RunOutbox closes every store it opens.
func RunOutbox(t *testing.T, open func(t *testing.T) store.NodeStore) {
	t.Helper()
	o := func(t *testing.T) store.NodeStore {
		t.Helper()
		s := open(t)
		t.Cleanup(func() { _ = s.Close() }) // the Closed test closes it first
		return s
	}
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, o(t)) })
	t.Run("RecordedIndex", func(t *testing.T) { testRecordedIndex(t, o(t)) })
	t.Run("InlineEnvelope", func(t *testing.T) { testInlineEnvelope(t, o(t)) })
	t.Run("Cursors", func(t *testing.T) { testCursors(t, o(t)) })
	t.Run("ConcurrentEnqueue", func(t *testing.T) { testConcurrentEnqueue(t, o(t)) })
	t.Run("OutboxClosed", func(t *testing.T) { testOutboxClosed(t, o(t)) })
}

func outgoing(id string, created time.Time) store.Outgoing {
	return store.Outgoing{
		ID: id, Type: "juminzei.kettei", Sender: "city-131016", Recipient: "employer-1",
		Created: created, EnvelopePath: "/var/lib/taxlink/out/" + id + ".env",
	}
}

func testOutbox(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	base := time.Date(2026, 4, 1, 9, 0, 0, 0, time.FixedZone("JST", 9*3600))
	// Enqueued out of creation order: Pending orders by Created.
	for i, id := range []string{"01C", "01A", "01B", "01D"} {
		o := outgoing(id, base.Add(time.Duration(3-i)*time.Minute))
		if err := s.Enqueue(ctx, o); err != nil {
			t.Fatalf("Enqueue(%s): %v", id, err)
		}
	}
	dup := outgoing("01A", base)
	dup.EnvelopePath = "/elsewhere"
	if err := s.Enqueue(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Enqueue of an existing ID: error = %v, want ErrConflict", err)
	}
	if err := s.Enqueue(ctx, outgoing("01A", base.Add(2*time.Minute))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Enqueue of an existing ID with equal fields: error = %v, want ErrConflict", err)
	}
	if o, err := s.GetOutgoing(ctx, "01A"); err != nil || o.EnvelopePath != outgoing("01A", base).EnvelopePath {
		t.Errorf("after a conflicting Enqueue, GetOutgoing(01A) = %+v, %v; want the first enqueue unchanged", o, err)
	}
	if o, err := s.GetOutgoing(ctx, "01C"); err != nil {
		t.Errorf("GetOutgoing(01C): %v", err)
	} else if o.Accepted != nil || o.Recorded != nil || !o.AcceptedAt.IsZero() || !o.RecordedAt.IsZero() || o.LastError != "" || o.RecordedIndex != -1 {
		t.Errorf("a new entry: GetOutgoing(01C) = %+v; want nothing accepted or recorded, no error and RecordedIndex -1", o)
	} else if o.Created.Location() != time.UTC {
		t.Errorf("GetOutgoing(01C).Created is in %v, want UTC", o.Created.Location())
	}

	pendingIDs := func(when string) []string {
		t.Helper()
		ps, err := s.Pending(ctx, 10)
		if err != nil {
			t.Fatalf("%s: Pending: %v", when, err)
		}
		var ids []string
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		return ids
	}
	if got, want := pendingIDs("after enqueueing"), []string{"01D", "01B", "01A", "01C"}; !slices.Equal(got, want) {
		t.Errorf("Pending = %v, want %v (oldest Created first)", got, want)
	}
	if ps, err := s.Pending(ctx, 2); err != nil || len(ps) != 2 || ps[0].ID != "01D" || ps[1].ID != "01B" {
		t.Errorf("Pending(2) = %v, %v; want 01D, 01B", ps, err)
	}

	acceptedAt := base.Add(time.Hour)
	if err := s.MarkAccepted(ctx, "01B", []byte(`{"accepted":1}`), acceptedAt); err != nil {
		t.Fatalf("MarkAccepted(01B): %v", err)
	}
	if err := s.MarkAccepted(ctx, "01B", []byte(`{"accepted":2}`), acceptedAt.Add(time.Hour)); err != nil {
		t.Errorf("second MarkAccepted(01B): %v, want nil (idempotent)", err)
	}
	if err := s.MarkRecorded(ctx, "01D", []byte(`{"recorded":1}`), acceptedAt, -1); err != nil {
		t.Fatalf("MarkRecorded(01D): %v", err)
	}
	if err := s.MarkRecorded(ctx, "01D", []byte(`{"recorded":2}`), time.Time{}, -1); err != nil {
		t.Errorf("second MarkRecorded(01D): %v, want nil (idempotent)", err)
	}
	if err := s.SetLastError(ctx, "01A", "hub.unavailable"); err != nil {
		t.Fatalf("SetLastError(01A): %v", err)
	}
	if err := s.SetLastError(ctx, "01C", "transient"); err != nil {
		t.Fatalf("SetLastError(01C): %v", err)
	}
	if err := s.SetLastError(ctx, "01C", ""); err != nil {
		t.Fatalf("SetLastError(01C, \"\"): %v", err)
	}
	if err := s.SetLastError(ctx, "01C", ""); err != nil {
		t.Errorf("SetLastError(01C, \"\") again: %v, want nil", err)
	}
	if got, want := pendingIDs("after accepting 01B and recording 01D"), []string{"01A", "01C"}; !slices.Equal(got, want) {
		t.Errorf("Pending = %v, want %v (accepted and recorded ones leave)", got, want)
	}

	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"MarkAccepted of an unknown ID", s.MarkAccepted(ctx, "01Z", []byte("{}"), base), store.ErrNotFound},
		{"MarkRecorded of an unknown ID", s.MarkRecorded(ctx, "01Z", []byte("{}"), base, -1), store.ErrNotFound},
		{"SetLastError of an unknown ID", s.SetLastError(ctx, "01Z", "x"), store.ErrNotFound},
		{"MarkAccepted with an empty receipt", s.MarkAccepted(ctx, "01C", nil, base), store.ErrInvalid},
		{"MarkRecorded with an oversized receipt", s.MarkRecorded(ctx, "01C", make([]byte, store.MaxHeaderLen+1), base, -1), store.ErrInvalid},
		{"MarkRecorded with an empty ID", s.MarkRecorded(ctx, "", []byte("{}"), base, -1), store.ErrInvalid},
		{"MarkAccepted with an ID holding a space", s.MarkAccepted(ctx, "01 C", []byte("{}"), base), store.ErrInvalid},
		{"SetLastError with a newline", s.SetLastError(ctx, "01C", "a\nb"), store.ErrInvalid},
		{"SetLastError too long", s.SetLastError(ctx, "01C", strings.Repeat("e", store.MaxErrorCodeLen+1)), store.ErrInvalid},
		{"SetLastError with invalid UTF-8", s.SetLastError(ctx, "01C", "\xff"), store.ErrInvalid},
		{"Enqueue without an envelope path", s.Enqueue(ctx, store.Outgoing{ID: "01E", Type: "t", Sender: "s", Recipient: "r", Created: base}), store.ErrInvalid},
		{"Enqueue without Created", s.Enqueue(ctx, outgoing("01E", time.Time{})), store.ErrInvalid},
		{"Enqueue without a type", func() error {
			o := outgoing("01E", base)
			o.Type = ""
			return s.Enqueue(ctx, o)
		}(), store.ErrInvalid},
		{"Enqueue already accepted", func() error {
			o := outgoing("01F", base)
			o.Accepted = []byte("{}")
			return s.Enqueue(ctx, o)
		}(), store.ErrInvalid},
		{"Enqueue already recorded", func() error {
			o := outgoing("01F", base)
			o.RecordedAt = base
			return s.Enqueue(ctx, o)
		}(), store.ErrInvalid},
		{"Enqueue with a bad last error", func() error {
			o := outgoing("01F", base)
			o.LastError = "a\x00b"
			return s.Enqueue(ctx, o)
		}(), store.ErrInvalid},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: error = %v, want %v", c.name, c.err, c.want)
		}
	}
	for _, id := range []string{"01Z", "01E", "01F"} {
		if _, err := s.GetOutgoing(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetOutgoing(%s) of an unknown (or rejected) ID: error = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetOutgoing(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("GetOutgoing(\"\"): error = %v, want ErrInvalid", err)
	}
	for _, limit := range []int{0, -1, store.MaxListLimit + 1} {
		if _, err := s.Pending(ctx, limit); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Pending(%d): error = %v, want ErrInvalid", limit, err)
		}
		if _, err := s.ListOutgoing(ctx, "", limit); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListOutgoing(%d): error = %v, want ErrInvalid", limit, err)
		}
	}

	b, err := s.GetOutgoing(ctx, "01B")
	if err != nil {
		t.Fatalf("GetOutgoing(01B): %v", err)
	}
	if string(b.Accepted) != `{"accepted":1}` || !b.AcceptedAt.Equal(acceptedAt) || b.AcceptedAt.Location() != time.UTC || b.Recorded != nil || !b.RecordedAt.IsZero() {
		t.Errorf("01B accepted = %s at %v, recorded = %s at %v; want the first acceptance kept (in UTC) and no recording",
			b.Accepted, b.AcceptedAt, b.Recorded, b.RecordedAt)
	}
	if want := outgoing("01B", base.Add(time.Minute)); b.ID != want.ID || b.Type != want.Type || b.Sender != want.Sender ||
		b.Recipient != want.Recipient || !b.Created.Equal(want.Created) || b.EnvelopePath != want.EnvelopePath {
		t.Errorf("GetOutgoing(01B) = %+v, want the fields of %+v", b, want)
	}
	d, err := s.GetOutgoing(ctx, "01D")
	if err != nil {
		t.Fatalf("GetOutgoing(01D): %v", err)
	}
	if string(d.Recorded) != `{"recorded":1}` || !d.RecordedAt.Equal(acceptedAt) || d.Accepted != nil || !d.AcceptedAt.IsZero() {
		t.Errorf("01D recorded = %s at %v, accepted = %s; want the first recording kept and no acceptance", d.Recorded, d.RecordedAt, d.Accepted)
	}
	if a, err := s.GetOutgoing(ctx, "01A"); err != nil || a.LastError != "hub.unavailable" {
		t.Errorf("GetOutgoing(01A) = LastError %q, %v; want %q", a.LastError, err, "hub.unavailable")
	}
	if c, err := s.GetOutgoing(ctx, "01C"); err != nil || c.LastError != "" {
		t.Errorf("GetOutgoing(01C) = LastError %q, %v; want it cleared", c.LastError, err)
	}

	// A zero time means now.
	before := time.Now()
	if err := s.MarkAccepted(ctx, "01C", []byte(`{"accepted":3}`), time.Time{}); err != nil {
		t.Fatalf("MarkAccepted(01C, zero time): %v", err)
	}
	if c, err := s.GetOutgoing(ctx, "01C"); err != nil || c.AcceptedAt.IsZero() ||
		c.AcceptedAt.Before(before.Add(-time.Minute)) || c.AcceptedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("after MarkAccepted with a zero time, GetOutgoing(01C) = AcceptedAt %v, %v; want about now", c.AcceptedAt, err)
	}
	// Recording an accepted envelope keeps its acceptance.
	if err := s.MarkRecorded(ctx, "01B", []byte(`{"recorded":3}`), acceptedAt.Add(time.Minute), -1); err != nil {
		t.Fatalf("MarkRecorded(01B): %v", err)
	}
	if b, err := s.GetOutgoing(ctx, "01B"); err != nil || string(b.Accepted) != `{"accepted":1}` || string(b.Recorded) != `{"recorded":3}` {
		t.Errorf("after recording the accepted 01B: accepted %s, recorded %s, %v", b.Accepted, b.Recorded, err)
	}

	total, accepted, recorded, err := s.OutgoingCounts(ctx)
	if err != nil || total != 4 || accepted != 2 || recorded != 2 {
		t.Errorf("OutgoingCounts = %d, %d, %d, %v; want 4, 2, 2", total, accepted, recorded, err)
	}
	if got, want := pendingIDs("at the end"), []string{"01A"}; !slices.Equal(got, want) {
		t.Errorf("Pending = %v, want %v", got, want)
	}
	var ids []string
	for after := ""; ; {
		page, err := s.ListOutgoing(ctx, after, 3)
		if err != nil {
			t.Fatalf("ListOutgoing(%q, 3): %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("ListOutgoing(%q, 3) returned %d entries", after, len(page))
		}
		for _, o := range page {
			ids = append(ids, o.ID)
		}
		after = page[len(page)-1].ID
	}
	if want := []string{"01A", "01B", "01C", "01D"}; !slices.Equal(ids, want) {
		t.Errorf("paging ListOutgoing by 3 gave %v, want %v", ids, want)
	}
	if page, err := s.ListOutgoing(ctx, "01B", store.MaxListLimit); err != nil || len(page) != 2 || page[0].ID != "01C" {
		t.Errorf("ListOutgoing(01B) = %v, %v; want 01C, 01D", page, err)
	}
}

// testInlineEnvelope checks an envelope held in the outbox itself: stored
// with its entry, returned by GetOutgoing alone, kept by MarkRecorded (a
// sender may still need it for its acceptance receipt) and dropped by
// MarkAccepted; and that Enqueue takes exactly one of EnvelopePath and
// Envelope.
func testInlineEnvelope(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	env := []byte("TLENV\x00\x01 header, signature and ciphertext")
	inline := func(id string) store.Outgoing {
		o := outgoing(id, base)
		o.EnvelopePath, o.Envelope = "", env
		return o
	}
	for _, c := range []struct {
		name string
		edit func(*store.Outgoing)
	}{
		{"both", func(o *store.Outgoing) { o.EnvelopePath = "/var/lib/taxlink/out/01X" }},
		{"neither", func(o *store.Outgoing) { o.Envelope = nil }},
		{"oversized", func(o *store.Outgoing) { o.Envelope = make([]byte, store.MaxInlineEnvelope+1) }},
	} {
		o := inline("01X")
		c.edit(&o)
		if err := s.Enqueue(ctx, o); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Enqueue with %s EnvelopePath and Envelope: error = %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := s.GetOutgoing(ctx, "01X"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused Enqueue left an entry: GetOutgoing(01X) error = %v", err)
	}
	for _, id := range []string{"01A", "01B"} {
		if err := s.Enqueue(ctx, inline(id)); err != nil {
			t.Fatalf("Enqueue(%s) inline: %v", id, err)
		}
	}
	if o, err := s.GetOutgoing(ctx, "01A"); err != nil || string(o.Envelope) != string(env) || o.EnvelopePath != "" {
		t.Errorf("GetOutgoing(01A) = envelope %q, path %q, %v; want the inline envelope and no path", o.Envelope, o.EnvelopePath, err)
	}
	ps, err := s.Pending(ctx, 10)
	if err != nil || len(ps) != 2 || ps[0].Envelope != nil || ps[1].Envelope != nil {
		t.Errorf("Pending = %+v, %v; want both entries without their envelopes", ps, err)
	}
	ls, err := s.ListOutgoing(ctx, "", 10)
	if err != nil || len(ls) != 2 || ls[0].Envelope != nil {
		t.Errorf("ListOutgoing = %+v, %v; want both entries without their envelopes", ls, err)
	}
	if err := s.MarkRecorded(ctx, "01A", []byte(`{"recorded":1}`), base, -1); err != nil {
		t.Fatal(err)
	}
	if o, err := s.GetOutgoing(ctx, "01A"); err != nil || string(o.Envelope) != string(env) {
		t.Errorf("after MarkRecorded, GetOutgoing(01A).Envelope = %q, %v; want it kept until the acceptance", o.Envelope, err)
	}
	for _, id := range []string{"01A", "01B"} {
		if err := s.MarkAccepted(ctx, id, []byte(`{"accepted":1}`), base); err != nil {
			t.Fatal(err)
		}
		if o, err := s.GetOutgoing(ctx, id); err != nil || o.Envelope != nil || o.Accepted == nil {
			t.Errorf("after MarkAccepted, GetOutgoing(%s) = envelope %q, accepted %q, %v; want the envelope dropped", id, o.Envelope, o.Accepted, err)
		}
	}
}

// testRecordedIndex checks SetRecordedIndex (set once) and that
// ListOutgoing orders IDs byte-wise, whatever a database's locale says.
func testRecordedIndex(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Enqueue(ctx, outgoing("01A", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRecordedIndex(ctx, "01A", 7); err != nil {
		t.Fatalf("SetRecordedIndex(01A, 7): %v", err)
	}
	if err := s.SetRecordedIndex(ctx, "01A", 7); err != nil {
		t.Errorf("repeated SetRecordedIndex(01A, 7): %v, want nil", err)
	}
	if err := s.SetRecordedIndex(ctx, "01A", 8); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SetRecordedIndex(01A, 8) after 7: error = %v, want ErrConflict", err)
	}
	if o, err := s.GetOutgoing(ctx, "01A"); err != nil || o.RecordedIndex != 7 {
		t.Errorf("GetOutgoing(01A).RecordedIndex = %d, %v; want 7", o.RecordedIndex, err)
	}
	// MarkRecorded with an index stores both in one write, and changes
	// nothing when the index conflicts.
	if err := s.Enqueue(ctx, outgoing("01M", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecorded(ctx, "01M", []byte(`{"recorded":1}`), base, 9); err != nil {
		t.Fatalf("MarkRecorded(01M, index 9): %v", err)
	}
	if err := s.MarkRecorded(ctx, "01M", []byte(`{"recorded":1}`), base, 9); err != nil {
		t.Errorf("repeated MarkRecorded(01M, index 9): %v, want nil", err)
	}
	if err := s.MarkRecorded(ctx, "01M", []byte(`{"recorded":1}`), base, 10); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkRecorded(01M, index 10) after 9: error = %v, want ErrConflict", err)
	}
	if o, err := s.GetOutgoing(ctx, "01M"); err != nil || o.RecordedIndex != 9 || string(o.Recorded) != `{"recorded":1}` {
		t.Errorf("GetOutgoing(01M) = index %d, recorded %q, %v; want 9 and the receipt", o.RecordedIndex, o.Recorded, err)
	}
	if err := s.Enqueue(ctx, outgoing("01N", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRecordedIndex(ctx, "01N", 11); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecorded(ctx, "01N", []byte(`{"recorded":2}`), base, 12); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkRecorded(01N, index 12) after SetRecordedIndex 11: error = %v, want ErrConflict", err)
	}
	if o, err := s.GetOutgoing(ctx, "01N"); err != nil || o.Recorded != nil || o.RecordedIndex != 11 {
		t.Errorf("GetOutgoing(01N) after the conflict = recorded %q, index %d, %v; want unrecorded, 11", o.Recorded, o.RecordedIndex, err)
	}
	if err := s.MarkRecorded(ctx, "01Z", []byte("{}"), base, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkRecorded with an index of an unknown ID: error = %v, want ErrNotFound", err)
	}
	if err := s.SetRecordedIndex(ctx, "01Z", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRecordedIndex of an unknown ID: error = %v, want ErrNotFound", err)
	}
	if err := s.SetRecordedIndex(ctx, "01A", -1); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetRecordedIndex(01A, -1): error = %v, want ErrInvalid", err)
	}
	if err := s.SetRecordedIndex(ctx, "", 1); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetRecordedIndex(\"\", 1): error = %v, want ErrInvalid", err)
	}
	if err := s.Enqueue(ctx, outgoing("01B", base)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRecordedIndex(ctx, "01B", 0); err != nil {
		t.Fatalf("SetRecordedIndex(01B, 0): %v", err)
	}
	if err := s.SetRecordedIndex(ctx, "01B", math.MaxInt64); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SetRecordedIndex(01B, max) after 0: error = %v, want ErrConflict", err)
	}
	if o, err := s.GetOutgoing(ctx, "01B"); err != nil || o.RecordedIndex != 0 {
		t.Errorf("GetOutgoing(01B).RecordedIndex = %d, %v; want 0", o.RecordedIndex, err)
	}

	// IDs list in byte order, whatever a database's locale says.
	for _, id := range []string{"a-1", "B_2", "a_1", "Z", "é", "Ä"} {
		if err := s.Enqueue(ctx, outgoing(id, base)); err != nil {
			t.Fatalf("Enqueue(%s): %v", id, err)
		}
	}
	page, err := s.ListOutgoing(ctx, "", store.MaxListLimit)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range page {
		ids = append(ids, o.ID)
	}
	want := []string{"01A", "01B", "01M", "01N", "a-1", "B_2", "a_1", "Z", "é", "Ä"}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("ListOutgoing = %q, want byte order %q", ids, want)
	}
}

func testCursors(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	if v, err := s.Cursor(ctx, "hub.deliveries"); err != nil || v != 0 {
		t.Errorf("Cursor of an unset name = %d, %v; want 0, nil", v, err)
	}
	for _, v := range []uint64{1, 42, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64, 0} {
		if err := s.SetCursor(ctx, "hub.deliveries", v); err != nil {
			t.Fatalf("SetCursor(%d): %v", v, err)
		}
		if got, err := s.Cursor(ctx, "hub.deliveries"); err != nil || got != v {
			t.Errorf("Cursor after SetCursor(%d) = %d, %v", v, got, err)
		}
	}
	if err := s.SetCursor(ctx, "other", 99); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Cursor(ctx, "other"); err != nil || got != 99 {
		t.Errorf("Cursor(other) = %d, %v; want 99", got, err)
	}
	if got, err := s.Cursor(ctx, "hub.deliveries"); err != nil || got != 0 {
		t.Errorf("Cursor(hub.deliveries) after setting another = %d, %v; want 0", got, err)
	}
	if _, err := s.Cursor(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Cursor(\"\"): error = %v, want ErrInvalid", err)
	}
	if err := s.SetCursor(ctx, "a b", 1); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetCursor(\"a b\"): error = %v, want ErrInvalid", err)
	}
}

// testConcurrentEnqueue enqueues the same IDs from several goroutines:
// exactly one Enqueue of each ID succeeds, the others fail with
// ErrConflict.
func testConcurrentEnqueue(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	const workers, ids = 8, 5
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make([][]error, workers)
	for w := range workers {
		errs[w] = make([]error, ids)
		wg.Go(func() {
			for i := range ids {
				errs[w][i] = s.Enqueue(ctx, outgoing(ulid(i), base))
			}
		})
	}
	wg.Wait()
	for i := range ids {
		ok := 0
		for w := range workers {
			switch err := errs[w][i]; {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("Enqueue(%s) in worker %d: %v, want nil or ErrConflict", ulid(i), w, err)
			}
		}
		if ok != 1 {
			t.Errorf("Enqueue(%s) succeeded %d times out of %d, want once", ulid(i), ok, workers)
		}
	}
	if total, _, _, err := s.OutgoingCounts(ctx); err != nil || total != ids {
		t.Errorf("OutgoingCounts total = %d, %v; want %d", total, err, ids)
	}
}

func testOutboxClosed(t *testing.T, s store.NodeStore) {
	ctx := t.Context()
	if err := s.Enqueue(ctx, outgoing("01A", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Enqueue", s.Enqueue(ctx, outgoing("01B", time.Now()))},
		{"Pending", func() error { _, err := s.Pending(ctx, 1); return err }()},
		{"ListOutgoing", func() error { _, err := s.ListOutgoing(ctx, "", 1); return err }()},
		{"GetOutgoing", func() error { _, err := s.GetOutgoing(ctx, "01A"); return err }()},
		{"MarkAccepted", s.MarkAccepted(ctx, "01A", []byte("{}"), time.Time{})},
		{"MarkRecorded", s.MarkRecorded(ctx, "01A", []byte("{}"), time.Time{}, -1)},
		{"SetRecordedIndex", s.SetRecordedIndex(ctx, "01A", 1)},
		{"SetLastError", s.SetLastError(ctx, "01A", "x")},
		{"SetCursor", s.SetCursor(ctx, "c", 1)},
		{"Cursor", func() error { _, err := s.Cursor(ctx, "c"); return err }()},
		{"OutgoingCounts", func() error { _, _, _, err := s.OutgoingCounts(ctx); return err }()},
	} {
		if !errors.Is(c.err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", c.name, c.err)
		}
	}
}
