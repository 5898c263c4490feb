package keystore_test

import (
	"crypto/ecdsa"
	"crypto/hpke"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/pki"
)

// mustRef parses s or fails t.
func mustRef(t *testing.T, s string) keystore.Ref {
	t.Helper()
	r, err := keystore.ParseRef(s)
	if err != nil {
		t.Fatalf("ParseRef(%q): %v", s, err)
	}
	return r
}

func TestLoadSignerFiles(t *testing.T) {
	dir := t.TempDir()
	key := newECDSAKey(t)
	plain := filepath.Join(dir, "plain.key")
	if err := pki.WriteKeyFile(plain, key); err != nil {
		t.Fatal(err)
	}
	plainOpen := filepath.Join(dir, "plain-0644.key")
	if err := pki.WriteKeyFile(plainOpen, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(plainOpen, 0o644); err != nil {
		t.Fatal(err)
	}
	enc := writeEnc(t, key)
	sealing := writeEnc(t, newSealingKey(t, envelope.DefaultKEM))
	passFile := filepath.Join(dir, "pass")
	writeFile(t, passFile, []byte(testPassphrase+"\n"), 0o600)

	fromFile := keystore.Env{Passphrase: keystore.PassphraseFromFile(passFile)}
	wrongPass := keystore.Env{Passphrase: keystore.PassphraseFromPrompt(func(string) ([]byte, error) { return []byte("wrong"), nil })}
	for _, tc := range []struct {
		name string
		ref  string
		env  keystore.Env
		want error // nil: loads key
	}{
		{"file", "file:" + plain, keystore.Env{}, nil},
		{"file mode 0644", "file:" + plainOpen, keystore.Env{}, keystore.ErrKeyFilePermissions},
		{"file missing", "file:" + filepath.Join(dir, "missing"), keystore.Env{}, keystore.ErrNotFound},
		{"file pointing to an encrypted key", "file:" + enc, keystore.Env{}, keystore.ErrInvalidRef},
		{"enc", "enc:" + enc, fromFile, nil},
		{"enc wrong passphrase", "enc:" + enc, wrongPass, keystore.ErrWrongPassphrase},
		{"enc without passphrase source", "enc:" + enc, keystore.Env{}, keystore.ErrNoPassphrase},
		{"enc missing", "enc:" + filepath.Join(dir, "missing"), fromFile, keystore.ErrNotFound},
		{"enc holding a sealing key", "enc:" + sealing, fromFile, keystore.ErrWrongKeyType},
		{"enc pointing to a plain key", "enc:" + plain, fromFile, keystore.ErrMalformed},
	} {
		s, closer, err := keystore.LoadSigner(mustRef(t, tc.ref), tc.env)
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: LoadSigner error %v, want %v", tc.name, err, tc.want)
			}
			if s != nil || closer != nil {
				t.Errorf("%s: LoadSigner returned a signer or closer with its error", tc.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: LoadSigner: %v", tc.name, err)
			continue
		}
		if !key.PublicKey.Equal(s.Public()) {
			t.Errorf("%s: loaded another key", tc.name)
		}
		if err := closer.Close(); err != nil {
			t.Errorf("%s: Close: %v", tc.name, err)
		}
	}
	if _, _, err := keystore.LoadSigner(mustRef(t, "file:"+filepath.Join(dir, "missing")), keystore.Env{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file missing: error %v does not match fs.ErrNotExist", err)
	}
	for _, r := range []keystore.Ref{{}, {Scheme: "ftp", Path: "/k"}, {Scheme: keystore.SchemeFile}, {Scheme: keystore.SchemeEnc, Path: "/k", Token: "t"}, {Scheme: keystore.SchemePKCS11, Token: "t"}} {
		if _, _, err := keystore.LoadSigner(r, keystore.Env{}); !errors.Is(err, keystore.ErrInvalidRef) {
			t.Errorf("LoadSigner(%+v): error %v, want ErrInvalidRef", r, err)
		}
		if _, err := keystore.LoadSealingKey(r, keystore.Env{}); !errors.Is(err, keystore.ErrInvalidRef) {
			t.Errorf("LoadSealingKey(%+v): error %v, want ErrInvalidRef", r, err)
		}
	}
}

func TestLoadSignerPKCS11(t *testing.T) {
	tok, cfg := openSoftHSM(t)
	gen, err := tok.GenerateSigner("sign-2026")
	if err != nil {
		t.Fatal(err)
	}
	// Log out, so that every case below must present the right PIN.
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, "pkcs11:token="+cfg.TokenLabel+";object=sign-2026")
	t.Setenv("TEST_KS_PIN", cfg.PIN)
	t.Setenv("TEST_KS_WRONG_PIN", "00000000")
	pinFile := filepath.Join(t.TempDir(), "pin")
	writeFile(t, pinFile, []byte(cfg.PIN+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		ref  keystore.Ref
		env  keystore.Env
		want error
	}{
		{"PIN in TokenConfig", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: cfg.PIN}}, nil},
		{"PIN from env", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module}, PIN: keystore.PassphraseFromEnv("TEST_KS_PIN")}, nil},
		{"PIN from file", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module}, PIN: keystore.PassphraseFromFile(pinFile)}, nil},
		{"matching token label in config", ref, keystore.Env{Token: cfg}, nil},
		{"TokenConfig PIN wins over PIN source", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: cfg.PIN}, PIN: keystore.PassphraseFromEnv("TEST_KS_UNSET")}, nil},
		{"wrong PIN from env", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module}, PIN: keystore.PassphraseFromEnv("TEST_KS_WRONG_PIN")}, keystore.ErrWrongPIN},
		{"wrong PIN in TokenConfig", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: "00000000"}}, keystore.ErrWrongPIN},
		{"no module", ref, keystore.Env{Token: keystore.TokenConfig{PIN: cfg.PIN}}, keystore.ErrInvalidConfig},
		{"other token label in config", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, TokenLabel: "other", PIN: cfg.PIN}}, keystore.ErrInvalidConfig},
		{"no PIN", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module}}, keystore.ErrNoPassphrase},
		{"PIN env unset", ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module}, PIN: keystore.PassphraseFromEnv("TEST_KS_UNSET")}, keystore.ErrNoPassphrase},
		{"missing object", mustRef(t, "pkcs11:token="+cfg.TokenLabel+";object=nope"), keystore.Env{Token: cfg}, keystore.ErrNotFound},
		{"missing token", mustRef(t, "pkcs11:token=nope;object=sign-2026"), keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: cfg.PIN}}, keystore.ErrNotFound},
	} {
		s, closer, err := keystore.LoadSigner(tc.ref, tc.env)
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: LoadSigner error %v, want %v", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: LoadSigner: %v", tc.name, err)
			continue
		}
		if !gen.Public().(*ecdsa.PublicKey).Equal(s.Public()) {
			t.Errorf("%s: loaded another key", tc.name)
		}
		if _, ok := closer.(*keystore.Token); !ok {
			t.Errorf("%s: closer is a %T, want the *keystore.Token", tc.name, closer)
		}
		if err := closer.Close(); err != nil {
			t.Errorf("%s: Close: %v", tc.name, err)
		}
	}
}

func TestLoadSealingKey(t *testing.T) {
	dir := t.TempDir()
	pq := newSealingKey(t, envelope.KEMMLKEM768P256)
	dh := newSealingKey(t, envelope.KEMDHKEMP256)
	rawPQ, err := envelope.MarshalPrivateKey(pq)
	if err != nil {
		t.Fatal(err)
	}
	plainPQ := filepath.Join(dir, "sealing-pq.key")
	writeFile(t, plainPQ, rawPQ, 0o600)
	plainOpen := filepath.Join(dir, "sealing-open.key")
	writeFile(t, plainOpen, rawPQ, 0o640)
	plainBad := filepath.Join(dir, "sealing-bad.key")
	writeFile(t, plainBad, rawPQ[:31], 0o600)
	encPQ, encDH, encEC := writeEnc(t, pq), writeEnc(t, dh), writeEnc(t, newECDSAKey(t))
	pass := keystore.PassphraseFromPrompt(func(string) ([]byte, error) { return []byte(testPassphrase), nil })
	for _, tc := range []struct {
		name string
		ref  string
		env  keystore.Env
		want hpke.PrivateKey
		err  error
	}{
		{"file", "file:" + plainPQ, keystore.Env{SealingKEM: envelope.KEMMLKEM768P256}, pq, nil},
		{"file without SealingKEM", "file:" + plainPQ, keystore.Env{}, nil, keystore.ErrInvalidConfig},
		{"file with unsupported KEM", "file:" + plainPQ, keystore.Env{SealingKEM: 0x0020}, nil, keystore.ErrUnsupported},
		{"file mode 0640", "file:" + plainOpen, keystore.Env{SealingKEM: envelope.KEMMLKEM768P256}, nil, keystore.ErrKeyFilePermissions},
		{"file truncated", "file:" + plainBad, keystore.Env{SealingKEM: envelope.KEMMLKEM768P256}, nil, keystore.ErrMalformed},
		{"file missing", "file:" + filepath.Join(dir, "missing"), keystore.Env{SealingKEM: envelope.KEMMLKEM768P256}, nil, keystore.ErrNotFound},
		{"file pointing to an encrypted key", "file:" + encPQ, keystore.Env{SealingKEM: envelope.KEMMLKEM768P256}, nil, keystore.ErrInvalidRef},
		{"enc MLKEM768-P256", "enc:" + encPQ, keystore.Env{Passphrase: pass}, pq, nil},
		{"enc DHKEM P-256", "enc:" + encDH, keystore.Env{Passphrase: pass}, dh, nil},
		{"enc with matching SealingKEM", "enc:" + encDH, keystore.Env{Passphrase: pass, SealingKEM: envelope.KEMDHKEMP256}, dh, nil},
		{"enc with other SealingKEM", "enc:" + encDH, keystore.Env{Passphrase: pass, SealingKEM: envelope.KEMMLKEM768P256}, nil, keystore.ErrWrongKeyType},
		{"enc holding an ECDSA key", "enc:" + encEC, keystore.Env{Passphrase: pass}, nil, keystore.ErrWrongKeyType},
		{"enc without passphrase", "enc:" + encPQ, keystore.Env{}, nil, keystore.ErrNoPassphrase},
		{"pkcs11", "pkcs11:token=hsm;object=sealing", keystore.Env{Token: keystore.TokenConfig{Module: "/usr/lib/softhsm/libsofthsm2.so", PIN: "1234"}}, nil, keystore.ErrUnsupported},
	} {
		k, err := keystore.LoadSealingKey(mustRef(t, tc.ref), tc.env)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || k != nil {
				t.Errorf("%s: LoadSealingKey = %v, %v; want nil, %v", tc.name, k, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: LoadSealingKey: %v", tc.name, err)
			continue
		}
		checkSameSealingKey(t, tc.want, k)
	}
}
