package keystore_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io/fs"
	"testing"

	"github.com/ThalesGroup/crypto11"

	"taxlink/internal/keystore"
	"taxlink/internal/keystore/keystoretest"
)

func TestOpenTokenErrors(t *testing.T) {
	// No Token may be open here: while one is, the process is logged in to
	// the token and a wrong PIN goes unnoticed (TestOpenTokenLoginShared).
	cfg := keystoretest.SoftHSMToken(t)
	with := func(f func(*keystore.TokenConfig)) keystore.TokenConfig {
		c := cfg
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  keystore.TokenConfig
		want error
	}{
		{"wrong PIN", with(func(c *keystore.TokenConfig) { c.PIN = "00000000" }), keystore.ErrWrongPIN},
		{"unknown token", with(func(c *keystore.TokenConfig) { c.TokenLabel = "no-such-token" }), keystore.ErrNotFound},
		{"missing module", with(func(c *keystore.TokenConfig) { c.Module = "/nonexistent/libpkcs11.so" }), keystore.ErrNotFound},
		{"relative module", with(func(c *keystore.TokenConfig) { c.Module = "libsofthsm2.so" }), keystore.ErrInvalidConfig},
		{"empty module", with(func(c *keystore.TokenConfig) { c.Module = "" }), keystore.ErrInvalidConfig},
		{"empty label", with(func(c *keystore.TokenConfig) { c.TokenLabel = "" }), keystore.ErrInvalidConfig},
		{"label over 32 bytes", with(func(c *keystore.TokenConfig) { c.TokenLabel = "0123456789abcdef0123456789abcdef0" }), keystore.ErrInvalidConfig},
		{"empty PIN", with(func(c *keystore.TokenConfig) { c.PIN = "" }), keystore.ErrNoPassphrase},
	} {
		tok, err := keystore.OpenToken(tc.cfg)
		if err == nil {
			tok.Close()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: OpenToken error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := keystore.OpenToken(with(func(c *keystore.TokenConfig) { c.Module = "/nonexistent/libpkcs11.so" })); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing module: error %v does not match fs.ErrNotExist", err)
	}
}

func TestTokenSigner(t *testing.T) {
	tok, cfg := openSoftHSM(t)
	gen, err := tok.GenerateSigner("tls")
	if err != nil {
		t.Fatalf("GenerateSigner: %v", err)
	}
	if _, err := tok.GenerateSigner("tls"); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("GenerateSigner with a used label: error %v, want ErrExists", err)
	}
	found, err := tok.Signer("tls")
	if err != nil {
		t.Fatalf("Signer(tls): %v", err)
	}
	if !gen.Public().(*ecdsa.PublicKey).Equal(found.Public()) {
		t.Error("Signer returned another public key than GenerateSigner")
	}
	if _, err := tok.Signer("no-such-key"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Signer(missing label): error %v, want ErrNotFound", err)
	}
	for _, label := range []string{"", "bad\nlabel", string(make([]byte, 129))} {
		if _, err := tok.Signer(label); !errors.Is(err, keystore.ErrInvalidConfig) {
			t.Errorf("Signer(%q): error %v, want ErrInvalidConfig", label, err)
		}
		if _, err := tok.GenerateSigner(label); !errors.Is(err, keystore.ErrInvalidConfig) {
			t.Errorf("GenerateSigner(%q): error %v, want ErrInvalidConfig", label, err)
		}
	}

	// The key survives closing: a second Token finds it.
	other, err := keystore.OpenToken(cfg)
	if err != nil {
		t.Fatalf("second OpenToken: %v", err)
	}
	again, err := other.Signer("tls")
	if err != nil {
		t.Fatalf("Signer(tls) through a second Token: %v", err)
	}
	if !again.Public().(*ecdsa.PublicKey).Equal(gen.Public()) {
		t.Error("second Token returned another public key")
	}

	// Digest checks: crypto11 would sign anything; the wrapper refuses.
	d := sha256.Sum256([]byte("m"))
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"nil opts", d[:], nil},
		{"no hash", d[:], crypto.Hash(0)},
		{"short digest", d[:31], crypto.SHA256},
		{"SHA-384 size mismatch", d[:], crypto.SHA384},
	} {
		if _, err := again.Sign(rand.Reader, tc.digest, tc.opts); !errors.Is(err, keystore.ErrUnsupported) {
			t.Errorf("Sign with %s: error %v, want ErrUnsupported", tc.name, err)
		}
	}

	// After Close, the Token and its signers report ErrClosed.
	if err := other.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := other.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := again.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, keystore.ErrClosed) {
		t.Errorf("Sign after Close: error %v, want ErrClosed", err)
	}
	if _, err := other.Signer("tls"); !errors.Is(err, keystore.ErrClosed) {
		t.Errorf("Signer after Close: error %v, want ErrClosed", err)
	}
	if _, err := other.GenerateSigner("new"); !errors.Is(err, keystore.ErrClosed) {
		t.Errorf("GenerateSigner after Close: error %v, want ErrClosed", err)
	}
	// The first Token is unaffected by closing the second.
	sig, err := found.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(gen.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Errorf("first Token's signer after closing the second: %v", err)
	}
}

// TestTokenSignerAmbiguousAndUnsupported creates objects with crypto11
// directly that GenerateSigner would refuse to create.
func TestTokenSignerAmbiguousAndUnsupported(t *testing.T) {
	tok, cfg := openSoftHSM(t)
	raw, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.PIN})
	if err != nil {
		t.Fatalf("crypto11.Configure: %v", err)
	}
	defer raw.Close()
	for _, id := range []string{"id-1", "id-2"} {
		if _, err := raw.GenerateECDSAKeyPairWithLabel([]byte(id), []byte("twice"), elliptic.P256()); err != nil {
			t.Fatalf("generate duplicate-label key: %v", err)
		}
	}
	if _, err := raw.GenerateECDSAKeyPairWithLabel([]byte("id-3"), []byte("p384"), elliptic.P384()); err != nil {
		t.Fatalf("generate P-384 key: %v", err)
	}
	if _, err := raw.GenerateRSAKeyPairWithLabel([]byte("id-4"), []byte("rsa"), 2048); err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	for _, tc := range []struct {
		label string
		want  error
	}{
		{"twice", keystore.ErrAmbiguous},
		{"p384", keystore.ErrUnsupported},
		{"rsa", keystore.ErrUnsupported},
	} {
		if _, err := tok.Signer(tc.label); !errors.Is(err, tc.want) {
			t.Errorf("Signer(%q): error %v, want %v", tc.label, err, tc.want)
		}
	}
	if _, err := tok.GenerateSigner("rsa"); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("GenerateSigner over an RSA key's label: error %v, want ErrExists", err)
	}
}

// TestTokenNotWritable checks that a token key cannot be written to a file.
func TestTokenNotWritable(t *testing.T) {
	tok, _ := openSoftHSM(t)
	s, err := tok.GenerateSigner("k")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/k.enc"
	if err := keystore.WriteEncrypted(path, s, []byte(testPassphrase), testParams); !errors.Is(err, keystore.ErrUnsupported) {
		t.Errorf("WriteEncrypted(token signer): error %v, want ErrUnsupported", err)
	}
}

// TestSoftHSMTokensAreIndependent checks that consecutive SoftHSMToken
// calls in one process see their own token (the module is re-initialized
// with the new SOFTHSM2_CONF once the previous Tokens are closed).
func TestSoftHSMTokensAreIndependent(t *testing.T) {
	var labels []string
	for i, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			tok, cfg := openSoftHSM(t)
			if _, err := tok.Signer("only-in-first"); i == 1 && !errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("second token sees the first token's key: %v", err)
			}
			if _, err := tok.GenerateSigner("only-in-first"); err != nil {
				t.Fatal(err)
			}
			labels = append(labels, cfg.TokenLabel)
		})
	}
	if len(labels) == 2 && labels[0] == labels[1] {
		t.Errorf("both tokens have label %q", labels[0])
	}
}

// TestOpenTokenLoginShared pins a PKCS#11 property documented at OpenToken:
// the login state belongs to the process, so while one Token is open a
// second OpenToken is not asked for the right PIN (crypto11 accepts
// CKR_USER_ALREADY_LOGGED_IN). If this test starts failing, the
// documentation must change.
func TestOpenTokenLoginShared(t *testing.T) {
	_, cfg := openSoftHSM(t)
	wrong := cfg
	wrong.PIN = "00000000"
	tok, err := keystore.OpenToken(wrong)
	if err != nil {
		t.Fatalf("OpenToken with a wrong PIN while logged in: %v; the shared-login caveat in OpenToken's documentation is obsolete", err)
	}
	tok.Close()
}
