package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRaw writes data to dir/name with exactly mode perm (despite the
// umask) and returns the path.
func writeRaw(t *testing.T, dir, name string, data []byte, perm fs.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// pemOf encodes der as one PEM block of type typ.
func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// pkcs8Of marshals any private key as PKCS#8 DER.
func pkcs8Of(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestKeyFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.key")
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatalf("WriteKeyFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatalf("ReadKeyFile(own output): %v", err)
	}
	if !key.Equal(got) {
		t.Error("key read back differs from the key written")
	}

	// Overwriting replaces the file and leaves no temporary file behind.
	key2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, key2); err != nil {
		t.Fatalf("WriteKeyFile (overwrite): %v", err)
	}
	if got, err := ReadKeyFile(path); err != nil || !key2.Equal(got) {
		t.Errorf("after overwrite ReadKeyFile = %v; want the new key", err)
	}
	assertDirHolds(t, dir, "node.key")
}

// assertDirHolds fails unless dir contains exactly the named entries.
func assertDirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %q, want %q (temporary file left behind?)", got, names)
	}
}

func TestWriteKeyFileRejectsUnsupportedKeys(t *testing.T) {
	dir := t.TempDir()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(filepath.Join(dir, "p384.key"), p384); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("WriteKeyFile(P-384 key) = %v, want ErrUnsupportedKey", err)
	}
	if err := WriteKeyFile(filepath.Join(dir, "ed.key"), ed); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("WriteKeyFile(Ed25519 key) = %v, want ErrUnsupportedKey", err)
	}
	assertDirHolds(t, dir)
}

func TestReadKeyFilePermissions(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	data := pemOf("PRIVATE KEY", pkcs8Of(t, key))
	tests := []struct {
		perm fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o666, false},
		{0o610, false}, // group execute: refused too, like ssh does
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#o", tc.perm), func(t *testing.T) {
			path := writeRaw(t, t.TempDir(), "node.key", data, tc.perm)
			got, err := ReadKeyFile(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("ReadKeyFile(mode %#o) refused: %v", tc.perm, err)
				}
				if !key.Equal(got) {
					t.Fatalf("ReadKeyFile(mode %#o) returned a different key", tc.perm)
				}
				return
			}
			if !errors.Is(err, ErrKeyFilePermissions) {
				t.Fatalf("ReadKeyFile(mode %#o) = %v; want ErrKeyFilePermissions", tc.perm, err)
			}
			mode := fmt.Sprintf("%#o", tc.perm)
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, mode) {
				t.Fatalf("error %q should name the path %q and the mode %s", msg, path, mode)
			}
		})
	}
}

func TestReadKeyFileRefusesTamperedOrForeignPEM(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der := pkcs8Of(t, key)
	good := pemOf("PRIVATE KEY", der)
	lines := strings.SplitAfter(strings.TrimSuffix(string(good), "\n"), "\n") // last: END line

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		d := bytes.Clone(der)
		d[i] ^= 0x01
		return pemOf("PRIVATE KEY", d)
	}
	// Swap one base64 character in the middle of the body.
	swapped := []byte(lines[1])
	if swapped[10] == 'A' {
		swapped[10] = 'B'
	} else {
		swapped[10] = 'A'
	}

	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"base64 character changed", []byte(lines[0] + string(swapped) + strings.Join(lines[2:], "")), ErrMalformedPEM},
		{"private scalar bit flipped", flip(len(der) - 80), ErrMalformedPEM},
		{"embedded public key bit flipped", flip(len(der) - 1), ErrMalformedPEM},
		{"truncated body", []byte(lines[0] + lines[1] + lines[len(lines)-1]), ErrMalformedPEM},
		{"missing END line", []byte(strings.Join(lines[:len(lines)-1], "")), ErrMalformedPEM},
		{"trailing garbage", append(bytes.Clone(good), "garbage\n"...), ErrMalformedPEM},
		{"leading garbage", append([]byte("garbage\n"), good...), ErrMalformedPEM},
		{"PEM header", []byte(lines[0] + "Proc-Type: 4,ENCRYPTED\n\n" + strings.Join(lines[1:], "")), ErrMalformedPEM},
		{"two keys", append(bytes.Clone(good), good...), ErrMalformedPEM},
		{"trailing DER bytes", pemOf("PRIVATE KEY", append(bytes.Clone(der), 0, 0)), ErrMalformedPEM},
		{"SEC1 EC PRIVATE KEY", pemOf("EC PRIVATE KEY", sec1), ErrMalformedPEM},
		{"encrypted PKCS#8", pemOf("ENCRYPTED PRIVATE KEY", der), ErrEncryptedKey},
		{"certificate instead of key", pemOf("CERTIFICATE", der), ErrMalformedPEM},
		{"empty file", nil, ErrMalformedPEM},
		{"P-384 key", pemOf("PRIVATE KEY", pkcs8Of(t, p384)), ErrUnsupportedKey},
		{"Ed25519 key", pemOf("PRIVATE KEY", pkcs8Of(t, ed)), ErrUnsupportedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRaw(t, t.TempDir(), "node.key", tc.data, 0o600)
			got, err := ReadKeyFile(path)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadKeyFile(%s) = %T, %v; want error wrapping %v", tc.name, got, err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %q", err, path)
			}
		})
	}
}

// TestPrivateKeyEveryBitFlipDetected flips each bit of a PKCS#8 key in
// turn: every single-bit corruption must be refused, not silently yield a
// different key.
func TestPrivateKeyEveryBitFlipDetected(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der := pkcs8Of(t, key)
	for i := range der {
		for bit := range 8 {
			d := bytes.Clone(der)
			d[i] ^= 1 << bit
			if got, err := parsePrivateKeyPEM(pemOf("PRIVATE KEY", d), "test"); err == nil {
				t.Errorf("flipping bit %d of DER byte %d/%d went undetected (same key: %v)", bit, i, len(der), key.Equal(got))
			}
		}
	}
}

func TestCertFileRoundTripAndStrictness(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	leaf := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now).Leaf
	dir := t.TempDir()
	path := filepath.Join(dir, "chain.pem")
	if err := WriteCertFile(path, leaf, ca.Cert); err != nil {
		t.Fatalf("WriteCertFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("certificate file mode %#o, want 0644", fi.Mode().Perm())
	}
	certs, err := ReadCertFile(path)
	if err != nil {
		t.Fatalf("ReadCertFile(own output): %v", err)
	}
	if len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(ca.Cert) {
		t.Fatalf("ReadCertFile returned %d certificates, want leaf then CA", len(certs))
	}
	assertDirHolds(t, dir, "chain.pem")
	if err := WriteCertFile(filepath.Join(dir, "none.pem")); err == nil {
		t.Error("WriteCertFile with no certificates succeeded")
	}

	leafPEM := pemOf("CERTIFICATE", leaf.Raw)
	caPEM := pemOf("CERTIFICATE", ca.Cert.Raw)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(leafPEM, []byte("\n"), []byte("\n!!!\n"), 2)
	good := []struct {
		name string
		data []byte
	}{
		{"surrounding whitespace", append(append([]byte("\n\n  "), leafPEM...), "\n\t\n"...)},
		{"CRLF line endings", bytes.ReplaceAll(append(bytes.Clone(leafPEM), caPEM...), []byte("\n"), []byte("\r\n"))},
	}
	for _, tc := range good {
		p := writeRaw(t, dir, "good.pem", tc.data, 0o644)
		if _, err := ReadCertFile(p); err != nil {
			t.Errorf("ReadCertFile(%s) refused: %v", tc.name, err)
		}
	}
	bad := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"whitespace only", []byte("\n \n")},
		{"trailing garbage", append(bytes.Clone(leafPEM), "garbage"...)},
		{"garbage between blocks", append(append(bytes.Clone(leafPEM), "x\n"...), caPEM...)},
		{"leading garbage", append([]byte("Subject: hub\n"), leafPEM...)},
		{"private key block", append(bytes.Clone(leafPEM), pemOf("PRIVATE KEY", pkcs8Of(t, key))...)},
		{"header", []byte(strings.Replace(string(leafPEM), "-----\n", "-----\nX-Note: hi\n\n", 1))},
		{"malformed block followed by a valid one", append(broken, caPEM...)},
		{"truncated DER", pemOf("CERTIFICATE", leaf.Raw[:len(leaf.Raw)-10])},
		{"trailing DER bytes", pemOf("CERTIFICATE", append(bytes.Clone(leaf.Raw), 0))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRaw(t, t.TempDir(), "bad.pem", tc.data, 0o644)
			certs, err := ReadCertFile(p)
			if !errors.Is(err, ErrMalformedPEM) {
				t.Fatalf("ReadCertFile(%s) = %d certificates, %v; want ErrMalformedPEM", tc.name, len(certs), err)
			}
		})
	}
}

func TestLoadKeyPair(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	pair := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now)
	dir := t.TempDir()
	certPath := filepath.Join(dir, "hub.pem")
	keyPath := filepath.Join(dir, "hub.key")
	if err := WriteCertFile(certPath, pair.Leaf, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(keyPath, pair.PrivateKey.(*ecdsa.PrivateKey)); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	if got.Leaf == nil || !got.Leaf.Equal(pair.Leaf) || len(got.Certificate) != 2 {
		t.Fatalf("LoadKeyPair: leaf/chain not as written (leaf set %v, %d certificates)", got.Leaf != nil, len(got.Certificate))
	}
	if _, err := ServerConfig(got, CertPool(ca.Cert), EnvTest); err != nil {
		t.Errorf("ServerConfig refused a loaded key pair: %v", err)
	}

	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(dir, "other.key")
	if err := WriteKeyFile(otherPath, other); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certPath, otherPath); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("LoadKeyPair(cert, unrelated key) = %v, want ErrKeyMismatch", err)
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certPath, keyPath); !errors.Is(err, ErrKeyFilePermissions) {
		t.Errorf("LoadKeyPair with a 0644 key file = %v, want ErrKeyFilePermissions", err)
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "missing.pem"), keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyPair(missing cert) = %v, want fs.ErrNotExist", err)
	}
}

func TestCertPool(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "taxlink test CA", now)
	other := mustCA(t, "other CA", now)
	leaf := mustLeaf(t, ca, Identity{Env: EnvTest, ID: "hub:kiko"}, true, false, now).Leaf
	opts := func(p *x509.CertPool) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: p, CurrentTime: now.Add(time.Minute)}
	}
	if _, err := leaf.Verify(opts(CertPool(ca.Cert, nil))); err != nil {
		t.Errorf("leaf does not verify against CertPool(its CA): %v", err)
	}
	if _, err := leaf.Verify(opts(CertPool(other.Cert))); err == nil {
		t.Error("leaf verifies against a pool of an unrelated CA")
	}
}
