package erasure

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"taxlink/internal/pki"
)

func TestSignVerify(t *testing.T) {
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	c := Certificate{Version: 1, Node: "corp:8700150012345", Tenant: "lg:013323", Time: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC),
		RequestedBy: "admin", ApprovedBy: "sec", Approval: "01J", Records: 12, CiphertextBytes: 34567, Store: "sqlite", KeysDestroyed: []string{"lg-013323-1"}}
	doc, err := Sign(c, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(doc, &key.PublicKey)
	if err != nil || got.Tenant != c.Tenant || got.Records != 12 {
		t.Fatalf("Verify: %+v, %v", got, err)
	}
	other, _ := pki.NewKey()
	if _, err := Verify(doc, &other.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key: %v, want ErrBadSignature", err)
	}
	tampered := bytes.Replace(doc, []byte(`12`), []byte(`13`), 1)
	if _, err := Verify(tampered, &key.PublicKey); err == nil {
		t.Error("a tampered certificate verified")
	}
	for _, bad := range []string{"", "{}", `{"certificate":1}`, `{"certificate":{},"signature":"","x":1}`} {
		if _, err := Verify([]byte(bad), &key.PublicKey); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
}

func TestDestroyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.key")
	secret := bytes.Repeat([]byte("SECRET-KEY-MATERIAL"), 10)
	if err := os.WriteFile(p, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := DestroyFile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file still there: %v", err)
	}
	if err := DestroyFile(p); err == nil {
		t.Error("destroying a missing file succeeded")
	}
}
