package node_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
)

// TestReverseFlow sends local-tax information (資料情報等の相互データ提供)
// from 札幌市 and from a town hosted by the outsourcer to the NTA, through
// the hub, and checks both receipts and the content at the NTA's node.
func TestReverseFlow(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range []struct{ nodeID, sender string }{
		{devnet.SapporoID, devnet.SapporoID},
		{devnet.OutsourcerID, "lg:013315"},
	} {
		src := nw.Nodes[s.nodeID]
		doc := "<地方税資料 from=\"" + s.sender + "\"/>"
		id, rc, err := src.Node.Submit(ctx, node.Submission{Sender: s.sender, Recipient: devnet.NTAID, Type: "local-tax-info", ContentType: "application/xml", Payload: strings.NewReader(doc)})
		if err != nil {
			t.Fatalf("%s → NTA: %v", s.sender, err)
		}
		if rc.Sender != s.sender || rc.Recipient != devnet.NTAID {
			t.Errorf("acceptance receipt %+v", rc)
		}
		for {
			if _, err := src.Node.PollReceipts(ctx, time.Second); err != nil && ctx.Err() != nil {
				t.Fatal(err)
			}
			o, err := src.Store.GetOutgoing(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if o.Recorded != nil {
				if a, r := node.VerifyBoth(src.Directory(), devnet.HubID, o); a != nil || r != nil {
					t.Fatalf("%s: receipts: %v %v", s.sender, a, r)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: no recording receipt from the NTA", s.sender)
			}
		}
		pt, _, err := nw.Nodes[devnet.NTAID].Node.Open(ctx, devnet.NTAID, id)
		if err != nil {
			t.Fatalf("NTA opens %s: %v", id, err)
		}
		got, _ := io.ReadAll(pt)
		pt.Close()
		if string(got) != doc {
			t.Errorf("NTA read %q, sent %q", got, doc)
		}
	}
	// The outsourcer's node may not send as a town it does not host.
	_, _, err := nw.Nodes[devnet.OutsourcerID].Node.Submit(ctx, node.Submission{Sender: devnet.SapporoID, Recipient: devnet.NTAID, Type: "local-tax-info", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
	if err == nil || !strings.Contains(err.Error(), "does not host") {
		t.Errorf("outsourcer sending as 札幌市: %v", err)
	}
}
