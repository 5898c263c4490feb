package keystore

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scheme is the kind of storage a Ref points to.
type Scheme string

// The schemes of key references.
const (
	// SchemeFile is an unencrypted PKCS#8 PEM file (for sealing keys: the
	// raw envelope serialization), as written by pki.WriteKeyFile. For
	// development only: the key is on disk in the clear.
	SchemeFile Scheme = "file"
	// SchemeEnc is a passphrase-encrypted key file written by
	// WriteEncrypted.
	SchemeEnc Scheme = "enc"
	// SchemePKCS11 is a key pair on a PKCS#11 token.
	SchemePKCS11 Scheme = "pkcs11"
)

// maxTokenLabelLen is the size of CK_TOKEN_INFO.label.
const maxTokenLabelLen = 32

// maxObjectLabelLen bounds object labels (CKA_LABEL has no fixed size).
const maxObjectLabelLen = 128

// Ref is a parsed key reference. The zero value is invalid. Build one with
// ParseRef (or UnmarshalText), which guarantees that it is valid.
type Ref struct {
	// Scheme selects the storage.
	Scheme Scheme
	// Path is the key file for SchemeFile and SchemeEnc, as written in
	// the reference (relative paths are relative to the process's working
	// directory; resolve them before if that is not what you want).
	Path string
	// Token is the PKCS#11 token label (SchemePKCS11 only).
	Token string
	// Object is the label (CKA_LABEL) of the key pair on the token
	// (SchemePKCS11 only).
	Object string
}

// ParseRef parses a key reference as found in configuration files. The
// grammar is strict; anything else yields ErrInvalidRef:
//
//	file:PATH                      unencrypted PKCS#8 key file (dev only)
//	enc:PATH                       encrypted key file (WriteEncrypted)
//	pkcs11:token=LABEL;object=LABEL
//
// Scheme names are lower case. PATH is non-empty, has no control
// characters, no leading or trailing space, and does not start with "//"
// (write file:/etc/key, not the URL form file:///etc/key). The pkcs11 form
// follows RFC 7512 path attributes: exactly the attributes token and
// object, once each, in either order, values percent-encoded where a
// character is outside RFC 7512's pk11-pchar set, non-empty, valid UTF-8
// without control characters, a token label of at most 32 bytes and an
// object label of at most 128 bytes. Query attributes (after "?", such as
// pin-value or module-path) are refused: the module path and PIN come from
// the TokenConfig and PIN source given to LoadSigner, never from the
// reference, and the error message does not repeat them.
func ParseRef(s string) (Ref, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("%w: %s has no scheme (want file:, enc: or pkcs11:)", ErrInvalidRef, quoteRef(s))
	}
	switch Scheme(scheme) {
	case SchemeFile, SchemeEnc:
		r := Ref{Scheme: Scheme(scheme), Path: rest}
		if err := checkPath(rest); err != nil {
			return Ref{}, fmt.Errorf("%w: %s: %s", ErrInvalidRef, quoteRef(s), err)
		}
		return r, nil
	case SchemePKCS11:
		return parsePKCS11(rest)
	}
	return Ref{}, fmt.Errorf("%w: %s: unknown scheme %s (want file, enc or pkcs11, lower case)", ErrInvalidRef, quoteRef(s), quote(scheme))
}

// checkPath returns why p is not an acceptable PATH, or nil.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.HasPrefix(p, "//"):
		return fmt.Errorf("path starts with // (URL form is not accepted; write file:/abs/path or enc:/abs/path)")
	case strings.TrimSpace(p) != p:
		return fmt.Errorf("path has leading or trailing white space")
	case !utf8.ValidString(p):
		return fmt.Errorf("path is not valid UTF-8")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("path contains a control character")
	}
	return nil
}

// parsePKCS11 parses the part after "pkcs11:".
func parsePKCS11(rest string) (Ref, error) {
	if path, _, hasQuery := strings.Cut(rest, "?"); hasQuery {
		return Ref{}, fmt.Errorf("%w: %s: query attributes (after ?) are not accepted: the module path and PIN come from the token configuration and PIN source, never from the reference", ErrInvalidRef, quoteRef("pkcs11:"+path+"?…"))
	}
	s := "pkcs11:" + rest
	if rest == "" {
		return Ref{}, fmt.Errorf("%w: %s: no attributes (want pkcs11:token=LABEL;object=LABEL)", ErrInvalidRef, quoteRef(s))
	}
	r := Ref{Scheme: SchemePKCS11}
	for _, attr := range strings.Split(rest, ";") {
		name, raw, ok := strings.Cut(attr, "=")
		if !ok {
			return Ref{}, fmt.Errorf("%w: %s: attribute %s has no =", ErrInvalidRef, quoteRef(s), quote(attr))
		}
		var dst *string
		switch name {
		case "token":
			dst = &r.Token
		case "object":
			dst = &r.Object
		default:
			return Ref{}, fmt.Errorf("%w: %s: attribute %s is not supported (only token and object)", ErrInvalidRef, quoteRef(s), quote(name))
		}
		if *dst != "" {
			return Ref{}, fmt.Errorf("%w: %s: attribute %s given twice", ErrInvalidRef, quoteRef(s), name)
		}
		v, err := pctDecode(raw)
		if err != nil {
			return Ref{}, fmt.Errorf("%w: %s: attribute %s: %s", ErrInvalidRef, quoteRef(s), name, err)
		}
		if err := checkLabel(name, v); err != nil {
			return Ref{}, fmt.Errorf("%w: %s: %s", ErrInvalidRef, quoteRef(s), err)
		}
		*dst = v
	}
	if r.Token == "" || r.Object == "" {
		return Ref{}, fmt.Errorf("%w: %s: want both token= and object=", ErrInvalidRef, quoteRef(s))
	}
	return r, nil
}

// checkLabel returns why v is not an acceptable token or object label
// (what is "token" or "object"), or nil.
func checkLabel(what, v string) error {
	limit := maxObjectLabelLen
	if what == "token" {
		limit = maxTokenLabelLen
	}
	switch {
	case v == "":
		return fmt.Errorf("%s label is empty", what)
	case len(v) > limit:
		return fmt.Errorf("%s label is %d bytes, longer than %d", what, len(v), limit)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s label is not valid UTF-8", what)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%s label contains a control character", what)
	}
	return nil
}

// isPchar reports whether c may appear unencoded in an RFC 7512 path
// attribute value (pk11-pchar without pct-encoded): unreserved characters
// and ":" "[" "]" "@" "!" "$" "'" "(" ")" "*" "+" "," "=" "&".
func isPchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:[]@!$'()*+,=&", c) >= 0
}

// pctDecode decodes an RFC 7512 attribute value strictly: every byte is a
// pk11-pchar or part of a %XX escape with two hex digits.
func pctDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("bad percent escape at byte %d", i)
			}
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case isPchar(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q at byte %d must be percent-encoded", c, i)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// pctEncode encodes s for an RFC 7512 attribute value, escaping every byte
// that is not unreserved (so that ";", "=", "?" and "%" never appear raw).
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// String returns the canonical reference string, which ParseRef maps back
// to r. The pkcs11 form is "pkcs11:token=…;object=…" with every byte
// outside the unreserved set percent-encoded. An invalid Ref renders as
// "invalid:" followed by a description.
func (r Ref) String() string {
	switch r.Scheme {
	case SchemeFile, SchemeEnc:
		return string(r.Scheme) + ":" + r.Path
	case SchemePKCS11:
		return "pkcs11:token=" + pctEncode(r.Token) + ";object=" + pctEncode(r.Object)
	}
	return fmt.Sprintf("invalid:scheme=%s", quote(string(r.Scheme)))
}

// validate checks a Ref that may have been built by hand.
func (r Ref) validate() error {
	switch r.Scheme {
	case SchemeFile, SchemeEnc:
		if r.Token != "" || r.Object != "" {
			return fmt.Errorf("%w: %s reference with token or object set", ErrInvalidRef, r.Scheme)
		}
		if err := checkPath(r.Path); err != nil {
			return fmt.Errorf("%w: %s reference: %s", ErrInvalidRef, r.Scheme, err)
		}
		return nil
	case SchemePKCS11:
		if r.Path != "" {
			return fmt.Errorf("%w: pkcs11 reference with a path set", ErrInvalidRef)
		}
		if err := checkLabel("token", r.Token); err != nil {
			return fmt.Errorf("%w: pkcs11 reference: %s", ErrInvalidRef, err)
		}
		if err := checkLabel("object", r.Object); err != nil {
			return fmt.Errorf("%w: pkcs11 reference: %s", ErrInvalidRef, err)
		}
		return nil
	}
	return fmt.Errorf("%w: scheme %s (want file, enc or pkcs11)", ErrInvalidRef, quote(string(r.Scheme)))
}

// MarshalText implements encoding.TextMarshaler with String, so that a Ref
// can be a field of a JSON configuration. An invalid Ref is an error.
func (r Ref) MarshalText() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseRef.
func (r *Ref) UnmarshalText(b []byte) error {
	parsed, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// quoteRef renders a (possibly invalid) reference for an error message,
// bounded, with anything after "?" dropped (a PIN might be there).
func quoteRef(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	const max = 120
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
