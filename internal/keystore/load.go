package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"taxlink/internal/envelope"
	"taxlink/internal/pki"
)

// Env supplies what a key reference does not contain: secrets and the
// PKCS#11 module. The zero Env can load only file: references (and file:
// sealing keys need SealingKEM).
type Env struct {
	// Passphrase supplies the passphrase of enc: references.
	Passphrase PassphraseSource
	// Token gives the PKCS#11 module path (required for pkcs11:
	// references) and optionally the PIN. TokenLabel may be left empty;
	// if set it must equal the reference's token label.
	Token TokenConfig
	// PIN supplies the token PIN when Token.PIN is empty.
	PIN PassphraseSource
	// SealingKEM is the HPKE KEM identifier of sealing keys (as in the
	// configuration's kem field). It is required for file: sealing keys,
	// whose raw serialization does not record the KEM (a 32-byte
	// MLKEM768-P256 seed and a 32-byte DHKEM P-256 scalar look alike). For
	// enc: files, which record it, a non-zero SealingKEM must match.
	SealingKEM uint16
}

// DefaultEnv returns an Env reading the passphrase from the environment
// variable TAXLINK_KEY_PASSPHRASE and the PIN from TAXLINK_PKCS11_PIN. Set
// Token.Module before loading pkcs11: references.
func DefaultEnv() Env {
	return Env{
		Passphrase: PassphraseFromEnv(EnvKeyPassphrase),
		PIN:        PassphraseFromEnv(EnvPKCS11PIN),
	}
}

// LoadSigner loads the ECDSA P-256 signing (or TLS) key that ref names and
// returns it with a Closer that releases its storage: a no-op for files,
// the Token for pkcs11: (after Close the signer fails with ErrClosed). The
// caller must call Close when the signer is no longer needed.
//
//   - file: reads with pki.ReadKeyFile (unencrypted PKCS#8; refused if
//     group or others have any access: ErrKeyFilePermissions).
//   - enc: fetches the passphrase from env.Passphrase (ErrNoPassphrase if
//     nil) and reads with ReadEncrypted; a sealing key there is
//     ErrWrongKeyType.
//   - pkcs11: opens env.Token with the reference's token label and PIN
//     env.Token.PIN or else from env.PIN, and returns Token.Signer for the
//     object label.
//
// Errors wrap the sentinels of the functions named and ErrInvalidRef for an
// invalid ref; a missing file or key matches ErrNotFound.
func LoadSigner(ref Ref, env Env) (crypto.Signer, io.Closer, error) {
	if err := ref.validate(); err != nil {
		return nil, nil, err
	}
	switch ref.Scheme {
	case SchemeFile:
		k, err := pki.ReadKeyFile(ref.Path)
		if err != nil {
			return nil, nil, fmt.Errorf("keystore: load signer %s: %w", ref, explainPlainFileError(ref.Path, err))
		}
		return k, nopCloser{}, nil
	case SchemeEnc:
		key, err := readEncryptedRef(ref, env)
		if err != nil {
			return nil, nil, err
		}
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("%w: load signer %s: the file holds %s, not an ECDSA signing key", ErrWrongKeyType, ref, describeKey(key))
		}
		return k, nopCloser{}, nil
	default: // SchemePKCS11; validate admits nothing else
		cfg, err := env.tokenConfig(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("keystore: load signer %s: %w", ref, err)
		}
		tok, err := OpenToken(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("keystore: load signer %s: %w", ref, err)
		}
		s, err := tok.Signer(ref.Object)
		if err != nil {
			tok.Close()
			return nil, nil, fmt.Errorf("keystore: load signer %s: %w", ref, err)
		}
		return s, tok, nil
	}
}

// LoadSealingKey loads the HPKE sealing (recipient) private key that ref
// names.
//
//   - file: reads the raw envelope.MarshalPrivateKey serialization (as
//     written by taxlink today) with the group/other permission check, and
//     parses it for env.SealingKEM, which must be set (ErrInvalidConfig).
//   - enc: reads with ReadEncrypted (passphrase from env.Passphrase); an
//     ECDSA key there, or a KEM other than a non-zero env.SealingKEM, is
//     ErrWrongKeyType.
//   - pkcs11: always ErrUnsupported: sealing keys cannot be kept on a
//     token through this package (see the package documentation).
func LoadSealingKey(ref Ref, env Env) (hpke.PrivateKey, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	switch ref.Scheme {
	case SchemeFile:
		if env.SealingKEM == 0 {
			return nil, fmt.Errorf("%w: load sealing key %s: Env.SealingKEM is required for file: sealing keys (their serialization does not record the KEM)", ErrInvalidConfig, ref)
		}
		raw, err := readPrivateFile(ref.Path, "sealing key file")
		if err != nil {
			return nil, fmt.Errorf("keystore: load sealing key %s: %w", ref, err)
		}
		defer clear(raw)
		if bytes.HasPrefix(raw, []byte("-----BEGIN "+pemTypeEncrypted+"-----")) {
			return nil, fmt.Errorf("%w: load sealing key %s: the file is an encrypted key file; reference it as enc:%s", ErrInvalidRef, ref, ref.Path)
		}
		k, err := envelope.ParsePrivateKey(env.SealingKEM, raw)
		if err != nil {
			sentinel := ErrMalformed
			if errors.Is(err, envelope.ErrUnsupportedSuite) {
				sentinel = ErrUnsupported
			}
			return nil, fmt.Errorf("%w: load sealing key %s: %w", sentinel, ref, err)
		}
		return k, nil
	case SchemeEnc:
		key, err := readEncryptedRef(ref, env)
		if err != nil {
			return nil, err
		}
		k, ok := key.(hpke.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: load sealing key %s: the file holds %s, not an HPKE sealing key", ErrWrongKeyType, ref, describeKey(key))
		}
		if id := k.KEM().ID(); env.SealingKEM != 0 && id != env.SealingKEM {
			return nil, fmt.Errorf("%w: load sealing key %s: the file holds a KEM 0x%04x key, configured KEM is 0x%04x", ErrWrongKeyType, ref, id, env.SealingKEM)
		}
		return k, nil
	default: // SchemePKCS11
		return nil, fmt.Errorf("%w: load sealing key %s: HPKE sealing keys cannot be used from a PKCS#11 token: "+
			"crypto11 v1.6.2 offers no ECDH derive (C_DeriveKey) for DHKEM P-256 decapsulation, and the default KEM "+
			"MLKEM768-P256 needs ML-KEM, which SoftHSM2 2.6 (PKCS#11 2.40) does not implement; keep sealing keys in enc: files",
			ErrUnsupported, ref)
	}
}

// readEncryptedRef fetches the passphrase for an enc: reference, reads the
// file and clears the passphrase.
func readEncryptedRef(ref Ref, env Env) (any, error) {
	if env.Passphrase == nil {
		return nil, fmt.Errorf("%w: load %s: no passphrase source configured (Env.Passphrase)", ErrNoPassphrase, ref)
	}
	pass, err := env.Passphrase.Passphrase("passphrase for key file " + ref.Path)
	if err != nil {
		return nil, fmt.Errorf("keystore: load %s: passphrase from %s: %w", ref, env.Passphrase, err)
	}
	defer clear(pass)
	key, err := ReadEncrypted(ref.Path, pass)
	if err != nil {
		return nil, fmt.Errorf("keystore: load %s: %w", ref, err)
	}
	return key, nil
}

// tokenConfig builds the TokenConfig for a pkcs11: reference.
func (env Env) tokenConfig(ref Ref) (TokenConfig, error) {
	cfg := env.Token
	if cfg.Module == "" {
		return TokenConfig{}, fmt.Errorf("%w: no PKCS#11 module configured (Env.Token.Module)", ErrInvalidConfig)
	}
	if cfg.TokenLabel != "" && cfg.TokenLabel != ref.Token {
		return TokenConfig{}, fmt.Errorf("%w: reference names token %q but the token configuration names %q", ErrInvalidConfig, ref.Token, cfg.TokenLabel)
	}
	cfg.TokenLabel = ref.Token
	if cfg.PIN != "" {
		return cfg, nil
	}
	if env.PIN == nil {
		return TokenConfig{}, fmt.Errorf("%w: no PIN for PKCS#11 token %q (set Env.Token.PIN or Env.PIN)", ErrNoPassphrase, ref.Token)
	}
	pin, err := env.PIN.Passphrase("PIN for PKCS#11 token " + ref.Token)
	if err != nil {
		return TokenConfig{}, fmt.Errorf("PIN from %s: %w", env.PIN, err)
	}
	cfg.PIN = string(pin)
	clear(pin)
	return cfg, nil
}

// explainPlainFileError adds ErrNotFound to a missing file's error and a
// hint when a file: reference points to an encrypted key file.
func explainPlainFileError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if errors.Is(err, pki.ErrMalformedPEM) {
		if data, rerr := readPrivateFile(path, "key file"); rerr == nil {
			encrypted := bytes.HasPrefix(data, []byte("-----BEGIN "+pemTypeEncrypted+"-----"))
			clear(data)
			if encrypted {
				return fmt.Errorf("%w: %s is an encrypted key file; reference it as enc:%s", ErrInvalidRef, path, path)
			}
		}
	}
	return err
}

// describeKey names the kind of a key returned by ReadEncrypted.
func describeKey(key any) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return "an ECDSA P-256 key"
	case hpke.PrivateKey:
		return fmt.Sprintf("an HPKE sealing key (KEM 0x%04x)", k.KEM().ID())
	}
	return fmt.Sprintf("a %T", key)
}

// nopCloser is the Closer of keys held in memory.
type nopCloser struct{}

// Close does nothing.
func (nopCloser) Close() error { return nil }
