// Package keystoretest checks that a crypto.Signer is usable as a taxlink
// key (RunSigner) and provides private SoftHSM2 tokens for tests
// (SoftHSMToken). It is meant for tests only.
package keystoretest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"taxlink/internal/keystore"
)

// SoftHSMModule is where Debian's softhsm2 package installs the SoftHSM2
// PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// StrictEnv is the environment variable that, set to "1", turns the skip
// for a missing SoftHSM2 into a test failure (as CI wants).
const StrictEnv = "TAXLINK_TEST_STRICT"

// Sizes of the conformance checks.
const (
	signVerifyRounds  = 64
	concurrentWorkers = 8
	signsPerWorker    = 16
	handshakeTimeout  = 30 * time.Second
)

// RunSigner runs the conformance suite on signers made by newSigner, which
// is called once per subtest with that subtest's t (so it may register
// cleanups and fail it) and must return a fresh or reusable signer. The
// signer must:
//
//   - have an *ecdsa.PublicKey on P-256 as Public();
//   - sign SHA-256 digests (crypto.SHA256 opts) into ASN.1 signatures
//     that ecdsa.VerifyASN1 accepts, and that do not verify for any other
//     digest;
//   - sign certificates with x509.CreateCertificate: a self-signed CA, and
//     server and client leaf certificates for its own public key;
//   - be the private key of both sides of a real TLS 1.3 mutual-TLS
//     handshake on 127.0.0.1 whose certificates it signed (as above);
//   - be usable from 8 goroutines at once.
//
// Subtests do not run in parallel, so newSigner may use t.Setenv.
func RunSigner(t *testing.T, newSigner func(t *testing.T) crypto.Signer) {
	t.Helper()
	t.Run("PublicKeyIsP256", func(t *testing.T) {
		publicKey(t, newSigner(t))
	})
	t.Run("SignVerify", func(t *testing.T) {
		s := newSigner(t)
		pub := publicKey(t, s)
		digests := [][]byte{make([]byte, sha256.Size), bytes.Repeat([]byte{0xff}, sha256.Size)}
		for i := range signVerifyRounds {
			d := sha256.Sum256(fmt.Appendf(nil, "taxlink conformance message %d", i))
			digests = append(digests, d[:])
		}
		for i, d := range digests {
			sig := sign(t, s, d)
			if !ecdsa.VerifyASN1(pub, d, sig) {
				t.Fatalf("digest %d (%x): signature does not verify with ecdsa.VerifyASN1 under Public()", i, d)
			}
			other := bytes.Clone(d)
			other[i%len(other)] ^= 0x01
			if ecdsa.VerifyASN1(pub, other, sig) {
				t.Fatalf("digest %d: signature also verifies for a digest differing in one bit", i)
			}
		}
	})
	t.Run("CreateCertificate", func(t *testing.T) {
		s := newSigner(t)
		ca := newCA(t, s)
		if err := ca.CheckSignatureFrom(ca); err != nil {
			t.Fatalf("self-signed CA certificate made with the signer does not verify: %v", err)
		}
		leaf := newLeaf(t, s, ca, "leaf", true, true)
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			t.Fatalf("leaf certificate signed by the signer does not verify against the CA: %v", err)
		}
	})
	t.Run("TLS13MutualHandshake", func(t *testing.T) {
		mutualTLS(t, newSigner(t))
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newSigner(t)
		pub := publicKey(t, s)
		var wg sync.WaitGroup
		errs := make(chan error, concurrentWorkers*signsPerWorker)
		for w := range concurrentWorkers {
			wg.Go(func() {
				for i := range signsPerWorker {
					d := sha256.Sum256(fmt.Appendf(nil, "worker %d message %d", w, i))
					sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
					if err != nil {
						errs <- fmt.Errorf("worker %d signature %d: Sign: %w", w, i, err)
						continue
					}
					if !ecdsa.VerifyASN1(pub, d[:], sig) {
						errs <- fmt.Errorf("worker %d signature %d does not verify", w, i)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			if n++; n <= 5 {
				t.Error(err)
			}
		}
		if n > 0 {
			t.Fatalf("%d of %d concurrent signatures failed", n, concurrentWorkers*signsPerWorker)
		}
	})
}

// publicKey returns s.Public() as a P-256 *ecdsa.PublicKey or fails t.
func publicKey(t *testing.T, s crypto.Signer) *ecdsa.PublicKey {
	t.Helper()
	if s == nil {
		t.Fatal("newSigner returned a nil signer")
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || pub == nil {
		t.Fatalf("Public() is %T, want *ecdsa.PublicKey", s.Public())
	}
	if pub.Curve != elliptic.P256() {
		t.Fatalf("Public() is on curve %s, want P-256", pub.Curve.Params().Name)
	}
	return pub
}

// sign signs a SHA-256 digest or fails t.
func sign(t *testing.T, s crypto.Signer, digest []byte) []byte {
	t.Helper()
	sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign(SHA-256 digest): %v", err)
	}
	return sig
}

// serial returns a random positive serial number.
func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// newCA makes a self-signed CA certificate for s's key, signed by s.
func newCA(t *testing.T, s crypto.Signer) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "keystoretest CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatalf("x509.CreateCertificate (self-signed CA) with the signer: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate made with the signer: %v", err)
	}
	return c
}

// newLeaf makes a leaf certificate for s's own public key for 127.0.0.1,
// issued by ca and signed by s.
func newLeaf(t *testing.T, s crypto.Signer, ca *x509.Certificate, cn string, server, client bool) *x509.Certificate {
	t.Helper()
	now := time.Now()
	var eku []x509.ExtKeyUsage
	if server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, s.Public(), s)
	if err != nil {
		t.Fatalf("x509.CreateCertificate (%s leaf) with the signer: %v", cn, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse %s certificate made with the signer: %v", cn, err)
	}
	return c
}

// mutualTLS runs a TLS 1.3 mTLS handshake on 127.0.0.1 in which both sides
// hold s as private key, with certificates signed by s, and exchanges one
// message each way.
func mutualTLS(t *testing.T, s crypto.Signer) {
	t.Helper()
	ca := newCA(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	serverLeaf := newLeaf(t, s, ca, "keystoretest server", true, false)
	clientLeaf := newLeaf(t, s, ca, "keystoretest client", false, true)
	certFor := func(leaf *x509.Certificate) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: s, Leaf: leaf}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1:0: %v", err)
	}
	defer ln.Close()
	serverCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{certFor(serverLeaf)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	}
	serverDone := make(chan error, 1)
	go func() {
		serverDone <- serveOnce(ln, serverCfg)
	}()

	dialer := &net.Dialer{Timeout: handshakeTimeout}
	conn, err := tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{certFor(clientLeaf)},
		RootCAs:      roots,
		ServerName:   "127.0.0.1",
	})
	if err != nil {
		ln.Close()
		<-serverDone
		t.Fatalf("client TLS handshake with the signer as both sides' key: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	st := conn.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Errorf("negotiated TLS version %#04x, want TLS 1.3", st.Version)
	}
	if len(st.VerifiedChains) == 0 || !st.PeerCertificates[0].Equal(serverLeaf) {
		t.Errorf("client did not verify the server certificate signed by the signer")
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	reply := make([]byte, 4)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if string(reply) != "pong" {
		t.Errorf("client read %q, want pong", reply)
	}
	if err := <-serverDone; err != nil {
		t.Fatalf("server side: %v", err)
	}
}

// serveOnce accepts one connection, completes the handshake, checks the
// verified client certificate, and answers "ping" with "pong".
func serveOnce(ln net.Listener, cfg *tls.Config) error {
	raw, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	conn := tls.Server(raw, cfg)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("server TLS handshake with the signer as both sides' key: %w", err)
	}
	st := conn.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		return fmt.Errorf("server negotiated TLS version %#04x, want TLS 1.3", st.Version)
	}
	if len(st.VerifiedChains) == 0 {
		return fmt.Errorf("server did not verify the client certificate signed by the signer")
	}
	msg := make([]byte, 4)
	if _, err := io.ReadFull(conn, msg); err != nil {
		return fmt.Errorf("server read: %w", err)
	}
	if string(msg) != "ping" {
		return fmt.Errorf("server read %q, want ping", msg)
	}
	if _, err := conn.Write([]byte("pong")); err != nil {
		return fmt.Errorf("server write: %w", err)
	}
	return nil
}

// SoftHSMToken creates a fresh SoftHSM2 token for t: a private token
// directory and SOFTHSM2_CONF file under t.TempDir() (objectstore.backend
// = file), with SOFTHSM2_CONF set for the rest of the test (t.Setenv, so
// t and its parents must not be parallel), and a token initialized with
// softhsm2-util --init-token --free and random label, PIN and SO PIN. It
// returns the TokenConfig to open it with keystore.OpenToken.
//
// The temporary directory must not contain "#" (SoftHSM2's configuration
// syntax has no quoting), so name subtests that call SoftHSMToken.
//
// If softhsm2-util or SoftHSMModule is missing the test is skipped with
// "install softhsm2 (Debian package softhsm2)", or fails if the
// environment variable TAXLINK_TEST_STRICT is "1".
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialized, which
// crypto11 does once per process while any Token is open: close every
// Token of an earlier SoftHSMToken (e.g. with t.Cleanup) before opening
// this one.
func SoftHSMToken(t testing.TB) keystore.TokenConfig {
	t.Helper()
	util, utilErr := exec.LookPath("softhsm2-util")
	_, modErr := os.Stat(SoftHSMModule)
	if utilErr != nil || modErr != nil {
		const msg = "install softhsm2 (Debian package softhsm2)"
		if os.Getenv(StrictEnv) == "1" {
			t.Fatalf("%s; %s=1 forbids skipping (softhsm2-util: %v; module: %v)", msg, StrictEnv, utilErr, modErr)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	if strings.ContainsAny(dir, "#\n") {
		// SoftHSM2's configuration parser has no quoting: "#" starts a comment.
		t.Fatalf("SoftHSM2 cannot use the temporary directory %q (it contains # or a newline, which come from the test name; rename the test or subtest)", dir)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatalf("SoftHSM2 token directory: %v", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("SoftHSM2 configuration file: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	cfg := keystore.TokenConfig{Module: SoftHSMModule, TokenLabel: "taxlink-" + randomHex(t, 6), PIN: randomHex(t, 8)}
	cmd := exec.Command(util, "--init-token", "--free", "--label", cfg.TokenLabel, "--pin", cfg.PIN, "--so-pin", randomHex(t, 8))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", cfg.TokenLabel, err, out)
	}
	return cfg
}

// randomHex returns n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
