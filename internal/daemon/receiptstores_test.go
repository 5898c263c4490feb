package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/acceptance"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/queue"
)

// TestHubReceiptStoresMoved checks the wiring of a hub running alone: its
// acceptance receipts are in data_dir/accepted.db and the recording
// receipts its senders read in data_dir/receipts.db (both mode 0600), not
// in JetStream; and a hub upgraded from a version that kept them in the
// TL_ACCEPTED bucket and the TL_RECEIPTS stream moves them into the files
// when it starts and deletes the bucket and the stream, so that a sender
// submitting an envelope again still gets the receipt it was given, and a
// node's cursor still names the receipts it took.
func TestHubReceiptStoresMoved(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	nw := devtest.Start(t)
	data := filepath.Join(filepath.Dir(nw.Layout.HubConfig), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, _, err := nw.Nodes[devnet.NTAID].Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: bytes.NewReader([]byte("<a/>"))})
	if err != nil {
		t.Fatal(err)
	}
	given, err := nw.Hub.Acceptances.Get(ctx, id)
	if err != nil {
		t.Fatalf("the hub's receipt of %s: %v", id, err)
	}
	held, err := nw.Hub.Recordings.After(ctx, devnet.NTAID, 0, 10, time.Minute)
	if err != nil || len(held) != 1 {
		t.Fatalf("the recording receipt of %s held for %s: %+v, %v; want one", id, devnet.NTAID, held, err)
	}
	files := []string{filepath.Join(data, "accepted.db"), filepath.Join(data, "receipts.db")}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want a file of mode 0600", f, fi, err)
		}
	}
	js := nw.Hub.Queue.JetStream()
	if _, err := js.KeyValue(ctx, "TL_ACCEPTED"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a hub alone has a TL_ACCEPTED bucket (%v): its receipts belong in accepted.db", err)
	}
	if _, err := js.Stream(ctx, "TL_RECEIPTS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a hub alone has a TL_RECEIPTS stream (%v): its receipts belong in receipts.db", err)
	}
	if err := nw.Hub.Stop(); err != nil {
		t.Fatal(err)
	}

	// What an earlier version left: the receipts in JetStream, no files.
	q, err := queue.Open(ctx, queue.InDataDir(data))
	if err != nil {
		t.Fatal(err)
	}
	js = q.JetStream()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TL_ACCEPTED", History: 1, Storage: jetstream.FileStorage})
	if err == nil {
		_, err = kv.Put(ctx, id, given)
	}
	if err == nil {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "TL_RECEIPTS", Subjects: []string{"r.>"}, Storage: jetstream.FileStorage, AllowDirect: true})
	}
	if err == nil {
		m := nats.NewMsg("r." + queue.Token(devnet.NTAID))
		m.Header.Set(jetstream.MsgIDHeader, "r."+id)
		m.Header.Set("Tl-Ledger-Index", strconv.FormatInt(held[0].LedgerIndex, 10))
		m.Data = held[0].Receipt
		_, err = js.PublishMsg(ctx, m)
	}
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(f + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
	}

	hub, err := daemon.StartHub(ctx, nw.Layout.HubConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart the hub on the earlier version's store: %v", err)
	}
	defer hub.Stop()
	got, err := hub.Acceptances.Get(ctx, id)
	if err != nil || !bytes.Equal(got, given) {
		t.Fatalf("after the move, the receipt of %s: %q, %v; want the one given", id, got, err)
	}
	if _, err := hub.Acceptances.Get(ctx, "01JH8Z5V6Q3K4M7N8P9R0S1T2V"); !errors.Is(err, acceptance.ErrNotFound) {
		t.Errorf("an envelope never accepted: %v, want ErrNotFound", err)
	}
	moved, err := hub.Recordings.After(ctx, devnet.NTAID, 0, 10, 0)
	if err != nil || len(moved) != 1 || moved[0].Seq != held[0].Seq || moved[0].LedgerIndex != held[0].LedgerIndex || !bytes.Equal(moved[0].Receipt, held[0].Receipt) {
		t.Fatalf("after the move, the receipts held for %s: %+v, %v; want %+v", devnet.NTAID, moved, err, held)
	}
	js = hub.Queue.JetStream()
	if _, err := js.KeyValue(ctx, "TL_ACCEPTED"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the bucket after the move: %v, want it deleted", err)
	}
	if _, err := js.Stream(ctx, "TL_RECEIPTS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the stream after the move: %v, want it deleted", err)
	}
}

// TestReceiptsWaitEndedByNode checks that a node ending its wait for
// receipts (it stops, or its request times out) is not logged by the hub
// as a failed read: every node shutdown left such an ERROR line.
func TestReceiptsWaitEndedByNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	var logs devtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nw, err := devnet.InitAndStart(ctx, t.TempDir(), devnet.Options{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("dev network: %v", err)
	}
	t.Cleanup(nw.Stop)
	nta := nw.Nodes[devnet.NTAID].Node
	pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = nta.PollReceipts(pctx, 5*time.Second)
	pcancel()
	if err == nil {
		t.Fatal("a poll whose request ended before the hub's wait returned no error")
	}
	// Answered after the first request's handler ended (the hub's handlers
	// for one node's connection run as its requests arrive).
	if _, err := nta.PollReceipts(ctx, 0); err != nil {
		t.Fatalf("a poll after it: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "expiring soon") {
		t.Fatalf("the network's warnings were not captured; the check below would prove nothing:\n%s", out)
	}
	if strings.Contains(out, "read receipts failed") {
		t.Fatalf("the hub logged a node's ended wait as a failed read:\n%s", out)
	}
}

// TestHubStopEndsReceiptWaits stops a hub while a node waits for its
// recording receipts: the wait ends with an answer (no receipts) instead
// of holding the hub's graceful stop, which waited for every node's wait
// up to its 5 s limit, while the request went on until its own wait (30 s
// here) ran out.
func TestHubStopEndsReceiptWaits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub")
	}
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hub := startHub(t, lay)
	ntaInfo, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(ntaInfo.Config, slog.New(slog.DiscardHandler)) // no loops of its own: the only wait is the test's
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	done := make(chan error, 1)
	go func() {
		_, err := nta.Node.PollReceipts(ctx, 30*time.Second)
		done <- err
	}()
	for hub.Hub.Stats().ReceiptWaits == 0 {
		select {
		case err := <-done:
			t.Fatalf("the poll ended before the hub had it waiting: %v", err)
		case <-ctx.Done():
			t.Fatal("the hub never had the node's request waiting")
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopped := make(chan error, 1)
	go func() { stopped <- hub.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting poll, when the hub stopped: %v; want an answer with no receipts", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the node's wait went on after the hub stopped: it holds the hub's stop")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("hub stop: %v", err)
	}
}
