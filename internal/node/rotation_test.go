package node_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/config"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/node"
)

// TestSealingKeyRotation rotates 札幌市's sealing key: envelopes sealed to
// the old key before the rotation and to the new key after it both open at
// 札幌市.
func TestSealingKeyRotation(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nta := nw.Nodes[devnet.NTAID]
	send := func(doc string) string {
		t.Helper()
		id, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader(doc)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldID := send("<before/>")

	// The new key: written encrypted beside the old one, added to the
	// node's configuration and to the directory, the old key closed for
	// new envelopes.
	sap, _ := nw.Layout.Node(devnet.SapporoID)
	dir := filepath.Dir(sap.Config)
	priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := os.ReadFile(filepath.Join(nw.Layout.Dir, "pki", "dev-passphrase"))
	if err := keystore.WriteEncrypted(filepath.Join(dir, "sealing-2.key"), priv, pass, keystore.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	var cfg config.Node
	b, _ := os.ReadFile(sap.Config)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.SealingKeys = append(cfg.SealingKeys, config.SealingKeyFile{Tenant: devnet.SapporoID, KeyID: "lg-011002-2", KEM: envelope.DefaultKEM, File: "enc:sealing-2.key"})
	b, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(sap.Config, b, 0o644); err != nil {
		t.Fatal(err)
	}
	pub, _ := envelope.MarshalPublicKey(priv.PublicKey())
	rotateAt := time.Now().UTC().Truncate(time.Second)
	doc := devtest.NextDirectory(t, nw, func(d *directory.Directory) {
		p := participant(d, devnet.SapporoID)
		p.SealingKeys[0].NotAfter = rotateAt
		p.SealingKeys = append(p.SealingKeys, directory.SealingKey{ID: "lg-011002-2", KEM: envelope.DefaultKEM, Public: base64.StdEncoding.EncodeToString(pub), NotBefore: rotateAt})
	})
	if err := nw.Nodes[devnet.SapporoID].Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Hub.Hub.UpdateDirectory(doc); err != nil {
		t.Fatal(err)
	}
	restarted, err := daemon.StartNode(ctx, sap.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("restart with two sealing keys: %v", err)
	}
	nw.Nodes[devnet.SapporoID] = restarted
	if _, err := nta.Node.FetchDirectory(ctx); err != nil {
		t.Fatal(err)
	}
	newID := send("<after/>")
	for {
		if n, _ := restarted.Store.Count(ctx, devnet.SapporoID); n >= 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("not both recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct{ id, want, key string }{{oldID, "<before/>", "lg-011002-1"}, {newID, "<after/>", "lg-011002-2"}} {
		pt, hdr, err := restarted.Node.Open(ctx, devnet.SapporoID, c.id)
		if err != nil {
			t.Fatalf("open %s: %v", c.id, err)
		}
		got, _ := io.ReadAll(pt)
		pt.Close()
		if string(got) != c.want || hdr.KeyID != c.key {
			t.Errorf("%s sealed to %s opened to %q; want sealed to %s, %q", c.id, hdr.KeyID, got, c.key, c.want)
		}
	}
}

func participant(d *directory.Directory, id string) *directory.Participant {
	for i := range d.Participants {
		if d.Participants[i].ID == id {
			return &d.Participants[i]
		}
	}
	panic("no participant " + id)
}
