package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/queue"
)

// TestHubRecordingsMoved checks the wiring of a hub running alone: the
// recording receipts its senders read are in data_dir/receipts.db (mode
// 0600), not in JetStream, and a hub upgraded from a version that kept them
// in the TL_RECEIPTS stream moves them into the file when it starts, with
// the sequences the nodes hold as cursors, and deletes the stream.
func TestHubRecordingsMoved(t *testing.T) {
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
	held, err := nw.Hub.Recordings.After(ctx, devnet.NTAID, 0, 10, time.Minute)
	if err != nil || len(held) != 1 {
		t.Fatalf("the recording receipt of %s held for %s: %+v, %v; want one", id, devnet.NTAID, held, err)
	}
	db := filepath.Join(data, "receipts.db")
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("receipts.db: %v, %v; want a file of mode 0600", fi, err)
	}
	if _, err := nw.Hub.Queue.JetStream().Stream(ctx, "TL_RECEIPTS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a hub alone has a TL_RECEIPTS stream (%v): its receipts belong in receipts.db", err)
	}
	if err := nw.Hub.Stop(); err != nil {
		t.Fatal(err)
	}

	// What an earlier version left: the receipt in the stream, no file.
	q, err := queue.Open(ctx, queue.Options{StoreDir: filepath.Join(data, "jetstream")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = q.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "TL_RECEIPTS", Subjects: []string{"r.>"}, Storage: jetstream.FileStorage, AllowDirect: true})
	if err == nil {
		m := nats.NewMsg("r." + queue.Token(devnet.NTAID))
		m.Header.Set(jetstream.MsgIDHeader, "r."+id)
		m.Header.Set("Tl-Ledger-Index", strconv.FormatInt(held[0].LedgerIndex, 10))
		m.Data = held[0].Receipt
		_, err = q.JetStream().PublishMsg(ctx, m)
	}
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}

	hub, err := daemon.StartHub(ctx, nw.Layout.HubConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart the hub on the earlier version's store: %v", err)
	}
	defer hub.Stop()
	got, err := hub.Recordings.After(ctx, devnet.NTAID, 0, 10, 0)
	if err != nil || len(got) != 1 || got[0].Seq != held[0].Seq || got[0].LedgerIndex != held[0].LedgerIndex || !bytes.Equal(got[0].Receipt, held[0].Receipt) {
		t.Fatalf("after the move, the receipts held for %s: %+v, %v; want %+v", devnet.NTAID, got, err, held)
	}
	if _, err := hub.Queue.JetStream().Stream(ctx, "TL_RECEIPTS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the stream after the move: %v, want it deleted", err)
	}
}
