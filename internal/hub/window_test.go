package hub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/directory"
	"taxlink/internal/lgdata"
	"taxlink/internal/node"
)

// TestAcceptanceWindow puts an eLTAX-like calendar in force and moves the
// hub's clock: on a Saturday the submission is refused as window-closed
// with a Retry-After and stays in the sender's outbox; on Monday morning
// the outbox releases it and it is recorded.
func TestAcceptanceWindow(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	doc := devtest.NextDirectory(t, nw, func(d *directory.Directory) {
		d.Window = directory.Window{Weekdays: []int{1, 2, 3, 4, 5}, Open: "08:30", Close: "24:00", ClosedOnHolidays: true, ClosedYearEnd: true}
	})
	if _, err := nw.Hub.Hub.UpdateDirectory(doc); err != nil {
		t.Fatal(err)
	}
	saturday := time.Date(2026, 12, 5, 12, 0, 0, 0, lgdata.JST())
	nw.Hub.Hub.SetClock(func() time.Time { return saturday })

	nta := nw.Nodes[devnet.NTAID]
	id, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
	if e, ok := api.AsError(err); !ok || e.Code != api.CodeWindowClosed || errors.Is(err, node.ErrRefused) {
		t.Fatalf("submission on a Saturday: %v; want a retryable %s", err, api.CodeWindowClosed)
	}
	if !strings.Contains(err.Error(), "2026-12-07 08:30") {
		t.Errorf("the refusal does not say when the window opens: %v", err)
	}
	o, err := nta.Store.GetOutgoing(ctx, id)
	if err != nil || o.Accepted != nil || o.LastError != string(api.CodeWindowClosed) {
		t.Fatalf("outbox entry %+v, %v: want it held with last error %s", o, err, api.CodeWindowClosed)
	}

	monday := time.Date(2026, 12, 7, 8, 31, 0, 0, lgdata.JST())
	nw.Hub.Hub.SetClock(func() time.Time { return monday })
	nta.Node.ResubmitPending(ctx)
	o, _ = nta.Store.GetOutgoing(ctx, id)
	if o.Accepted == nil {
		t.Fatalf("not released when the window opened: last error %q", o.LastError)
	}
	for {
		if n, _ := nw.Nodes[devnet.SapporoID].Store.Count(ctx, devnet.SapporoID); n == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
