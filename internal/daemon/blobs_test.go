package daemon_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
)

// TestHubBlobs checks the wiring of a hub running alone: a large envelope's
// ciphertext goes through a file in data_dir/blobs that is gone once the
// envelope is recorded, and a file no queue entry names, left by an
// earlier process, is removed when the hub starts.
func TestHubBlobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	var blobs string
	nw := devtest.StartWith(t, devnet.Options{Prepare: func(lay *devnet.Layout) error {
		blobs = filepath.Join(filepath.Dir(lay.HubConfig), "data", "blobs")
		if err := os.MkdirAll(blobs, 0o700); err != nil {
			return err
		}
		orphan := filepath.Join(blobs, "lg_011002.01JH8Z5V6Q3K4M7N8P9R0S1T2V.0123456789abcdef")
		if err := os.WriteFile(orphan, []byte("left by a killed hub"), 0o600); err != nil {
			return err
		}
		past := time.Now().Add(-time.Hour)
		return os.Chtimes(orphan, past, past)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitEmpty := func(what string) {
		t.Helper()
		for {
			ents, err := os.ReadDir(blobs)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) == 0 {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %d files left in %s", what, len(ents), blobs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEmpty("the orphan blob was not swept at the hub's start")

	// The recipient is down: the accepted envelope waits in the hub, its
	// ciphertext in a file.
	if err := nw.Nodes[devnet.SapporoID].Stop(); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("%PDF-1.7 scan "), 100_000) // 1.4 MB: a blob, not inline
	if _, _, err := nw.Nodes[devnet.NTAID].Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "paper-return-scan", ContentType: "application/pdf", Payload: bytes.NewReader(payload)}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(blobs)
	if err != nil || len(ents) != 1 || ents[0].Name()[:10] != "lg_011002." {
		t.Fatalf("blob directory while the recipient is down: %v %v, want one file of lg:011002", ents, err)
	}
	info, err := ents[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() < int64(len(payload)) {
		t.Fatalf("the blob file holds %d bytes, want the ciphertext of %d", info.Size(), len(payload))
	}
	sap, _ := nw.Layout.Node(devnet.SapporoID)
	restarted, err := daemon.StartNode(ctx, sap.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	nw.Nodes[devnet.SapporoID] = restarted
	for {
		if c, _ := restarted.Store.Count(ctx, devnet.SapporoID); c == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the large envelope was not recorded in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitEmpty("the recorded envelope's blob was not removed")
}
