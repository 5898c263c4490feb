package keystore_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
)

func TestEncryptedRoundTrip(t *testing.T) {
	ec := newECDSAKey(t)
	pq := newSealingKey(t, envelope.KEMMLKEM768P256)
	dh := newSealingKey(t, envelope.KEMDHKEMP256)
	for _, tc := range []struct {
		name    string
		key     any
		keyType string
		kem     string
	}{
		{"ECDSA P-256", ec, "ecdsa-p256", ""},
		{"HPKE MLKEM768-P256", pq, "hpke", "0x0050"},
		{"HPKE DHKEM P-256", dh, "hpke", "0x0010"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := serialize(t, tc.key)
			path := writeEnc(t, tc.key)
			if after := serialize(t, tc.key); !bytes.Equal(before, after) {
				t.Fatal("WriteEncrypted changed the caller's key (cleared memory it does not own)")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("written file has mode %#o, want 0600", fi.Mode().Perm())
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries after WriteEncrypted, want only the key (temporary file left behind?)", len(entries))
			}
			data, _ := os.ReadFile(path)
			block, rest := pem.Decode(data)
			if block == nil || block.Type != "TAXLINK ENCRYPTED KEY" || len(rest) != 0 {
				t.Fatalf("file is not exactly one TAXLINK ENCRYPTED KEY PEM block:\n%s", data)
			}
			wantHeaders := map[string]string{
				"Version": "1", "Key-Type": tc.keyType, "KDF": "argon2id",
				"KDF-Params": "t=1,m=64,p=1", "Cipher": "aes-256-gcm",
			}
			if tc.kem != "" {
				wantHeaders["Key-KEM"] = tc.kem
			}
			for k, v := range wantHeaders {
				if block.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, block.Headers[k], v)
				}
			}

			got, err := keystore.ReadEncrypted(path, []byte(testPassphrase))
			if err != nil {
				t.Fatalf("ReadEncrypted: %v", err)
			}
			switch want := tc.key.(type) {
			case *ecdsa.PrivateKey:
				k, ok := got.(*ecdsa.PrivateKey)
				if !ok || !k.Equal(want) {
					t.Fatalf("ReadEncrypted returned %T, not the ECDSA key written", got)
				}
			case hpke.PrivateKey:
				k, ok := got.(hpke.PrivateKey)
				if !ok {
					t.Fatalf("ReadEncrypted returned %T, want hpke.PrivateKey", got)
				}
				checkSameSealingKey(t, want, k)
			}

			// Writing again replaces the file with a new salt and nonce.
			if err := keystore.WriteEncrypted(path, tc.key, []byte(testPassphrase), testParams); err != nil {
				t.Fatalf("second WriteEncrypted: %v", err)
			}
			again, _ := os.ReadFile(path)
			if bytes.Equal(again, data) {
				t.Error("rewriting the key produced an identical file: salt or nonce not random")
			}
		})
	}
}

// checkSameSealingKey checks that got opens what is sealed to want.
func checkSameSealingKey(t *testing.T, want, got hpke.PrivateKey) {
	t.Helper()
	if got.KEM().ID() != want.KEM().ID() {
		t.Fatalf("sealing key KEM 0x%04x, want 0x%04x", got.KEM().ID(), want.KEM().ID())
	}
	if !bytes.Equal(got.PublicKey().Bytes(), want.PublicKey().Bytes()) {
		t.Fatal("sealing key read back has another public key")
	}
	if !bytes.Equal(serialize(t, got), serialize(t, want)) {
		t.Fatal("sealing key read back serializes differently (was its seed cleared after parsing?)")
	}
	kdf, aead := hpke.HKDFSHA256(), hpke.AES256GCM()
	ct, err := hpke.Seal(want.PublicKey(), kdf, aead, []byte("info"), []byte("notification"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := hpke.Open(got, kdf, aead, []byte("info"), ct)
	if err != nil || string(pt) != "notification" {
		t.Fatalf("key read back cannot open a message sealed to the original: %v", err)
	}
}

func TestEncryptedDefaultParams(t *testing.T) {
	if testing.Short() {
		t.Skip("DefaultParams derive 64 MiB twice")
	}
	k := newECDSAKey(t)
	path := filepath.Join(t.TempDir(), "key.enc")
	if err := keystore.WriteEncrypted(path, k, []byte(testPassphrase), keystore.DefaultParams()); err != nil {
		t.Fatalf("WriteEncrypted with DefaultParams: %v", err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte("KDF-Params: t=3,m=65536,p=1\n")) {
		t.Errorf("file does not record the default parameters t=3,m=65536,p=1:\n%s", data)
	}
	got, err := keystore.ReadEncrypted(path, []byte(testPassphrase))
	if err != nil {
		t.Fatalf("ReadEncrypted: %v", err)
	}
	if !k.Equal(got) {
		t.Fatal("key read back differs")
	}
}

func TestEncryptedWrongPassphrase(t *testing.T) {
	path := writeEnc(t, newECDSAKey(t))
	for _, pass := range []string{"correct horse battery stapleX", "Correct horse battery staple", "x", testPassphrase[:len(testPassphrase)-1]} {
		_, err := keystore.ReadEncrypted(path, []byte(pass))
		if !errors.Is(err, keystore.ErrWrongPassphrase) {
			t.Errorf("ReadEncrypted with passphrase of %d bytes: error %v, want ErrWrongPassphrase", len(pass), err)
		}
	}
	if _, err := keystore.ReadEncrypted(path, nil); !errors.Is(err, keystore.ErrNoPassphrase) {
		t.Errorf("ReadEncrypted with empty passphrase: error %v, want ErrNoPassphrase", err)
	}
}

func TestEncryptedPermissions(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o660, false}, {0o644, false}, {0o610, false}, {0o601, false}, {0o602, false}, {0o620, false},
	} {
		path := writeEnc(t, newECDSAKey(t))
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := keystore.ReadEncrypted(path, []byte(testPassphrase))
		switch {
		case tc.ok && err != nil:
			t.Errorf("mode %#o: ReadEncrypted: %v, want success", tc.mode, err)
		case !tc.ok && !errors.Is(err, keystore.ErrKeyFilePermissions):
			t.Errorf("mode %#o: error %v, want ErrKeyFilePermissions", tc.mode, err)
		case !tc.ok && (!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("%#o", tc.mode))):
			t.Errorf("mode %#o: error %q does not name the path and the mode", tc.mode, err)
		}
	}

	dir := t.TempDir()
	if _, err := keystore.ReadEncrypted(dir, []byte(testPassphrase)); !errors.Is(err, keystore.ErrKeyFilePermissions) {
		t.Errorf("ReadEncrypted(directory): error %v, want ErrKeyFilePermissions (not a regular file)", err)
	}
	missing := filepath.Join(dir, "missing.enc")
	_, err := keystore.ReadEncrypted(missing, []byte(testPassphrase))
	if !errors.Is(err, keystore.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadEncrypted(missing file): error %v, want ErrNotFound and fs.ErrNotExist", err)
	}
}

// TestEncryptedEveryByteTampered flips each byte of an encrypted file in
// turn; every variant must fail to load, with one of the documented errors.
func TestEncryptedEveryByteTampered(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  any
	}{
		{"ECDSA", newECDSAKey(t)},
		{"HPKE", newSealingKey(t, envelope.KEMMLKEM768P256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := serialize(t, tc.key)
			path := writeEnc(t, tc.key)
			if after := serialize(t, tc.key); !bytes.Equal(before, after) {
				t.Fatal("WriteEncrypted changed the caller's key (cleared memory it does not own)")
			}
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range orig {
				for _, mask := range []byte{0x01, 0x20} {
					data := bytes.Clone(orig)
					data[i] ^= mask
					writeFile(t, path, data, 0o600)
					key, err := keystore.ReadEncrypted(path, []byte(testPassphrase))
					if err == nil {
						t.Fatalf("byte %d (%q) xor %#x: tampered file loaded (%T)", i, orig[i], mask, key)
					}
					if !errors.Is(err, keystore.ErrMalformed) && !errors.Is(err, keystore.ErrTampered) &&
						!errors.Is(err, keystore.ErrWrongPassphrase) && !errors.Is(err, keystore.ErrUnsupported) {
						t.Fatalf("byte %d xor %#x: error %v matches none of ErrMalformed, ErrTampered, ErrWrongPassphrase, ErrUnsupported", i, mask, err)
					}
				}
			}
			for _, tc := range []struct {
				name string
				data []byte
			}{
				{"truncated by one byte", orig[:len(orig)-1]},
				{"truncated to half", orig[:len(orig)/2]},
				{"empty", nil},
				{"trailing garbage", append(bytes.Clone(orig), "x"...)},
				{"trailing newline", append(bytes.Clone(orig), '\n')},
				{"leading text", append([]byte("key:\n"), orig...)},
				{"two blocks", append(bytes.Clone(orig), orig...)},
				{"CRLF line endings", bytes.ReplaceAll(orig, []byte("\n"), []byte("\r\n"))},
			} {
				writeFile(t, path, tc.data, 0o600)
				if _, err := keystore.ReadEncrypted(path, []byte(testPassphrase)); !errors.Is(err, keystore.ErrMalformed) {
					t.Errorf("%s: error %v, want ErrMalformed", tc.name, err)
				}
			}
		})
	}
}

// TestEncryptedRegionTampered alters each region of a file while keeping it
// well-formed, and checks which error each region yields.
func TestEncryptedRegionTampered(t *testing.T) {
	flipB64 := func(i int) func(string) string {
		return func(v string) string {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				panic(err)
			}
			b[i%len(b)] ^= 0x01
			return base64.StdEncoding.EncodeToString(b)
		}
	}
	set := func(v string) func(string) string { return func(string) string { return v } }
	for _, tc := range []struct {
		name   string
		header string // empty: the body
		edit   func(string) string
		body   func([]byte)
		want   error
	}{
		{name: "salt", header: "KDF-Salt", edit: flipB64(0), want: keystore.ErrWrongPassphrase},
		{name: "salt last byte", header: "KDF-Salt", edit: flipB64(15), want: keystore.ErrWrongPassphrase},
		{name: "check value", header: "KDF-Check", edit: flipB64(7), want: keystore.ErrWrongPassphrase},
		{name: "params time", header: "KDF-Params", edit: set("t=2,m=64,p=1"), want: keystore.ErrWrongPassphrase},
		{name: "params memory", header: "KDF-Params", edit: set("t=1,m=72,p=1"), want: keystore.ErrWrongPassphrase},
		{name: "params threads", header: "KDF-Params", edit: set("t=1,m=64,p=2"), want: keystore.ErrWrongPassphrase},
		{name: "nonce", header: "Nonce", edit: flipB64(0), want: keystore.ErrTampered},
		{name: "nonce last byte", header: "Nonce", edit: flipB64(11), want: keystore.ErrTampered},
		{name: "key type hpke without Key-KEM", header: "Key-Type", edit: set("hpke"), want: keystore.ErrMalformed},
		{name: "ciphertext first byte", body: func(b []byte) { b[0] ^= 1 }, want: keystore.ErrTampered},
		{name: "ciphertext middle byte", body: func(b []byte) { b[len(b)/2] ^= 0x80 }, want: keystore.ErrTampered},
		{name: "tag first byte", body: func(b []byte) { b[len(b)-16] ^= 1 }, want: keystore.ErrTampered},
		{name: "tag last byte", body: func(b []byte) { b[len(b)-1] ^= 1 }, want: keystore.ErrTampered},
		{name: "version", header: "Version", edit: set("2"), want: keystore.ErrUnsupported},
		{name: "kdf", header: "KDF", edit: set("scrypt"), want: keystore.ErrUnsupported},
		{name: "cipher", header: "Cipher", edit: set("chacha20-poly1305"), want: keystore.ErrUnsupported},
		{name: "params garbage", header: "KDF-Params", edit: set("t=1, m=64, p=1"), want: keystore.ErrMalformed},
		{name: "params leading zero", header: "KDF-Params", edit: set("t=01,m=64,p=1"), want: keystore.ErrMalformed},
		{name: "params memory 2 GiB", header: "KDF-Params", edit: set("t=1,m=2097152,p=1"), want: keystore.ErrMalformed},
		{name: "params time 0", header: "KDF-Params", edit: set("t=0,m=64,p=1"), want: keystore.ErrMalformed},
		{name: "salt short", header: "KDF-Salt", edit: set(base64.StdEncoding.EncodeToString(make([]byte, 15))), want: keystore.ErrMalformed},
		{name: "extra header", header: "Comment", edit: set("hello"), want: keystore.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeEnc(t, newECDSAKey(t))
			data, _ := os.ReadFile(path)
			block, _ := pem.Decode(data)
			if tc.header != "" {
				block.Headers[tc.header] = tc.edit(block.Headers[tc.header])
			}
			if tc.body != nil {
				tc.body(block.Bytes)
			}
			writeFile(t, path, pem.EncodeToMemory(block), 0o600)
			_, err := keystore.ReadEncrypted(path, []byte(testPassphrase))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}

	// Changing the KEM of an HPKE key file is caught by the AAD.
	path := writeEnc(t, newSealingKey(t, envelope.KEMDHKEMP256))
	data, _ := os.ReadFile(path)
	block, _ := pem.Decode(data)
	block.Headers["Key-KEM"] = "0x0050"
	writeFile(t, path, pem.EncodeToMemory(block), 0o600)
	if _, err := keystore.ReadEncrypted(path, []byte(testPassphrase)); !errors.Is(err, keystore.ErrTampered) {
		t.Errorf("Key-KEM changed from 0x0010 to 0x0050: error %v, want ErrTampered", err)
	}
	// So is turning an HPKE key file into an "ECDSA" one.
	delete(block.Headers, "Key-KEM")
	block.Headers["Key-Type"] = "ecdsa-p256"
	writeFile(t, path, pem.EncodeToMemory(block), 0o600)
	if _, err := keystore.ReadEncrypted(path, []byte(testPassphrase)); !errors.Is(err, keystore.ErrTampered) {
		t.Errorf("Key-Type changed from hpke to ecdsa-p256: error %v, want ErrTampered", err)
	}
}

func TestWriteEncryptedRefuses(t *testing.T) {
	dir := t.TempDir()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ec := newECDSAKey(t)
	for _, tc := range []struct {
		name   string
		key    any
		pass   string
		params keystore.Params
		want   error
	}{
		{"P-384 key", p384, testPassphrase, testParams, keystore.ErrUnsupported},
		{"Ed25519 key", ed, testPassphrase, testParams, keystore.ErrUnsupported},
		{"X25519 HPKE key", x25519, testPassphrase, testParams, keystore.ErrUnsupported},
		{"nil key", nil, testPassphrase, testParams, keystore.ErrUnsupported},
		{"nil ECDSA key", (*ecdsa.PrivateKey)(nil), testPassphrase, testParams, keystore.ErrUnsupported},
		{"signer only", opaqueSigner{ec}, testPassphrase, testParams, keystore.ErrUnsupported},
		{"empty passphrase", ec, "", testParams, keystore.ErrNoPassphrase},
		{"zero params", ec, testPassphrase, keystore.Params{}, keystore.ErrInvalidConfig},
		{"time 0", ec, testPassphrase, keystore.Params{Time: 0, MemoryKiB: 64, Threads: 1}, keystore.ErrInvalidConfig},
		{"time 65", ec, testPassphrase, keystore.Params{Time: 65, MemoryKiB: 64, Threads: 1}, keystore.ErrInvalidConfig},
		{"threads 0", ec, testPassphrase, keystore.Params{Time: 1, MemoryKiB: 64, Threads: 0}, keystore.ErrInvalidConfig},
		{"threads 17", ec, testPassphrase, keystore.Params{Time: 1, MemoryKiB: 1024, Threads: 17}, keystore.ErrInvalidConfig},
		{"memory below 8·p", ec, testPassphrase, keystore.Params{Time: 1, MemoryKiB: 15, Threads: 2}, keystore.ErrInvalidConfig},
		{"memory above 1 GiB", ec, testPassphrase, keystore.Params{Time: 1, MemoryKiB: 1<<20 + 1, Threads: 1}, keystore.ErrInvalidConfig},
	} {
		path := filepath.Join(dir, "key.enc")
		err := keystore.WriteEncrypted(path, tc.key, []byte(tc.pass), tc.params)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: WriteEncrypted error %v, want %v", tc.name, err, tc.want)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			t.Errorf("%s: a file was written despite the error", tc.name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused writes left %d files behind", len(entries))
	}
	if err := keystore.WriteEncrypted(filepath.Join(dir, "no-such-dir", "key.enc"), ec, []byte(testPassphrase), testParams); err == nil {
		t.Error("WriteEncrypted into a missing directory succeeded")
	}
}

// opaqueSigner hides the concrete key type, like a token signer.
type opaqueSigner struct{ *ecdsa.PrivateKey }

// serialize returns a copy of the private encoding of an ECDSA or HPKE key.
func serialize(t *testing.T, key any) []byte {
	t.Helper()
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	case hpke.PrivateKey:
		b, err := envelope.MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(b)
	}
	t.Fatalf("serialize: %T", key)
	return nil
}
