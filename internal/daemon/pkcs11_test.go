package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/keystore"
	"taxlink/internal/keystore/keystoretest"
	"taxlink/internal/node"
	"taxlink/internal/pki"
)

// TestHubKeysOnToken runs the hub with its TLS key and its receipt-signing
// key on a PKCS#11 token (SoftHSM2), generated there and never exported,
// and checks that a notification is accepted over mTLS with a receipt that
// verifies against the directory.
func TestHubKeysOnToken(t *testing.T) {
	tok := keystoretest.SoftHSMToken(t)
	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := keystore.OpenToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, err := token.GenerateSigner("hub-tls")
	if err != nil {
		t.Fatal(err)
	}
	signKey, err := token.GenerateSigner("hub-signing")
	if err != nil {
		t.Fatal(err)
	}
	hubDir := filepath.Dir(lay.HubConfig)

	// A certificate for the token's TLS key from the dev CA.
	caCerts, _ := pki.ReadCertFile(filepath.Join(lay.Dir, "pki", "ca.pem"))
	caKey, err := devnet.ReadKey(lay, filepath.Join(lay.Dir, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca := &pki.CA{Cert: caCerts[0], Key: caKey}
	cert, err := ca.Issue(pki.IssueRequest{
		Identity: pki.Identity{Env: devnet.Environment, ID: devnet.HubID}, Public: tlsKey.Public(),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Client: true,
		NotBefore: time.Now().Add(-time.Minute), Validity: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCertFile(filepath.Join(hubDir, "tls.pem"), cert); err != nil {
		t.Fatal(err)
	}
	token.Close()

	// The directory publishes the token's signing key as the hub's.
	dirPath := filepath.Join(lay.Dir, "directory", "directory.json")
	signed, _ := os.ReadFile(dirPath)
	var s directory.Signed
	var d directory.Directory
	if err := json.Unmarshal(signed, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(s.Body, &d); err != nil {
		t.Fatal(err)
	}
	pem, _ := pki.MarshalPublicKeyPEM(signKey.Public().(*ecdsa.PublicKey))
	d.Hub.SigningKey = pem
	d.Version++
	dirKey, err := devnet.ReadKey(lay, filepath.Join(hubDir, "directory-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := directory.Sign(&d, dirKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}

	// The hub's configuration names the keys on the token.
	pinFile := filepath.Join(hubDir, "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := devnet.EditConfig(lay.HubConfig, func(cfg map[string]any) {
		cfg["tls"].(map[string]any)["key"] = "pkcs11:token=" + tok.TokenLabel + ";object=hub-tls"
		cfg["signing_key"] = "pkcs11:token=" + tok.TokenLabel + ";object=hub-signing"
		keys := cfg["keys"].(map[string]any)
		keys["pkcs11_module"] = tok.Module
		keys["pin_file"] = "pin"
	}); err != nil {
		t.Fatal(err)
	}

	h := startHub(t, lay)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sap, _ := lay.Node(devnet.SapporoID)
	ns, err := daemon.StartNode(ctx, sap.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	_, rc, err := nta.Node.Submit(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
	if err != nil {
		t.Fatalf("submission to a hub whose keys are on the token: %v", err)
	}
	if err := rc.Verify(signKey.Public().(*ecdsa.PublicKey)); err != nil {
		t.Errorf("acceptance receipt not signed by the token's key: %v", err)
	}
	if got := serverSerial(t, lay, h.Addr); got.Cmp(cert.SerialNumber) != 0 {
		t.Errorf("the hub presents serial %s, not the token-backed certificate %s", got, cert.SerialNumber)
	}
}
