package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/node"
	"taxlink/internal/pki"
)

func startHub(t *testing.T, lay *devnet.Layout) *daemon.Service {
	t.Helper()
	h, err := daemon.StartHub(context.Background(), lay.HubConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop() })
	return h
}

func serverSerial(t *testing.T, lay *devnet.Layout, addr string) *big.Int {
	t.Helper()
	n, _ := lay.Node(devnet.NTAID)
	cert, err := devnet.TLSCert(lay, filepath.Dir(n.Config))
	if err != nil {
		t.Fatal(err)
	}
	cas, _ := pki.ReadCertFile(filepath.Join(lay.Dir, "pki", "ca.pem"))
	c, err := tls.Dial("tcp", addr, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pki.CertPool(cas...), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestCertificateRotationWithoutRestart renews the hub's certificate and
// key on disk while notifications flow, and checks that new handshakes
// present the new certificate and that no submission failed.
func TestCertificateRotationWithoutRestart(t *testing.T) {
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, lay)
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	old := serverSerial(t, lay, h.Addr)
	fresh, err := devnet.RenewCert(lay, filepath.Dir(lay.HubConfig), pki.Identity{Env: devnet.Environment, ID: devnet.HubID}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for serverSerial(t, lay, h.Addr).Cmp(fresh.SerialNumber) != 0 {
		if ctx.Err() != nil {
			t.Fatalf("the hub still presents serial %s, not the renewed %s", old, fresh.SerialNumber)
		}
		if _, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")}); err != nil {
			t.Fatalf("submission %d during the rotation failed: %v", sent, err)
		}
		sent++
	}
	if _, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")}); err != nil {
		t.Fatalf("submission after the rotation failed: %v", err)
	}
	t.Logf("%d submissions during the rotation, none failed", sent)
}

// TestExternalCAMapping lets an external CA (a stand-in for LGPKI, whose
// certificates carry no taxlink identity) issue a certificate to the
// NTA's system, maps it by a rule in the hub's configuration, and checks
// that the hub accepts its submission as nta:hq while an unmapped
// certificate of the same CA is refused in the handshake.
func TestExternalCAMapping(t *testing.T) {
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ext, err := pki.NewCA("Application CA2 (test LGPKI)", now.Add(-time.Hour), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) tls.Certificate {
		k, _ := pki.NewKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"NTA"}},
			NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(nil, tmpl, ext.Cert, &k.PublicKey, ext.Key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
	}
	rules, _ := json.Marshal(map[string][]pki.MappingRule{"rules": {{
		Name: "lgpki-nta", IssuerKeyID: hex.EncodeToString(ext.Cert.SubjectKeyId), Attribute: pki.AttrCommonName,
		Match: `NTA-HQ-SYSTEM`, ID: "nta:hq", Environment: devnet.Environment,
	}}})
	hubDir := filepath.Dir(lay.HubConfig)
	if err := os.WriteFile(filepath.Join(hubDir, "mapping.json"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	// The hub trusts the external CA beside the dev CA, with the rule and
	// that CA's (empty) CRL.
	caPath := filepath.Join(lay.Dir, "pki", "ca.pem")
	devCAs, _ := pki.ReadCertFile(caPath)
	both := filepath.Join(hubDir, "cas.pem")
	if err := pki.WriteCertFile(both, append(devCAs, ext.Cert)...); err != nil {
		t.Fatal(err)
	}
	crl, err := ext.CRL(nil, now.Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCRLFile(filepath.Join(hubDir, "ext.crl"), crl); err != nil {
		t.Fatal(err)
	}
	if err := devnet.EditConfig(lay.HubConfig, func(cfg map[string]any) {
		tlsCfg := cfg["tls"].(map[string]any)
		tlsCfg["ca"] = "cas.pem"
		tlsCfg["identity_mapping"] = "mapping.json"
		tlsCfg["crl"] = append(tlsCfg["crl"].([]any), "ext.crl")
	}); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, lay)

	// A submission signed by the NTA node's key, over a connection
	// authenticated by the external certificate.
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	id, err := nta.Node.Prepare(context.Background(), node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
	if err != nil {
		t.Fatal(err)
	}
	// A small envelope is held in the outbox entry itself.
	o, err := nta.Store.GetOutgoing(context.Background(), id)
	if err != nil || o.Envelope == nil {
		t.Fatalf("the outbox holds no envelope for %s: %v", id, err)
	}
	body := o.Envelope
	post := func(cert tls.Certificate) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pki.CertPool(devCAs...)}}}
		resp, err := c.Post("https://"+h.Addr+api.PathSubmit, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := post(issue("NTA-HQ-SYSTEM")); err != nil || status != 200 {
		t.Fatalf("mapped external certificate: %d %v, want accepted", status, err)
	}
	if _, err := post(issue("SOMEONE-ELSE")); err == nil {
		t.Errorf("an unmapped certificate of the external CA passed the handshake")
	}
}
