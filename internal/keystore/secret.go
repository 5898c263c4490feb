package keystore

import (
	"bytes"
	"fmt"
	"os"
)

// Environment variables read by DefaultEnv.
const (
	// EnvKeyPassphrase holds the passphrase of enc: key files.
	EnvKeyPassphrase = "TAXLINK_KEY_PASSPHRASE"
	// EnvPKCS11PIN holds the user PIN of the PKCS#11 token.
	EnvPKCS11PIN = "TAXLINK_PKCS11_PIN"
)

// A PassphraseSource supplies a passphrase or PIN on demand. Implementations
// must be safe for sequential use; the secret is fetched each time it is
// needed and not cached by this package.
type PassphraseSource interface {
	// Passphrase returns the secret for what, a human-readable description
	// of what is being unlocked (such as "passphrase for key file
	// /etc/taxlink/tls.key"), as a fresh slice that the caller clears
	// after use. An unavailable or empty secret yields an error wrapping
	// ErrNoPassphrase.
	Passphrase(what string) ([]byte, error)
	// String describes the source (never the secret) for error messages,
	// e.g. "environment variable TAXLINK_KEY_PASSPHRASE".
	String() string
}

// PassphraseFromEnv returns a source reading the environment variable
// name. The value is used as is (no trimming). An unset or empty variable
// yields ErrNoPassphrase. Prefer a file or prompt where the environment of
// a process is visible to others.
func PassphraseFromEnv(name string) PassphraseSource { return envSource(name) }

type envSource string

func (s envSource) Passphrase(string) ([]byte, error) {
	v, ok := os.LookupEnv(string(s))
	if !ok {
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrNoPassphrase, string(s))
	}
	if v == "" {
		return nil, fmt.Errorf("%w: environment variable %s is empty", ErrNoPassphrase, string(s))
	}
	return []byte(v), nil
}

func (s envSource) String() string { return "environment variable " + string(s) }

// PassphraseFromFile returns a source reading the file at path, which must
// be a regular file without group/other access (ErrKeyFilePermissions) of
// at most 64 KiB. One trailing "\n" or "\r\n" is removed; what remains
// must not be empty (ErrNoPassphrase).
func PassphraseFromFile(path string) PassphraseSource { return fileSource(path) }

type fileSource string

func (s fileSource) Passphrase(string) ([]byte, error) {
	b, err := readPrivateFile(string(s), "passphrase file")
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	n := len(b)
	if bytes.HasSuffix(b[:n], []byte("\n")) {
		n--
		if bytes.HasSuffix(b[:n], []byte("\r")) {
			n--
		}
	}
	clear(b[n:])
	b = b[:n]
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: passphrase file %s is empty", ErrNoPassphrase, string(s))
	}
	return b, nil
}

func (s fileSource) String() string { return "file " + string(s) }

// PassphraseFromPrompt returns a source that calls prompt, for example to
// read from a terminal without echo. prompt receives the description of
// what is being unlocked and returns a slice that the caller of Passphrase
// owns (and clears). An empty answer yields ErrNoPassphrase; a prompt error
// is wrapped.
func PassphraseFromPrompt(prompt func(what string) ([]byte, error)) PassphraseSource {
	return promptSource{prompt}
}

type promptSource struct {
	prompt func(string) ([]byte, error)
}

func (s promptSource) Passphrase(what string) ([]byte, error) {
	if s.prompt == nil {
		return nil, fmt.Errorf("%w: nil prompt function", ErrNoPassphrase)
	}
	b, err := s.prompt(what)
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("keystore: prompt for %s: %w", what, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty answer to prompt for %s", ErrNoPassphrase, what)
	}
	return b, nil
}

func (s promptSource) String() string { return "prompt" }
