package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// TokenConfig says how to reach a PKCS#11 token. Its String and GoString
// methods redact the PIN, so printing a TokenConfig is safe.
type TokenConfig struct {
	// Module is the absolute path of the PKCS#11 module (shared library),
	// e.g. /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel selects the token by its label (at most 32 bytes).
	TokenLabel string
	// PIN is the user PIN. It never appears in errors.
	PIN string
}

// String describes c without the PIN.
func (c TokenConfig) String() string {
	pin := "unset"
	if c.PIN != "" {
		pin = "set"
	}
	return fmt.Sprintf("PKCS#11 token %q via %s (PIN %s)", c.TokenLabel, c.Module, pin)
}

// GoString is like String, so that %#v does not print the PIN either.
func (c TokenConfig) GoString() string { return "keystore.TokenConfig{" + c.String() + "}" }

// Token is an open, logged-in session pool on a PKCS#11 token, obtained
// with OpenToken. Its methods, and the signers it returns, are safe for
// concurrent use. Close it when done; signers obtained from it then fail
// with ErrClosed.
type Token struct {
	cfg    TokenConfig // PIN cleared after login
	ctx    *crypto11.Context
	closed atomic.Bool
	genMu  sync.Mutex // serializes GenerateSigner's check-then-create
}

// OpenToken loads the PKCS#11 module cfg.Module, finds the token labelled
// cfg.TokenLabel and logs in as the normal user with cfg.PIN.
//
// Errors: an empty or relative module path, an empty or over-long token
// label yield ErrInvalidConfig; an empty PIN ErrNoPassphrase; a missing
// module file or token ErrNotFound; a refused PIN (incorrect, wrong length,
// expired, locked) ErrWrongPIN. No error contains the PIN.
//
// PKCS#11 login state belongs to the process, not to a Token: while
// another Token on the same token is open, the token answers C_Login with
// CKR_USER_ALREADY_LOGGED_IN, which crypto11 accepts, so the PIN of a
// second OpenToken is not checked. Open a token once per process.
//
// The module is initialized once per process and shared by all Tokens
// opened on it (crypto11 reference-counts it); its configuration (for
// SoftHSM2, the SOFTHSM2_CONF environment variable) is read when the first
// Token on it is opened.
func OpenToken(cfg TokenConfig) (*Token, error) {
	if cfg.Module == "" || !filepath.IsAbs(cfg.Module) {
		return nil, fmt.Errorf("%w: PKCS#11 module path %s must be absolute", ErrInvalidConfig, quote(cfg.Module))
	}
	if err := checkLabel("token", cfg.TokenLabel); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, err)
	}
	if cfg.PIN == "" {
		return nil, fmt.Errorf("%w: empty PIN for PKCS#11 token %q", ErrNoPassphrase, cfg.TokenLabel)
	}
	if _, err := os.Stat(cfg.Module); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: PKCS#11 module: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("keystore: PKCS#11 module: %w", err)
	}
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:       cfg.Module,
		TokenLabel: cfg.TokenLabel,
		Pin:        cfg.PIN,
	})
	if err != nil {
		return nil, classifyOpenError(cfg, err)
	}
	cfg.PIN = ""
	return &Token{cfg: cfg, ctx: ctx}, nil
}

// classifyOpenError wraps an error of crypto11.Configure with the matching
// sentinel. crypto11 v1.6.2 returns an unexported, unwrapped error when no
// token has the label, recognizable only by its text; TestOpenTokenErrors
// pins that text so an upgrade that changes it is noticed.
func classifyOpenError(cfg TokenConfig, err error) error {
	const tokenNotFound = "could not find PKCS#11 token"
	var p11 pkcs11.Error
	switch {
	case err.Error() == tokenNotFound:
		return fmt.Errorf("%w: no PKCS#11 token labelled %q in module %s", ErrNotFound, cfg.TokenLabel, cfg.Module)
	case errors.As(err, &p11) && isPINError(p11):
		return fmt.Errorf("%w: log in to PKCS#11 token %q: %w", ErrWrongPIN, cfg.TokenLabel, err)
	}
	return fmt.Errorf("keystore: open PKCS#11 token %q with module %s: %w", cfg.TokenLabel, cfg.Module, err)
}

// isPINError reports whether rv is a PKCS#11 return value about the PIN.
func isPINError(rv pkcs11.Error) bool {
	switch rv {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LOCKED:
		return true
	}
	return false
}

// Close logs out, closes the token's sessions and, if no other Token uses
// the module, finalizes and unloads it. It waits for operations in flight.
// Closing again does nothing and returns nil.
func (t *Token) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := t.ctx.Close(); err != nil {
		return fmt.Errorf("keystore: close PKCS#11 token %q: %w", t.cfg.TokenLabel, err)
	}
	return nil
}

// Signer returns the ECDSA P-256 key pair labelled label (CKA_LABEL of the
// private key; the public key is matched by CKA_ID) as a crypto.Signer
// whose private key never leaves the token. It signs digests only: opts
// must name a hash and the digest must have its size. It works as
// tls.Certificate.PrivateKey, for x509.CreateCertificate and produces
// ASN.1 signatures that ecdsa.VerifyASN1 accepts.
//
// Errors: ErrNotFound if no key pair has the label, ErrAmbiguous if several
// do, ErrUnsupported if the key is not ECDSA P-256, ErrInvalidConfig for an
// invalid label, ErrClosed after Close.
func (t *Token) Signer(label string) (crypto.Signer, error) {
	if err := t.usable(label); err != nil {
		return nil, err
	}
	pairs, err := t.ctx.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keystore: find key %q on PKCS#11 token %q: %w", label, t.cfg.TokenLabel, err)
	}
	switch len(pairs) {
	case 0:
		return nil, fmt.Errorf("%w: no key pair labelled %q on PKCS#11 token %q", ErrNotFound, label, t.cfg.TokenLabel)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d key pairs labelled %q on PKCS#11 token %q", ErrAmbiguous, len(pairs), label, t.cfg.TokenLabel)
	}
	return t.wrap(label, pairs[0])
}

// GenerateSigner generates a new ECDSA P-256 key pair on the token with
// CKA_LABEL label and a random 16-byte CKA_ID, and returns it like Signer.
// The private key is created CKA_SENSITIVE and not CKA_EXTRACTABLE: it can
// never be read out of the token. A label already used by a private key
// yields ErrExists (the check is serialized within this Token, not across
// processes).
func (t *Token) GenerateSigner(label string) (crypto.Signer, error) {
	if err := t.usable(label); err != nil {
		return nil, err
	}
	t.genMu.Lock()
	defer t.genMu.Unlock()
	existing, err := t.ctx.FindPrivateKeys(nil, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("keystore: look for key %q on PKCS#11 token %q: %w", label, t.cfg.TokenLabel, err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("%w: PKCS#11 token %q already has a private key labelled %q", ErrExists, t.cfg.TokenLabel, label)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id) // never fails
	k, err := t.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(label), elliptic.P256())
	if err != nil {
		return nil, fmt.Errorf("keystore: generate ECDSA P-256 key %q on PKCS#11 token %q: %w", label, t.cfg.TokenLabel, err)
	}
	return t.wrap(label, k)
}

// usable checks that t is open and label is acceptable.
func (t *Token) usable(label string) error {
	if t.closed.Load() {
		return fmt.Errorf("%w: PKCS#11 token %q", ErrClosed, t.cfg.TokenLabel)
	}
	if err := checkLabel("object", label); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, err)
	}
	return nil
}

// wrap checks that k is ECDSA P-256 and returns it as a tokenSigner.
func (t *Token) wrap(label string, k crypto11.Signer) (crypto.Signer, error) {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub == nil {
		return nil, fmt.Errorf("%w: key %q on PKCS#11 token %q is a %T, not ECDSA P-256", ErrUnsupported, label, t.cfg.TokenLabel, k.Public())
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: key %q on PKCS#11 token %q is on curve %s, not P-256", ErrUnsupported, label, t.cfg.TokenLabel, curveName(pub.Curve))
	}
	return &tokenSigner{tok: t, key: k, pub: pub, label: label}, nil
}

// tokenSigner adapts a crypto11 ECDSA key. crypto11 ignores the SignerOpts
// and signs whatever it is given with CKM_ECDSA; tokenSigner insists on a
// real digest of the announced size and reports use after Close.
type tokenSigner struct {
	tok   *Token
	key   crypto11.Signer
	pub   *ecdsa.PublicKey
	label string
}

// Public returns the *ecdsa.PublicKey of the key pair.
func (s *tokenSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs digest, which must be the output of opts.HashFunc(), on the
// token and returns an ASN.1 DER ECDSA signature. rand is ignored: the
// token supplies its own randomness.
func (s *tokenSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.tok.closed.Load() {
		return nil, fmt.Errorf("%w: sign with key %q of PKCS#11 token %q", ErrClosed, s.label, s.tok.cfg.TokenLabel)
	}
	if opts == nil || opts.HashFunc() == 0 {
		return nil, fmt.Errorf("%w: key %q on PKCS#11 token %q signs digests only; opts must name a hash", ErrUnsupported, s.label, s.tok.cfg.TokenLabel)
	}
	h := opts.HashFunc()
	if !h.Available() {
		return nil, fmt.Errorf("%w: hash %v is not linked into this program", ErrUnsupported, h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: digest of %d bytes for hash %v, want %d", ErrUnsupported, len(digest), h, h.Size())
	}
	sig, err := s.key.Sign(nil, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("keystore: sign with key %q on PKCS#11 token %q: %w", s.label, s.tok.cfg.TokenLabel, err)
	}
	return sig, nil
}
