package node_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/receipt"
	"taxlink/internal/store/sqlite"
)

// TestReceiptsVerifyAndForgeriesFail sends one notification, waits for both
// receipts, and checks that VerifyBoth accepts them and refuses every
// forgery or substitution.
func TestReceiptsVerifyAndForgeriesFail(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nta := nw.Nodes[devnet.NTAID]
	id, _, err := nta.Node.Submit(ctx, node.Submission{
		Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml",
		Payload: strings.NewReader("<a/>"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var o sqlite.Outgoing
	for {
		if _, err := nta.Node.PollReceipts(ctx, time.Second); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
		if o, err = nta.Store.GetOutgoing(ctx, id); err != nil {
			t.Fatal(err)
		}
		if o.Recorded != nil {
			break
		}
	}
	dir := nta.Directory()
	if a, r := node.VerifyBoth(dir, devnet.HubID, o); a != nil || r != nil {
		t.Fatalf("genuine receipts refused: %v, %v", a, r)
	}

	// A recording receipt signed by a node that does not host the
	// recipient, with a valid signature of its own.
	tokyoNode, _ := nw.Layout.Node(devnet.TokyoID)
	tokyoKey, err := devnet.ReadKey(nw.Layout, filepath.Join(filepath.Dir(tokyoNode.Config), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := receipt.Parse(o.Recorded)
	rec.Issuer = devnet.TokyoID
	if err := rec.Sign(tokyoKey); err != nil {
		t.Fatal(err)
	}
	forgedByTokyo, _ := rec.MarshalJSON()

	flip := func(b []byte) []byte {
		c := bytes.Clone(b)
		i := bytes.Index(c, []byte(`"seq":`)) + len(`"seq":`)
		c[i] = '9'
		return c
	}
	cases := []struct {
		name     string
		mutate   func(o *sqlite.Outgoing)
		accBad   bool
		recBad   bool
		contains string
	}{
		{"acceptance altered", func(o *sqlite.Outgoing) { o.Accepted = flip(o.Accepted) }, true, false, ""},
		{"recording altered", func(o *sqlite.Outgoing) { o.Recorded = flip(o.Recorded) }, false, true, ""},
		{"recording in place of acceptance", func(o *sqlite.Outgoing) { o.Accepted = o.Recorded }, true, false, ""},
		{"recording by a node that does not host the recipient", func(o *sqlite.Outgoing) { o.Recorded = forgedByTokyo }, false, true, "expected " + devnet.SapporoID},
		{"receipt for another envelope", func(o *sqlite.Outgoing) { o.ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV" }, true, true, "another envelope"},
		{"recording missing", func(o *sqlite.Outgoing) { o.Recorded = nil }, false, true, "no recording receipt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := o
			tc.mutate(&c)
			a, r := node.VerifyBoth(dir, devnet.HubID, c)
			if (a != nil) != tc.accBad || (r != nil) != tc.recBad {
				t.Fatalf("acceptance error %v (want error: %v), recording error %v (want error: %v)", a, tc.accBad, r, tc.recBad)
			}
			if tc.contains != "" && !strings.Contains(errString(a)+errString(r), tc.contains) {
				t.Errorf("errors %v / %v do not mention %q", a, r, tc.contains)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
