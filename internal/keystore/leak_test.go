package keystore_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/keystore/keystoretest"
	"taxlink/internal/pki"
)

// buildEncrypted writes a TAXLINK ENCRYPTED KEY file for plaintext
// following the format in the package documentation, independently of the
// package's own writer.
func buildEncrypted(t *testing.T, path string, passphrase []byte, keyType, kem string, plaintext []byte) {
	t.Helper()
	salt, nonce := make([]byte, 16), make([]byte, 12)
	rand.Read(salt)
	rand.Read(nonce)
	out := argon2.IDKey(passphrase, salt, 1, 64, 1, 48)
	b64 := base64.StdEncoding.EncodeToString
	fields := [][2]string{{"Version", "1"}, {"Key-Type", keyType}}
	if kem != "" {
		fields = append(fields, [2]string{"Key-KEM", kem})
	}
	fields = append(fields, [][2]string{
		{"KDF", "argon2id"}, {"KDF-Params", "t=1,m=64,p=1"}, {"KDF-Salt", b64(salt)},
		{"KDF-Check", b64(out[32:])}, {"Cipher", "aes-256-gcm"}, {"Nonce", b64(nonce)},
	}...)
	aad := "taxlink encrypted key v1\n"
	headers := map[string]string{}
	for _, f := range fields {
		aad += f[0] + ": " + f[1] + "\n"
		headers[f[0]] = f[1]
	}
	block, err := aes.NewCipher(out[:32])
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	ct := gcm.Seal(nil, nonce, plaintext, []byte(aad))
	writeFile(t, path, pem.EncodeToMemory(&pem.Block{Type: "TAXLINK ENCRYPTED KEY", Headers: headers, Bytes: ct}), 0o600)
}

// TestFormatAsDocumented reads files built from the documentation alone,
// and authenticated files whose plaintext is not a valid key.
func TestFormatAsDocumented(t *testing.T) {
	dir := t.TempDir()
	pass := []byte(testPassphrase)
	ec := newECDSAKey(t)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	dh := newSealingKey(t, envelope.KEMDHKEMP256)
	dhRaw, _ := envelope.MarshalPrivateKey(dh)

	path := filepath.Join(dir, "ec.enc")
	buildEncrypted(t, path, pass, "ecdsa-p256", "", der)
	got, err := keystore.ReadEncrypted(path, pass)
	if err != nil || !ec.Equal(got) {
		t.Fatalf("file built from the documented format: %T, %v; want the ECDSA key", got, err)
	}
	path = filepath.Join(dir, "dh.enc")
	buildEncrypted(t, path, pass, "hpke", "0x0010", dhRaw)
	if got, err := keystore.ReadEncrypted(path, pass); err != nil {
		t.Fatalf("HPKE file built from the documented format: %v", err)
	} else {
		checkSameSealingKey(t, dh, got.(hpke.PrivateKey))
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	for _, tc := range []struct {
		name, keyType, kem string
		plaintext          []byte
	}{
		{"P-384 PKCS#8", "ecdsa-p256", "", p384DER},
		{"PKCS#8 with trailing byte", "ecdsa-p256", "", append(bytes.Clone(der), 0)},
		{"not PKCS#8", "ecdsa-p256", "", []byte("not a key")},
		{"HPKE key of 31 bytes", "hpke", "0x0010", dhRaw[:31]},
		{"ECDSA DER as HPKE key", "hpke", "0x0050", der},
	} {
		path := filepath.Join(dir, "bad.enc")
		buildEncrypted(t, path, pass, tc.keyType, tc.kem, tc.plaintext)
		if _, err := keystore.ReadEncrypted(path, pass); !errors.Is(err, keystore.ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", tc.name, err)
		}
	}
}

// TestErrorsNeverContainSecrets provokes every failure of loading a key
// that has a secret at hand and searches all renderings of each error (and
// of every error it wraps) for the passphrases, PINs and key bytes.
func TestErrorsNeverContainSecrets(t *testing.T) {
	dir := t.TempDir()
	const wrongPass = "wrong passphrase 7c4e1d"
	ec := newECDSAKey(t)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	sealing := newSealingKey(t, envelope.KEMMLKEM768P256)
	sealingRaw := serialize(t, sealing)
	secrets := map[string][]byte{
		"passphrase":       []byte(testPassphrase),
		"wrong passphrase": []byte(wrongPass),
		"ECDSA scalar":     scalar(t, ec),
		"PKCS#8 DER":       der,
		"sealing key":      sealingRaw,
	}

	var errs []error
	collect := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error, the scenario is broken", what)
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}
	encEC := writeEnc(t, ec)
	encSealing := writeEnc(t, sealing)
	plain := filepath.Join(dir, "plain.key")
	if err := pki.WriteKeyFile(plain, ec); err != nil {
		t.Fatal(err)
	}
	rawSealing := filepath.Join(dir, "sealing.key")
	writeFile(t, rawSealing, sealingRaw, 0o600)
	openSealing := filepath.Join(dir, "sealing-open.key")
	writeFile(t, openSealing, sealingRaw, 0o644)
	corruptPlain := filepath.Join(dir, "corrupt.key")
	writeFile(t, corruptPlain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: append(bytes.Clone(der), 1)}), 0o600)
	openPass := filepath.Join(dir, "pass-open")
	writeFile(t, openPass, []byte(testPassphrase), 0o644)
	t.Setenv("TEST_KS_WRONG", wrongPass)

	_, err := keystore.ReadEncrypted(encEC, []byte(wrongPass))
	collect("wrong passphrase", err)
	orig, _ := os.ReadFile(encEC)
	tampered := filepath.Join(dir, "tampered.enc")
	for i := 0; i < len(orig); i += 7 {
		data := bytes.Clone(orig)
		data[i] ^= 0x01
		writeFile(t, tampered, data, 0o600)
		_, err := keystore.ReadEncrypted(tampered, []byte(testPassphrase))
		collect(fmt.Sprintf("byte %d flipped", i), err)
	}
	envWrong := keystore.Env{Passphrase: keystore.PassphraseFromEnv("TEST_KS_WRONG")}
	envRight := keystore.Env{Passphrase: keystore.PassphraseFromPrompt(func(string) ([]byte, error) { return []byte(testPassphrase), nil })}
	_, _, err = keystore.LoadSigner(mustRef(t, "enc:"+encEC), envWrong)
	collect("LoadSigner wrong passphrase", err)
	_, _, err = keystore.LoadSigner(mustRef(t, "enc:"+encEC), keystore.Env{Passphrase: keystore.PassphraseFromFile(openPass)})
	collect("LoadSigner passphrase file readable by others", err)
	_, _, err = keystore.LoadSigner(mustRef(t, "enc:"+encSealing), envRight)
	collect("LoadSigner on a sealing key", err)
	_, _, err = keystore.LoadSigner(mustRef(t, "file:"+encEC), keystore.Env{})
	collect("LoadSigner file: on an encrypted key", err)
	_, _, err = keystore.LoadSigner(mustRef(t, "file:"+corruptPlain), keystore.Env{})
	collect("LoadSigner corrupt plain key", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "enc:"+encEC), envRight)
	collect("LoadSealingKey on an ECDSA key", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "enc:"+encSealing), keystore.Env{Passphrase: envRight.Passphrase, SealingKEM: envelope.KEMDHKEMP256})
	collect("LoadSealingKey KEM mismatch", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "file:"+rawSealing), keystore.Env{SealingKEM: 0x0020})
	collect("LoadSealingKey unsupported KEM", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "file:"+openSealing), keystore.Env{SealingKEM: envelope.KEMMLKEM768P256})
	collect("LoadSealingKey file readable by others", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "file:"+plain), keystore.Env{SealingKEM: envelope.KEMMLKEM768P256})
	collect("LoadSealingKey on a PKCS#8 file", err)
	_, err = keystore.ParseRef("pkcs11:token=t;object=o?pin-value=" + testPassphrase)
	collect("ParseRef with pin-value", err)

	// PKCS#11: a wrong PIN, and a right PIN with a missing object.
	cfg := softHSMConfig(t)
	secrets["PIN"] = []byte(cfg.PIN)
	secrets["wrong PIN"] = []byte("31337424")
	ref := mustRef(t, "pkcs11:token="+cfg.TokenLabel+";object=missing")
	_, _, err = keystore.LoadSigner(ref, keystore.Env{Token: keystore.TokenConfig{Module: cfg.Module, PIN: "31337424"}})
	collect("LoadSigner wrong PIN", err)
	_, _, err = keystore.LoadSigner(ref, keystore.Env{Token: cfg})
	collect("LoadSigner missing object", err)
	_, err = keystore.OpenToken(keystore.TokenConfig{Module: cfg.Module, TokenLabel: "missing", PIN: cfg.PIN})
	collect("OpenToken missing token", err)
	_, err = keystore.LoadSealingKey(mustRef(t, "pkcs11:token="+cfg.TokenLabel+";object=s"), keystore.Env{Token: cfg})
	collect("LoadSealingKey pkcs11", err)

	for _, err := range errs {
		for _, text := range renderings(err) {
			for name, secret := range secrets {
				for _, form := range secretForms(secret) {
					if strings.Contains(text, form) {
						t.Errorf("error contains the %s (as %q):\n%s", name, form, text)
					}
				}
			}
		}
	}
	t.Logf("checked %d errors", len(errs))
}

// softHSMConfig returns a new SoftHSM2 token's configuration without
// opening it, so that a wrong PIN is actually checked.
func softHSMConfig(t *testing.T) keystore.TokenConfig {
	t.Helper()
	return keystoretest.SoftHSMToken(t)
}

// scalar returns the private scalar of k.
func scalar(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// renderings returns err formatted with %v, %+v, %#v and %s, and the same
// for every error in its tree.
func renderings(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e.Error(), fmt.Sprintf("%v", e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%q", e))
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// secretForms returns the encodings under which secret might leak: as
// text (if printable), hex, base64 and decimal, whole and in 8-byte pieces.
func secretForms(secret []byte) []string {
	forms := func(b []byte) []string {
		f := []string{
			hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
			fmt.Sprintf("%v", b), fmt.Sprintf("%q", b),
		}
		if len(b) >= 8 {
			f = append(f, new(big.Int).SetBytes(b).String())
		}
		if s := string(b); strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) < 0 {
			f = append(f, s)
		}
		return f
	}
	out := forms(secret)
	for i := 0; i+8 <= len(secret) && len(secret) > 8; i += 4 {
		chunk := secret[i : i+8]
		out = append(out, hex.EncodeToString(chunk), strings.ToUpper(hex.EncodeToString(chunk)))
	}
	return out
}
