package keystore_test

import (
	"crypto"
	"fmt"
	"sync/atomic"
	"testing"

	"taxlink/internal/keystore"
	"taxlink/internal/keystore/keystoretest"
)

func TestConformanceInMemory(t *testing.T) {
	keystoretest.RunSigner(t, func(t *testing.T) crypto.Signer { return newECDSAKey(t) })
}

func TestConformanceEncryptedFile(t *testing.T) {
	keystoretest.RunSigner(t, func(t *testing.T) crypto.Signer {
		path := writeEnc(t, newECDSAKey(t))
		t.Setenv("TEST_KEYSTORE_PASSPHRASE", testPassphrase)
		ref, err := keystore.ParseRef("enc:" + path)
		if err != nil {
			t.Fatal(err)
		}
		s, closer, err := keystore.LoadSigner(ref, keystore.Env{Passphrase: keystore.PassphraseFromEnv("TEST_KEYSTORE_PASSPHRASE")})
		if err != nil {
			t.Fatalf("LoadSigner(%s): %v", ref, err)
		}
		t.Cleanup(func() { closer.Close() })
		return s
	})
}

func TestConformanceSoftHSM(t *testing.T) {
	tok, cfg := openSoftHSM(t)
	var n atomic.Int32
	keystoretest.RunSigner(t, func(t *testing.T) crypto.Signer {
		label := fmt.Sprintf("conformance-%d", n.Add(1))
		if _, err := tok.GenerateSigner(label); err != nil {
			t.Fatalf("GenerateSigner(%q): %v", label, err)
		}
		// Load it back the way a daemon would: through a reference.
		ref, err := keystore.ParseRef("pkcs11:token=" + cfg.TokenLabel + ";object=" + label)
		if err != nil {
			t.Fatal(err)
		}
		s, closer, err := keystore.LoadSigner(ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: cfg.PIN}})
		if err != nil {
			t.Fatalf("LoadSigner(%s): %v", ref, err)
		}
		t.Cleanup(func() {
			if err := closer.Close(); err != nil {
				t.Errorf("close token of %s: %v", ref, err)
			}
		})
		return s
	})
}
