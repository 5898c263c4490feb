package standard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

func goodAttestation() Attestation {
	return Attestation{Item: "第4-1-(1)", AttestedBy: "tanaka", Statement: "入室資格者名簿(2026年度)を確認", Date: t0, Expires: t0.AddDate(1, 0, 0)}
}

func TestAttestationValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(a *Attestation)
		ok   bool
	}{
		{"good", func(a *Attestation) {}, true},
		{"unknown item", func(a *Attestation) { a.Item = "第4-1-(9)" }, false},
		{"short form is not stored", func(a *Attestation) { a.Item = "4-1-1" }, false},
		{"automated item", func(a *Attestation) { a.Item = "第4-5-(1)" }, false},
		{"bad operator", func(a *Attestation) { a.AttestedBy = "Tanaka San" }, false},
		{"empty statement", func(a *Attestation) { a.Statement = "  " }, false},
		{"newline in statement", func(a *Attestation) { a.Statement = "a\nb" }, false},
		{"bidi override", func(a *Attestation) { a.Statement = "a\u202eb" }, false},
		{"long statement", func(a *Attestation) { a.Statement = strings.Repeat("あ", 400) }, false},
		{"no date", func(a *Attestation) { a.Date = time.Time{} }, false},
		{"expires before date", func(a *Attestation) { a.Expires = a.Date.Add(-time.Hour) }, false},
		{"too long", func(a *Attestation) { a.Expires = a.Date.AddDate(4, 0, 0) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := goodAttestation()
			tc.edit(&a)
			err := a.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidAttestation) {
				t.Errorf("error %v does not wrap ErrInvalidAttestation", err)
			}
		})
	}
}

func TestFileAttestations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", AttestationsFile)
	st, err := OpenFileAttestations(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Current("第4-1-(1)", t0); ok {
		t.Fatal("attested in an empty store")
	}
	a := goodAttestation()
	a.Expires = t0.AddDate(0, 0, 30)
	if err := st.Add(a); err != nil {
		t.Fatal(err)
	}
	bad := goodAttestation()
	bad.Item = "第4-4-(6)"
	if err := st.Add(bad); err == nil {
		t.Fatal("an automated item was attested")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v", fi.Mode().Perm())
	}
	// Expiry: in force from Date to just before Expires.
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{t0.Add(-time.Second), false},
		{t0, true},
		{t0.AddDate(0, 0, 30).Add(-time.Second), true},
		{t0.AddDate(0, 0, 30), false},
	} {
		if _, ok := st.Current("第4-1-(1)", tc.at); ok != tc.want {
			t.Errorf("Current at %s = %v, want %v", tc.at, ok, tc.want)
		}
	}
	// A later attestation of the same item wins; the earlier one stays.
	b := goodAttestation()
	b.AttestedBy, b.Date, b.Expires = "sato", t0.AddDate(0, 0, 10), t0.AddDate(1, 0, 0)
	if err := st.Add(b); err != nil {
		t.Fatal(err)
	}
	if got, ok := st.Current("4-1-1", t0.AddDate(0, 0, 20)); !ok || got.AttestedBy != "sato" {
		t.Errorf("Current = %+v, %v; want sato's", got, ok)
	}
	// Reopened: the same history; a torn final line is ignored.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"item":"第4-1-(2)","attested_by":"x`)
	f.Close()
	st2, err := OpenFileAttestations(path)
	if err != nil {
		t.Fatal(err)
	}
	if l := st2.List(); len(l) != 2 || l[0].AttestedBy != "tanaka" || l[1].AttestedBy != "sato" {
		t.Errorf("reopened: %+v", l)
	}
	// A damaged complete line is an error naming it.
	if err := os.WriteFile(path, []byte("{\"item\":\"第6\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileAttestations(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("damaged store: %v", err)
	}
}
