package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/node"
	"taxlink/internal/transfer"
)

// TestTenantMovesToAnotherNode moves 岩見沢市 (lg:013030) from the
// outsourcer's node to another node: the new node makes the tenant's new
// sealing key, the old node exports the records re-sealed to it, the new
// node imports and verifies every one and signs the verification — what
// the old node's decommission then relies on.
func TestTenantMovesToAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	const town = "lg:013030"
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	nw, err := devnet.Start(ctx, lay, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	sent := map[string]string{}
	for i := range 6 {
		body := fmt.Sprintf("<DATA>岩見沢市 %d</DATA>", i)
		id, _, err := nw.Nodes[devnet.NTAID].Node.Submit(ctx, node.Submission{Recipient: town, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		sent[id] = body
	}
	old := nw.Nodes[devnet.OutsourcerID]
	for {
		if n, _ := old.Store.Count(ctx, town); n == 6 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("not recorded in time")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The new node makes the tenant's new sealing key, encrypted like its others.
	nn, _ := lay.Node(devnet.SapporoID)
	newDir := filepath.Dir(nn.Config)
	pass, err := os.ReadFile(filepath.Join(lay.Dir, "pki", "dev-passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := keystore.WriteEncrypted(filepath.Join(newDir, "sealing-lg-013030-2.key"), priv, pass, keystore.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	pub, _ := envelope.MarshalPublicKey(priv.PublicKey())
	pubFile := filepath.Join(t.TempDir(), "lg-013030-2.pub")
	if err := os.WriteFile(pubFile, []byte(base64.StdEncoding.EncodeToString(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := devnet.EditConfig(nn.Config, func(cfg map[string]any) {
		cfg["sealing_keys"] = append(cfg["sealing_keys"].([]any), map[string]any{"tenant": town, "key_id": "lg-013030-2", "kem": envelope.DefaultKEM, "file": "enc:sealing-lg-013030-2.key"})
	}); err != nil {
		t.Fatal(err)
	}

	bundle := filepath.Join(t.TempDir(), "bundle")
	on, _ := lay.Node(devnet.OutsourcerID)
	m, err := daemon.TransferOut(ctx, on.Config, town, pubFile, "lg-013030-2", bundle, log)
	if err != nil {
		t.Fatalf("transfer out: %v", err)
	}
	if len(m.Entries) != 6 {
		t.Fatalf("bundle of %d records, want 6", len(m.Entries))
	}
	v, err := daemon.TransferIn(ctx, nn.Config, town, devnet.OutsourcerID, bundle, log)
	if err != nil {
		t.Fatalf("transfer in: %v", err)
	}
	if v.Records != 6 {
		t.Errorf("verified %d records, want 6", v.Records)
	}
	doc, err := os.ReadFile(filepath.Join(bundle, "verification.json"))
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := nw.Hub.Directory().Node(devnet.SapporoID)
	if got, err := transfer.VerifyVerification(doc, sk.Key()); err != nil || got.Records != 6 || got.From != devnet.OutsourcerID {
		t.Errorf("the verification does not verify with the new node's key: %+v %v", got, err)
	}
	dst := nw.Nodes[devnet.SapporoID].Store
	for id, want := range sent {
		rec, err := dst.Get(ctx, town, id)
		if err != nil {
			t.Fatalf("%s missing at the new node: %v", id, err)
		}
		h, _ := envelope.ParseHeader(rec.Header)
		ct, err := dst.OpenCiphertext(ctx, town, id)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := envelope.Open(priv, h, ct)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(pt)
		ct.Close()
		if !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s opens to something else at the new node", id)
		}
	}
	if n, _ := dst.Count(ctx, town); n != 6 {
		t.Errorf("the new node holds %d records of %s, want 6", n, town)
	}
}
