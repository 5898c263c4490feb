package keystore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"taxlink/internal/keystore"
)

func TestParseRefGood(t *testing.T) {
	for _, tc := range []struct {
		in        string
		want      keystore.Ref
		canonical string // String(); empty means in
	}{
		{"file:/etc/taxlink/tls.key", keystore.Ref{Scheme: keystore.SchemeFile, Path: "/etc/taxlink/tls.key"}, ""},
		{"file:tls.key", keystore.Ref{Scheme: keystore.SchemeFile, Path: "tls.key"}, ""},
		{"enc:/var/lib/taxlink/keys/sealing-lg-011002.enc", keystore.Ref{Scheme: keystore.SchemeEnc, Path: "/var/lib/taxlink/keys/sealing-lg-011002.enc"}, ""},
		{"enc:./dir with space/key;v=1?x", keystore.Ref{Scheme: keystore.SchemeEnc, Path: "./dir with space/key;v=1?x"}, ""},
		{"enc:/鍵/署名.enc", keystore.Ref{Scheme: keystore.SchemeEnc, Path: "/鍵/署名.enc"}, ""},
		{"pkcs11:token=taxlink-hsm;object=tls-2026", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "taxlink-hsm", Object: "tls-2026"}, ""},
		{"pkcs11:object=tls-2026;token=taxlink-hsm", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "taxlink-hsm", Object: "tls-2026"},
			"pkcs11:token=taxlink-hsm;object=tls-2026"},
		{"pkcs11:token=My%20Token;object=sign%3Bkey%3D1", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "My Token", Object: "sign;key=1"}, ""},
		{"pkcs11:token=a%2fb;object=x:y@z", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "a/b", Object: "x:y@z"},
			"pkcs11:token=a%2Fb;object=x%3Ay%40z"},
		{"pkcs11:token=%E9%8D%B5;object=%E7%BD%B2%E5%90%8D", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "鍵", Object: "署名"}, ""},
		{"pkcs11:token=" + strings.Repeat("t", 32) + ";object=o", keystore.Ref{Scheme: keystore.SchemePKCS11, Token: strings.Repeat("t", 32), Object: "o"}, ""},
	} {
		got, err := keystore.ParseRef(tc.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		canonical := tc.canonical
		if canonical == "" {
			canonical = tc.in
		}
		if got.String() != canonical {
			t.Errorf("ParseRef(%q).String() = %q, want %q", tc.in, got.String(), canonical)
		}
		if again, err := keystore.ParseRef(got.String()); err != nil || again != got {
			t.Errorf("ParseRef(String()) of %q = %+v, %v; want the same Ref", tc.in, again, err)
		}
	}
}

func TestParseRefBad(t *testing.T) {
	for _, tc := range []struct {
		in, why string
	}{
		{"", "empty"},
		{"/etc/taxlink/tls.key", "no scheme"},
		{"tls.key", "no scheme"},
		{"FILE:/k", "upper-case scheme"},
		{"File:/k", "mixed-case scheme"},
		{"pem:/k", "unknown scheme"},
		{"https://example.com/key", "unknown scheme"},
		{"file:", "empty path"},
		{"enc:", "empty path"},
		{"file:///etc/key", "URL form"},
		{"enc://host/key", "URL form"},
		{"file: /etc/key", "leading space"},
		{"file:/etc/key ", "trailing space"},
		{"file:/etc/key\n", "trailing newline"},
		{"enc:/etc/\x00key", "NUL"},
		{"enc:/etc/\x7fkey", "DEL"},
		{"enc:/etc/\xffkey", "invalid UTF-8"},
		{"pkcs11:", "no attributes"},
		{"pkcs11:token=t", "missing object"},
		{"pkcs11:object=o", "missing token"},
		{"pkcs11:token=t;object=o;", "empty attribute"},
		{"pkcs11:;token=t;object=o", "empty attribute"},
		{"pkcs11:token=t;object=o;id=%01", "unsupported attribute id"},
		{"pkcs11:token=t;object=o;type=private", "unsupported attribute type"},
		{"pkcs11:token=t;token=u;object=o", "duplicate token"},
		{"pkcs11:token=t;object=o;object=p", "duplicate object"},
		{"pkcs11:Token=t;object=o", "attribute names are lower case"},
		{"pkcs11:token=;object=o", "empty token"},
		{"pkcs11:token=t;object=", "empty object"},
		{"pkcs11:token;object=o", "no ="},
		{"pkcs11:token=a b;object=o", "raw space"},
		{"pkcs11:token=a/b;object=o", "raw slash"},
		{"pkcs11:token=a%2;object=o", "short escape"},
		{"pkcs11:token=a%zz;object=o", "bad hex"},
		{"pkcs11:token=a%00;object=o", "NUL in label"},
		{"pkcs11:token=a%0A;object=o", "newline in label"},
		{"pkcs11:token=%FF;object=o", "invalid UTF-8"},
		{"pkcs11:token=" + strings.Repeat("t", 33) + ";object=o", "token label over 32 bytes"},
		{"pkcs11:token=t;object=" + strings.Repeat("o", 129), "object label over 128 bytes"},
		{"pkcs11:token=t;object=o?pin-value=123456", "PIN in query"},
		{"pkcs11:token=t;object=o?module-path=/usr/lib/x.so", "module in query"},
		{"pkcs11://token=t;object=o", "URL form"},
		{"PKCS11:token=t;object=o", "upper-case scheme"},
	} {
		r, err := keystore.ParseRef(tc.in)
		if !errors.Is(err, keystore.ErrInvalidRef) {
			t.Errorf("ParseRef(%q) (%s) = %+v, %v; want ErrInvalidRef", tc.in, tc.why, r, err)
			continue
		}
		if r != (keystore.Ref{}) {
			t.Errorf("ParseRef(%q) returned a non-zero Ref %+v with its error", tc.in, r)
		}
	}
}

func TestParseRefErrorHidesQuery(t *testing.T) {
	_, err := keystore.ParseRef("pkcs11:token=t;object=o?pin-value=S3cretPIN")
	if err == nil || strings.Contains(err.Error(), "S3cretPIN") {
		t.Fatalf("error %v repeats the query, which may hold a PIN", err)
	}
	_, err = keystore.ParseRef("FILE:/k?pin-value=S3cretPIN")
	if err == nil || strings.Contains(err.Error(), "S3cretPIN") {
		t.Fatalf("error %v repeats the query, which may hold a PIN", err)
	}
}

func TestRefText(t *testing.T) {
	type cfg struct {
		Key keystore.Ref `json:"key"`
	}
	var c cfg
	if err := json.Unmarshal([]byte(`{"key":"pkcs11:token=hsm;object=tls%20key"}`), &c); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if want := (keystore.Ref{Scheme: keystore.SchemePKCS11, Token: "hsm", Object: "tls key"}); c.Key != want {
		t.Fatalf("unmarshalled %+v, want %+v", c.Key, want)
	}
	out, err := json.Marshal(c)
	if err != nil || string(out) != `{"key":"pkcs11:token=hsm;object=tls%20key"}` {
		t.Fatalf("marshal = %s, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"key":"file://x"}`), &c); !errors.Is(err, keystore.ErrInvalidRef) {
		t.Errorf("unmarshal of a bad reference: %v, want ErrInvalidRef", err)
	}
	if _, err := json.Marshal(cfg{}); !errors.Is(err, keystore.ErrInvalidRef) {
		t.Errorf("marshal of the zero Ref: %v, want ErrInvalidRef", err)
	}
}
