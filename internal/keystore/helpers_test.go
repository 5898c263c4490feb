package keystore_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/keystore/keystoretest"
)

// testParams are light Argon2id parameters so that tests can derive keys
// hundreds of times; production uses keystore.DefaultParams.
var testParams = keystore.Params{Time: 1, MemoryKiB: 64, Threads: 1}

// testPassphrase is the passphrase of test key files.
const testPassphrase = "correct horse battery staple"

func newECDSAKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealingKey(t *testing.T, kem uint16) hpke.PrivateKey {
	t.Helper()
	k, err := envelope.GenerateSealingKey(kem)
	if err != nil {
		t.Fatalf("GenerateSealingKey(0x%04x): %v", kem, err)
	}
	return k
}

// writeEnc writes key encrypted with testPassphrase and testParams to a new
// file under t.TempDir() and returns its path.
func writeEnc(t *testing.T, key any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.enc")
	if err := keystore.WriteEncrypted(path, key, []byte(testPassphrase), testParams); err != nil {
		t.Fatalf("WriteEncrypted: %v", err)
	}
	return path
}

// writeFile writes data with mode perm (exactly, regardless of umask).
func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// openSoftHSM creates a SoftHSM2 token for t, opens it and closes it when
// t ends.
func openSoftHSM(t *testing.T) (*keystore.Token, keystore.TokenConfig) {
	t.Helper()
	cfg := keystoretest.SoftHSMToken(t)
	tok, err := keystore.OpenToken(cfg)
	if err != nil {
		t.Fatalf("OpenToken(%v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Token.Close: %v", err)
		}
	})
	return tok, cfg
}
