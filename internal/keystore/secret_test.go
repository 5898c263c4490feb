package keystore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"taxlink/internal/keystore"
)

func TestPassphraseSources(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, perm uint32) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(content), os.FileMode(perm))
		return p
	}
	t.Setenv("TEST_KS_SET", "env secret \n")
	t.Setenv("TEST_KS_EMPTY", "")
	errPrompt := errors.New("terminal closed")
	var asked string
	for _, tc := range []struct {
		name string
		src  keystore.PassphraseSource
		want string
		err  error
	}{
		{"env set (used as is)", keystore.PassphraseFromEnv("TEST_KS_SET"), "env secret \n", nil},
		{"env empty", keystore.PassphraseFromEnv("TEST_KS_EMPTY"), "", keystore.ErrNoPassphrase},
		{"env unset", keystore.PassphraseFromEnv("TEST_KS_UNSET_VARIABLE"), "", keystore.ErrNoPassphrase},
		{"file", keystore.PassphraseFromFile(file("plain", "secret", 0o600)), "secret", nil},
		{"file newline", keystore.PassphraseFromFile(file("nl", "secret\n", 0o400)), "secret", nil},
		{"file CRLF", keystore.PassphraseFromFile(file("crlf", "secret\r\n", 0o600)), "secret", nil},
		{"file only one newline removed", keystore.PassphraseFromFile(file("nlnl", "secret\n\n", 0o600)), "secret\n", nil},
		{"file spaces kept", keystore.PassphraseFromFile(file("sp", " secret ", 0o600)), " secret ", nil},
		{"file empty", keystore.PassphraseFromFile(file("empty", "", 0o600)), "", keystore.ErrNoPassphrase},
		{"file only newline", keystore.PassphraseFromFile(file("onlynl", "\n", 0o600)), "", keystore.ErrNoPassphrase},
		{"file group-readable", keystore.PassphraseFromFile(file("g", "secret", 0o640)), "", keystore.ErrKeyFilePermissions},
		{"file world-readable", keystore.PassphraseFromFile(file("o", "secret", 0o604)), "", keystore.ErrKeyFilePermissions},
		{"file missing", keystore.PassphraseFromFile(filepath.Join(dir, "missing")), "", keystore.ErrNotFound},
		{"file too large", keystore.PassphraseFromFile(file("big", strings.Repeat("x", 64<<10+1), 0o600)), "", keystore.ErrMalformed},
		{"prompt", keystore.PassphraseFromPrompt(func(what string) ([]byte, error) { asked = what; return []byte("typed"), nil }), "typed", nil},
		{"prompt empty", keystore.PassphraseFromPrompt(func(string) ([]byte, error) { return nil, nil }), "", keystore.ErrNoPassphrase},
		{"prompt error", keystore.PassphraseFromPrompt(func(string) ([]byte, error) { return nil, errPrompt }), "", errPrompt},
		{"prompt nil", keystore.PassphraseFromPrompt(nil), "", keystore.ErrNoPassphrase},
	} {
		got, err := tc.src.Passphrase("passphrase for key file /k")
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s: Passphrase: %v", tc.name, err)
		case tc.err == nil && string(got) != tc.want:
			t.Errorf("%s: Passphrase = %q, want %q", tc.name, got, tc.want)
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
		case tc.err != nil && got != nil:
			t.Errorf("%s: returned %d bytes with its error", tc.name, len(got))
		}
		if s := tc.src.String(); s == "" || strings.Contains(s, "secret") || strings.Contains(s, "typed") {
			t.Errorf("%s: String() = %q: empty or contains the secret", tc.name, s)
		}
	}
	if asked != "passphrase for key file /k" {
		t.Errorf("prompt was asked %q, want the description passed to Passphrase", asked)
	}
}

func TestTokenConfigStringHidesPIN(t *testing.T) {
	cfg := keystore.TokenConfig{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "hsm", PIN: "98765432"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, cfg.PIN) || !strings.Contains(s, "hsm") {
			t.Errorf("Sprintf(%q, TokenConfig) = %q: shows the PIN or hides the label", verb, s)
		}
	}
	if s := fmt.Sprintf("%v", &cfg); strings.Contains(s, cfg.PIN) {
		t.Errorf("Sprintf(%%v, *TokenConfig) = %q shows the PIN", s)
	}
}
