package keystore

import (
	"errors"

	"taxlink/internal/pki"
)

// Sentinel errors. Every error returned by this package whose cause is one
// of those below wraps the corresponding sentinel (test with errors.Is); the
// wrapping message says which file, token, object or field is concerned but
// never contains a passphrase, a PIN or key bytes.
var (
	// ErrWrongPassphrase reports a passphrase that does not open an
	// encrypted key file. It is also what a file whose KDF header (salt,
	// parameters or check value) was altered yields, because without the
	// right salt the right key cannot be derived to tell the two apart.
	ErrWrongPassphrase = errors.New("keystore: wrong passphrase")

	// ErrTampered reports an encrypted key file that the passphrase opens
	// (its check value matches) but whose authenticated content (header,
	// nonce, ciphertext or tag) fails AES-GCM authentication: the file was
	// corrupted or tampered with.
	ErrTampered = errors.New("keystore: encrypted key file fails authentication (corrupted or tampered)")

	// ErrMalformed reports a key file that is not in the expected format:
	// wrong PEM type, missing or extra headers, undecodable or non-canonical
	// encoding, out-of-range KDF parameters, trailing data.
	ErrMalformed = errors.New("keystore: malformed key file")

	// ErrKeyFilePermissions reports a private key (or passphrase/PIN) file
	// that is accessible by group or others, or not a regular file. It is
	// the same value as pki.ErrKeyFilePermissions, so errors.Is matches
	// either name whichever package refused the file.
	ErrKeyFilePermissions = pki.ErrKeyFilePermissions

	// ErrNotFound reports a key file, PKCS#11 module, token or key object
	// that does not exist. Missing files also match fs.ErrNotExist.
	ErrNotFound = errors.New("keystore: not found")

	// ErrUnsupported reports a key type, curve, KEM, KDF, cipher or format
	// version this package does not handle, or an operation the key's
	// storage cannot perform (for example an HPKE sealing key on a PKCS#11
	// token; see the package documentation).
	ErrUnsupported = errors.New("keystore: unsupported")

	// ErrWrongKeyType reports a key of another kind than the caller asked
	// for: a sealing key where a signing key was expected or vice versa,
	// or a sealing key of another KEM than configured.
	ErrWrongKeyType = errors.New("keystore: wrong kind of key")

	// ErrInvalidRef reports a key reference string (or Ref value) that does
	// not follow the grammar described at ParseRef.
	ErrInvalidRef = errors.New("keystore: invalid key reference")

	// ErrInvalidConfig reports invalid arguments: KDF parameters out of
	// range, an incomplete or contradictory TokenConfig or Env, an invalid
	// object label.
	ErrInvalidConfig = errors.New("keystore: invalid configuration")

	// ErrNoPassphrase reports that no passphrase or PIN is available: an
	// unset or empty environment variable, an empty file or prompt answer,
	// no source configured.
	ErrNoPassphrase = errors.New("keystore: no passphrase or PIN available")

	// ErrWrongPIN reports a PKCS#11 login refused because of the PIN
	// (incorrect, wrong length, expired or locked).
	ErrWrongPIN = errors.New("keystore: PKCS#11 PIN refused")

	// ErrExists reports a key label that is already in use on the token.
	ErrExists = errors.New("keystore: key already exists")

	// ErrAmbiguous reports a label that names more than one key pair on
	// the token.
	ErrAmbiguous = errors.New("keystore: label names more than one key")

	// ErrClosed reports use of a Token (or of a signer obtained from it)
	// after Close.
	ErrClosed = errors.New("keystore: token closed")
)
