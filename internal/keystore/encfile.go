package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"

	"taxlink/internal/envelope"
	"taxlink/internal/fsutil"
)

// Format constants of encrypted key files (see the package documentation).
const (
	pemTypeEncrypted = "TAXLINK ENCRYPTED KEY"

	hdrVersion  = "Version"
	hdrKeyType  = "Key-Type"
	hdrKeyKEM   = "Key-KEM"
	hdrKDF      = "KDF"
	hdrParams   = "KDF-Params"
	hdrSalt     = "KDF-Salt"
	hdrCheck    = "KDF-Check"
	hdrCipher   = "Cipher"
	hdrNonce    = "Nonce"
	formatV1    = "1"
	kdfArgon2id = "argon2id"
	cipherGCM   = "aes-256-gcm"

	keyTypeECDSA = "ecdsa-p256"
	keyTypeHPKE  = "hpke"

	saltLen   = 16
	checkLen  = 16
	nonceLen  = 12 // the standard GCM nonce size
	aesKeyLen = 32

	// aadLabel starts the additional authenticated data, binding it to
	// this format and version.
	aadLabel = "taxlink encrypted key v1\n"
)

// fileHeader is the parsed, validated header of an encrypted key file.
type fileHeader struct {
	keyType string // keyTypeECDSA or keyTypeHPKE
	kem     uint16 // HPKE KEM identifier; 0 for keyTypeECDSA
	params  Params
	salt    [saltLen]byte
	check   [checkLen]byte
	nonce   [nonceLen]byte
}

// fields returns the header fields in AAD order. Key-KEM is present only
// for HPKE keys.
func (h *fileHeader) fields() [][2]string {
	b64 := base64.StdEncoding.EncodeToString
	f := [][2]string{{hdrVersion, formatV1}, {hdrKeyType, h.keyType}}
	if h.keyType == keyTypeHPKE {
		f = append(f, [2]string{hdrKeyKEM, fmt.Sprintf("0x%04x", h.kem)})
	}
	return append(f,
		[2]string{hdrKDF, kdfArgon2id},
		[2]string{hdrParams, h.params.String()},
		[2]string{hdrSalt, b64(h.salt[:])},
		[2]string{hdrCheck, b64(h.check[:])},
		[2]string{hdrCipher, cipherGCM},
		[2]string{hdrNonce, b64(h.nonce[:])},
	)
}

// aad returns the AES-GCM additional data: aadLabel followed by one
// "Name: value\n" line per header field in the fixed order of fields. It is
// computed from the parsed values, which are canonical, so it does not
// depend on how encoding/pem lays the headers out.
func (h *fileHeader) aad() []byte {
	var b bytes.Buffer
	b.WriteString(aadLabel)
	for _, f := range h.fields() {
		b.WriteString(f[0])
		b.WriteString(": ")
		b.WriteString(f[1])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// encode returns the complete file: one PEM block with the header fields
// and ciphertext (which includes the GCM tag) as body.
func (h *fileHeader) encode(ciphertext []byte) []byte {
	headers := make(map[string]string)
	for _, f := range h.fields() {
		headers[f[0]] = f[1]
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeEncrypted, Headers: headers, Bytes: ciphertext})
}

// deriveKeys runs Argon2id and splits its 48-byte output into the AES-256
// key and the 16-byte passphrase check value. The caller clears both.
func deriveKeys(passphrase []byte, h *fileHeader) (aesKey, check []byte) {
	out := argon2.IDKey(passphrase, h.salt[:], h.params.Time, h.params.MemoryKiB, h.params.Threads, aesKeyLen+checkLen)
	return out[:aesKeyLen], out[aesKeyLen:]
}

// newGCM returns AES-256-GCM for key.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// WriteEncrypted encrypts key under passphrase and writes it to path with
// mode 0600, atomically (temporary file in the same directory, fsync,
// rename, fsync of the directory); an existing file is replaced.
//
// key must be an *ecdsa.PrivateKey on P-256 (written as PKCS#8 DER) or an
// hpke.PrivateKey of a KEM that package envelope supports (0x0050
// MLKEM768-P256 or 0x0010 DHKEM P-256, written as envelope.MarshalPrivateKey
// serializes it). Anything else, including non-exportable keys such as
// PKCS#11 signers, yields ErrUnsupported. p must be within the limits
// documented at Params (ErrInvalidConfig); use DefaultParams outside tests.
// An empty passphrase yields ErrNoPassphrase. The passphrase is not
// retained or modified; the caller may clear it afterwards.
func WriteEncrypted(path string, key any, passphrase []byte, p Params) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: write encrypted key %s: %w", ErrInvalidConfig, path, err)
	}
	if len(passphrase) == 0 {
		return fmt.Errorf("%w: write encrypted key %s: empty passphrase", ErrNoPassphrase, path)
	}
	h := fileHeader{params: p}
	plaintext, err := marshalKey(key, &h)
	if err != nil {
		return fmt.Errorf("keystore: write encrypted key %s: %w", path, err)
	}
	defer clear(plaintext)
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(h.salt[:])
	_, _ = rand.Read(h.nonce[:])
	aesKey, check := deriveKeys(passphrase, &h)
	defer clear(aesKey)
	copy(h.check[:], check)
	gcm, err := newGCM(aesKey)
	if err != nil {
		return fmt.Errorf("keystore: write encrypted key %s: %w", path, err)
	}
	ciphertext := gcm.Seal(nil, h.nonce[:], plaintext, h.aad())
	if err := fsutil.WriteFileAtomic(path, h.encode(ciphertext), KeyFileMode); err != nil {
		return fmt.Errorf("keystore: write encrypted key: %w", err)
	}
	return nil
}

// marshalKey returns the plaintext for key and sets h.keyType and h.kem.
// The result is secret; the caller clears it.
func marshalKey(key any, h *fileHeader) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil, fmt.Errorf("%w: nil *ecdsa.PrivateKey", ErrUnsupported)
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA key on curve %s, only P-256 is allowed", ErrUnsupported, curveName(k.Curve))
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("%w: ECDSA key does not marshal as PKCS#8", ErrUnsupported)
		}
		h.keyType = keyTypeECDSA
		return der, nil
	case hpke.PrivateKey:
		b, err := envelope.MarshalPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("%w: HPKE sealing key cannot be serialized: %w", ErrUnsupported, err)
		}
		h.keyType = keyTypeHPKE
		h.kem = k.KEM().ID()
		// crypto/hpke's hybrid keys return their internal seed from Bytes
		// (Go 1.26), so clearing b without a copy would destroy the
		// caller's key.
		return bytes.Clone(b), nil
	}
	return nil, fmt.Errorf("%w: key type %T (want *ecdsa.PrivateKey on P-256 or an exportable hpke.PrivateKey)", ErrUnsupported, key)
}

// curveName names c for error messages.
func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "<nil>"
	}
	return c.Params().Name
}

// ReadEncrypted reads a file written by WriteEncrypted and returns its key:
// an *ecdsa.PrivateKey (P-256) or an hpke.PrivateKey, as recorded in the
// file's Key-Type header.
//
// The file must be a regular file without group/other access, checked on
// the opened file (ErrKeyFilePermissions, naming path and mode); a missing
// file yields ErrNotFound (and fs.ErrNotExist). The file must be exactly
// what WriteEncrypted writes, byte for byte (ErrMalformed otherwise), with
// a known version, KDF and cipher (ErrUnsupported). A passphrase whose
// derived check value differs from the file's yields ErrWrongPassphrase
// (the comparison is constant-time); so does a file whose salt, KDF
// parameters or check value were altered. If the check value matches but
// AES-GCM authentication of header, nonce and ciphertext fails, the error
// is ErrTampered. An empty passphrase yields ErrNoPassphrase. The
// passphrase is not retained or modified.
func ReadEncrypted(path string, passphrase []byte) (any, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: read encrypted key %s: empty passphrase", ErrNoPassphrase, path)
	}
	data, err := readPrivateFile(path, "encrypted key file")
	if err != nil {
		return nil, fmt.Errorf("keystore: read encrypted key: %w", err)
	}
	h, ciphertext, err := decodeEncrypted(data)
	if err != nil {
		return nil, fmt.Errorf("keystore: read encrypted key %s: %w", path, err)
	}
	aesKey, check := deriveKeys(passphrase, &h)
	defer clear(aesKey)
	if subtle.ConstantTimeCompare(check, h.check[:]) != 1 {
		return nil, fmt.Errorf("%w: %s (or its KDF salt, parameters or check value were altered)", ErrWrongPassphrase, path)
	}
	gcm, err := newGCM(aesKey)
	if err != nil {
		return nil, fmt.Errorf("keystore: read encrypted key %s: %w", path, err)
	}
	plaintext, err := gcm.Open(nil, h.nonce[:], ciphertext, h.aad())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the passphrase is right but header, nonce or ciphertext do not authenticate", ErrTampered, path)
	}
	defer clear(plaintext)
	key, err := unmarshalKey(plaintext, &h)
	if err != nil {
		return nil, fmt.Errorf("keystore: read encrypted key %s: %w", path, err)
	}
	return key, nil
}

// unmarshalKey parses authenticated plaintext according to h. A failure
// means the writer was faulty (the data is authenticated), hence
// ErrMalformed. Error messages never contain plaintext bytes.
func unmarshalKey(plaintext []byte, h *fileHeader) (any, error) {
	switch h.keyType {
	case keyTypeECDSA:
		parsed, err := x509.ParsePKCS8PrivateKey(plaintext)
		if err != nil {
			return nil, fmt.Errorf("%w: decrypted PKCS#8 key (%d bytes) does not parse", ErrMalformed, len(plaintext))
		}
		k, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: decrypted PKCS#8 key is a %T, not ECDSA P-256 as Key-Type says", ErrMalformed, parsed)
		}
		// ParsePKCS8PrivateKey ignores the embedded public key and trailing
		// data; insist on the canonical encoding WriteEncrypted produced.
		canonical, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil || subtle.ConstantTimeCompare(canonical, plaintext) != 1 {
			clear(canonical)
			return nil, fmt.Errorf("%w: decrypted PKCS#8 key is not in canonical encoding", ErrMalformed)
		}
		clear(canonical)
		return k, nil
	case keyTypeHPKE:
		k, err := envelope.ParsePrivateKey(h.kem, plaintext)
		if err != nil {
			return nil, fmt.Errorf("%w: decrypted HPKE key: %w", ErrMalformed, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: key type %q", ErrUnsupported, h.keyType)
}

// decodeEncrypted parses data strictly: exactly one TAXLINK ENCRYPTED KEY
// PEM block with exactly the expected headers, each valid, and nothing else;
// the whole file must re-encode to the same bytes. It returns the header and
// the ciphertext (with tag).
func decodeEncrypted(data []byte) (fileHeader, []byte, error) {
	var h fileHeader
	block, _ := pem.Decode(data)
	if block == nil {
		return h, nil, fmt.Errorf("%w: no PEM block", ErrMalformed)
	}
	if block.Type != pemTypeEncrypted {
		return h, nil, fmt.Errorf("%w: PEM block type %s, want %q", ErrMalformed, quote(block.Type), pemTypeEncrypted)
	}
	hd := block.Headers
	if v := hd[hdrVersion]; v != formatV1 {
		return h, nil, fmt.Errorf("%w: format version %s (this build reads version %s)", ErrUnsupported, quote(v), formatV1)
	}
	if v := hd[hdrKDF]; v != kdfArgon2id {
		return h, nil, fmt.Errorf("%w: KDF %s (supported: %s)", ErrUnsupported, quote(v), kdfArgon2id)
	}
	if v := hd[hdrCipher]; v != cipherGCM {
		return h, nil, fmt.Errorf("%w: cipher %s (supported: %s)", ErrUnsupported, quote(v), cipherGCM)
	}
	switch v := hd[hdrKeyType]; v {
	case keyTypeECDSA:
		if _, ok := hd[hdrKeyKEM]; ok {
			return h, nil, fmt.Errorf("%w: header %s present for key type %s", ErrMalformed, hdrKeyKEM, keyTypeECDSA)
		}
		h.keyType = v
	case keyTypeHPKE:
		kem, err := parseKEM(hd[hdrKeyKEM])
		if err != nil {
			return h, nil, err
		}
		h.keyType, h.kem = v, kem
	default:
		return h, nil, fmt.Errorf("%w: key type %s (supported: %s, %s)", ErrUnsupported, quote(v), keyTypeECDSA, keyTypeHPKE)
	}
	p, err := parseParams(hd[hdrParams])
	if err != nil {
		return h, nil, fmt.Errorf("%w: header %s: %w", ErrMalformed, hdrParams, err)
	}
	if err := p.validate(); err != nil {
		return h, nil, fmt.Errorf("%w: header %s: %w", ErrMalformed, hdrParams, err)
	}
	h.params = p
	for _, f := range []struct {
		name string
		dst  []byte
	}{{hdrSalt, h.salt[:]}, {hdrCheck, h.check[:]}, {hdrNonce, h.nonce[:]}} {
		b, err := base64.StdEncoding.Strict().DecodeString(hd[f.name])
		if err != nil || len(b) != len(f.dst) {
			return h, nil, fmt.Errorf("%w: header %s is not %d bytes of standard base64", ErrMalformed, f.name, len(f.dst))
		}
		copy(f.dst, b)
	}
	if want := len(h.fields()); len(hd) != want {
		return h, nil, fmt.Errorf("%w: %d headers, want exactly %d (%s)", ErrMalformed, len(hd), want, headerNames(h.fields()))
	}
	if len(block.Bytes) <= 16 {
		return h, nil, fmt.Errorf("%w: ciphertext of %d bytes is shorter than a GCM tag plus one byte", ErrMalformed, len(block.Bytes))
	}
	if !bytes.Equal(h.encode(block.Bytes), data) {
		return h, nil, fmt.Errorf("%w: not in canonical form (data around the PEM block, whitespace, line wrapping, header names or order differ from what WriteEncrypted writes)", ErrMalformed)
	}
	return h, block.Bytes, nil
}

// parseKEM parses a Key-KEM header value, "0x" and four lower-case hex
// digits, naming a KEM that package envelope supports.
func parseKEM(v string) (uint16, error) {
	if len(v) != 6 || v[:2] != "0x" {
		return 0, fmt.Errorf("%w: header %s %s is not of the form 0x0050", ErrMalformed, hdrKeyKEM, quote(v))
	}
	n, err := strconv.ParseUint(v[2:], 16, 16)
	if err != nil || fmt.Sprintf("0x%04x", n) != v {
		return 0, fmt.Errorf("%w: header %s %s is not of the form 0x0050", ErrMalformed, hdrKeyKEM, quote(v))
	}
	kem := uint16(n)
	if kem != envelope.KEMMLKEM768P256 && kem != envelope.KEMDHKEMP256 {
		return 0, fmt.Errorf("%w: KEM %s (supported: 0x%04x MLKEM768-P256, 0x%04x DHKEM-P256)", ErrUnsupported, v, envelope.KEMMLKEM768P256, envelope.KEMDHKEMP256)
	}
	return kem, nil
}

// headerNames lists the names of fields for error messages.
func headerNames(fields [][2]string) string {
	var b bytes.Buffer
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f[0])
	}
	return b.String()
}

// quote renders an untrusted, non-secret value for an error message,
// bounded so that a huge or binary value cannot flood logs.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
