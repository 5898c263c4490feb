package daemon_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/export"
	"taxlink/internal/node"
	"taxlink/internal/pki"
)

// TestTaxSystemExport configures 札幌市's node to let its tax system pull
// its records over mTLS and to drop them as files, and checks both paths
// end to end with real processes' code: list, fetch, acknowledge, an
// unknown certificate refused, files appearing in the drop.
func TestTaxSystemExport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network")
	}
	// The city's own CA issues its tax system's certificate.
	ca, err := pki.NewCA("札幌市 税務システム CA (test)", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() tls.Certificate {
		k, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(pki.IssueRequest{Identity: pki.Identity{Env: "dev", ID: devnet.SapporoID}, Public: &k.PublicKey, Client: true, NotBefore: time.Now().Add(-time.Hour), Validity: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	}
	zeimu, stranger := issue(), issue()
	caPath := filepath.Join(t.TempDir(), "zeimu-ca.pem")
	if err := pki.WriteCertFile(caPath, ca.Cert); err != nil {
		t.Fatal(err)
	}
	dropDir := t.TempDir()
	sum := sha256.Sum256(zeimu.Leaf.Raw)
	nw := devtest.StartWith(t, devnet.Options{Prepare: func(lay *devnet.Layout) error {
		n, _ := lay.Node(devnet.SapporoID)
		return devnet.EditConfig(n.Config, func(cfg map[string]any) {
			cfg["export"] = map[string]any{
				"listen": "127.0.0.1:0", "client_ca": caPath,
				"clients": []any{map[string]any{"name": "sapporo-zeimu", "tenant": devnet.SapporoID, "cert_sha256": hex.EncodeToString(sum[:]), "networks": []string{"127.0.0.0/8"}}},
				"drops":   []any{map[string]any{"name": "sapporo-drop", "tenant": devnet.SapporoID, "dir": dropDir, "every": "1s"}},
			}
		})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc := nw.Nodes[devnet.SapporoID]
	// The hub delivers a recipient's envelopes in parallel: they may be
	// recorded in another order than sent.
	sent := map[string]string{}
	for i := range 3 {
		payload := fmt.Sprintf("<DATA>%d</DATA>", i)
		id, _, err := nw.Nodes[devnet.NTAID].Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader(payload)})
		if err != nil {
			t.Fatal(err)
		}
		sent[id] = payload
	}
	for {
		if c, _ := svc.Store.Count(ctx, devnet.SapporoID); c == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the three notifications were not recorded in time")
		}
		time.Sleep(50 * time.Millisecond)
	}

	cas, err := pki.ReadCertFile(filepath.Join(nw.Layout.Dir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert tls.Certificate) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13, RootCAs: pki.CertPool(cas...), Certificates: []tls.Certificate{cert}, ServerName: "localhost"}}}
	}
	base := "https://" + svc.ExportAddr
	c := client(zeimu)
	list := func() export.ListResponse {
		t.Helper()
		resp, err := c.Get(base + export.PathRecords)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l export.ListResponse
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&l) != nil {
			t.Fatalf("list: %s", resp.Status)
		}
		return l
	}
	l := list()
	if l.Tenant != devnet.SapporoID || len(l.Records) != 3 {
		t.Fatalf("list: tenant %s, %d records, want %s and 3", l.Tenant, len(l.Records), devnet.SapporoID)
	}
	resp, err := c.Get(base + export.PathRecords + "/" + l.Records[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := sent[l.Records[0].ID]; resp.StatusCode != http.StatusOK || want == "" || string(body) != want {
		t.Fatalf("fetch of %s: %s %q, want 200 %q", l.Records[0].ID, resp.Status, body, want)
	}
	resp, err = c.Post(base+export.PathAck, "application/json", strings.NewReader(fmt.Sprintf(`{"seq":%d}`, l.Records[2].Seq)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ack: %s", resp.Status)
	}
	if l2 := list(); len(l2.Records) != 0 || l2.Cursor != l.Records[2].Seq {
		t.Errorf("after the acknowledgement: cursor %d, %d records listed", l2.Cursor, len(l2.Records))
	}
	resp, err = client(stranger).Get(base + export.PathRecords)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an unconfigured certificate of the same CA: %s, want 401", resp.Status)
		}
	}

	for {
		ents, _ := filepath.Glob(filepath.Join(dropDir, "*.xml"))
		if len(ents) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the drop holds %d files, want 3", len(ents))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
