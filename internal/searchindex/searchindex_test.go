package searchindex

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func testKey(tenant string) Key {
	return DeriveKey([]byte("node secret material for tests, 32b"), tenant)
}

func TestDeriveKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	k := DeriveKey(secret, "lg:011002")
	if len(k) != KeySize {
		t.Fatalf("key is %d bytes", len(k))
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte("taxlink searchindex v1"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := hkdf.Expand(sha256.New, prk, "lg:011002", KeySize)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, want) {
		t.Error("DeriveKey is not HKDF-SHA256 with the documented salt and info")
	}
	if !bytes.Equal(k, DeriveKey(secret, "lg:011002")) {
		t.Error("DeriveKey is not deterministic")
	}
	if bytes.Equal(k, DeriveKey(secret, "lg:011011")) {
		t.Error("two tenants got the same key")
	}
	if bytes.Equal(k, DeriveKey(append([]byte("x"), secret...), "lg:011002")) {
		t.Error("two secrets gave the same key")
	}
	if DeriveKey(secret[:MinSecretSize-1], "lg:011002") != nil || DeriveKey(secret, "") != nil {
		t.Error("a short secret or an empty tenant gave a key")
	}
}

func TestBlind(t *testing.T) {
	k := testKey("lg:011002")
	m := hmac.New(sha256.New, k)
	m.Write([]byte(myNumber))
	want := m.Sum(nil)
	for _, tt := range []struct {
		name, id string
		ok       bool
	}{
		{"ascii", "123456789018", true},
		{"full-width", "１２３４５６７８９０１８", true},
		{"hyphens", "1234-5678-9018", true},
		{"full-width hyphens", "1234－5678－9018", true},
		{"prolonged sound mark", "1234ー5678ー9018", true},
		{"spaces", " 1234 5678 9018 ", true},
		{"ideographic spaces", "1234　5678　9018", true},
		{"mixed", "１２３４-5678 ９０１８", true},
		{"empty", "", false},
		{"only separators", " - - ", false},
		{"11 digits", "12345678901", false},
		{"14 digits", "12345678901234", false},
		{"letter", "12345678901A", false},
		{"arabic-indic digits", "١٢٣٤٥٦٧٨٩٠١٨", false},
		{"dot", "1234.5678.9018", false},
		{"invalid UTF-8", "123456789018\xff", false},
		{"long", strings.Repeat(" ", 300) + "123456789018", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Blind(k, tt.id)
			if !tt.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				if tt.id != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.id)) {
					t.Errorf("error %q contains the identifier", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("blind index differs from HMAC-SHA256 over the normalised digits")
			}
		})
	}

	corp, err := Blind(k, corpNum)
	if err != nil || len(corp) != sha256.Size || bytes.Equal(corp, want) {
		t.Errorf("13-digit identifier: %x, %v", corp, err)
	}
	other, _ := Blind(testKey("lg:011011"), myNumber)
	if bytes.Equal(other, want) {
		t.Error("two tenants' keys give the same blind index")
	}
	for _, bad := range []Key{nil, make(Key, 16), make(Key, 33)} {
		if _, err := Blind(bad, myNumber); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d-byte key: err = %v, want ErrInvalid", len(bad), err)
		}
	}
}
