package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/acceptance"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
	"taxlink/internal/queue"
)

// TestHubAcceptancesMoved checks the wiring of a hub running alone: its
// acceptance receipts are in data_dir/accepted.db (mode 0600), not in
// JetStream, and a hub upgraded from a version that kept them in the
// TL_ACCEPTED bucket moves them into the file when it starts and deletes
// the bucket, so that a sender submitting an envelope again still gets the
// receipt it was given.
func TestHubAcceptancesMoved(t *testing.T) {
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
	db := filepath.Join(data, "accepted.db")
	if fi, err := os.Stat(db); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("accepted.db: %v, %v; want a file of mode 0600", fi, err)
	}
	if _, err := nw.Hub.Queue.JetStream().KeyValue(ctx, "TL_ACCEPTED"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a hub alone has a TL_ACCEPTED bucket (%v): its receipts belong in accepted.db", err)
	}
	if err := nw.Hub.Stop(); err != nil {
		t.Fatal(err)
	}

	// What an earlier version left: the receipt in the bucket, no file.
	q, err := queue.Open(ctx, queue.Options{StoreDir: filepath.Join(data, "jetstream")})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := q.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TL_ACCEPTED", History: 1, Storage: jetstream.FileStorage})
	if err == nil {
		_, err = kv.Put(ctx, id, given)
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
	got, err := hub.Acceptances.Get(ctx, id)
	if err != nil || !bytes.Equal(got, given) {
		t.Fatalf("after the move, the receipt of %s: %q, %v; want the one given", id, got, err)
	}
	if _, err := hub.Queue.JetStream().KeyValue(ctx, "TL_ACCEPTED"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the bucket after the move: %v, want it deleted", err)
	}
	if _, err := hub.Acceptances.Get(ctx, "01JH8Z5V6Q3K4M7N8P9R0S1T2V"); !errors.Is(err, acceptance.ErrNotFound) {
		t.Errorf("an envelope never accepted: %v, want ErrNotFound", err)
	}
}
