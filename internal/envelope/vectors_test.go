package envelope

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json and the committed fuzz seeds")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the JSON layout of testdata/vectors.json, documented in
// docs/format.md. All byte strings are lowercase hex.
type vectorFile struct {
	Comment string `json:"comment"`
	// SigningPrivateKey is the raw 32-byte P-256 scalar of the sender's test
	// key (public so that anyone can reproduce the vectors; never use it).
	SigningPrivateKey string   `json:"signing_private_key_hex"`
	SigningPublicKey  string   `json:"signing_public_key_hex"` // uncompressed SEC 1 point
	Vectors           []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// SealingKeyIKM is the input to the KEM's DeriveKeyPair; the serialized
	// private and public keys it yields are given too.
	SealingKeyIKM        string       `json:"sealing_key_ikm_hex"`
	SealingPrivateKey    string       `json:"sealing_private_key_hex"`
	SealingPublicKey     string       `json:"sealing_public_key_hex"`
	Header               vectorHeader `json:"header"`
	HeaderBytes          string       `json:"header_hex"`
	HPKEInfo             string       `json:"hpke_info_hex"`
	Chunks               []chunkInfo  `json:"chunks"`
	SignatureInputDigest string       `json:"signature_input_sha256_hex"`
	Signature            string       `json:"signature_hex"`
	Plaintext            string       `json:"plaintext_hex"`
	Ciphertext           string       `json:"ciphertext_hex"`
	Envelope             string       `json:"envelope_hex"`
}

type vectorHeader struct {
	ID               string `json:"id"`
	Type             string `json:"type"`
	Sender           string `json:"sender"`
	Recipient        string `json:"recipient"`
	CreatedMs        int64  `json:"created_unix_ms"`
	CreatedRFC3339   string `json:"created_rfc3339"`
	ContentType      string `json:"content_type"`
	KeyID            string `json:"key_id"`
	KEM              uint16 `json:"kem"`
	KDF              uint16 `json:"kdf"`
	AEAD             uint16 `json:"aead"`
	Enc              string `json:"enc_hex"`
	ChunkSize        uint32 `json:"chunk_size"`
	PayloadSize      uint64 `json:"payload_size"`
	CiphertextSize   uint64 `json:"ciphertext_size"`
	CiphertextDigest string `json:"ciphertext_digest_hex"`
}

type chunkInfo struct {
	Index            uint64 `json:"index"`
	AAD              string `json:"aad_hex"`
	PlaintextOffset  uint64 `json:"plaintext_offset"`
	PlaintextLength  uint64 `json:"plaintext_length"`
	CiphertextOffset uint64 `json:"ciphertext_offset"`
	CiphertextLength uint64 `json:"ciphertext_length"`
}

// vectorSpecs are the cases in testdata/vectors.json.
var vectorSpecs = []struct {
	name      string
	kem       uint16
	chunkSize uint32
	size      int
	id, typ   string
	sender    string
	recipient string
	ctype     string
	keyID     string
}{
	{"mlkem768p256-three-chunks", KEMMLKEM768P256, 1024, 2500, "01JH8Z5V6Q3K4M7N8P9R0S1T2V", "resident-tax-notice",
		"nta:e-tax", "lg:130001", "application/xml", "lg-130001.2026-01"},
	{"dhkem-p256-two-full-chunks", KEMDHKEMP256, 1024, 2048, "01JH8Z5V6Q3K4M7N8P9R0S1T2W", "payment-report",
		"corp:7000012050002", "lg:011002", "application/pdf", "lg-011002.k1"},
	{"dhkem-p256-empty", KEMDHKEMP256, 65536, 0, "01JH8Z5V6Q3K4M7N8P9R0S1T2X", "withdrawal",
		"nta:e-tax", "lg:472018", "application/xml", "k"},
}

// vectorPlaintext is synthetic XML; it contains no real personal data.
func vectorPlaintext(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<notice>\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "  <line n=\"%04d\">synthetic test data 試験データ</line>\n", i)
	}
	return b.Bytes()[:n]
}

func vectorSigningKey(t testing.TB) *ecdsa.PrivateKey { return testSigningKey(t, "vectors") }

func TestVectors(t *testing.T) {
	if *update {
		generateVectors(t)
	}
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run go test -run TestVectors -update to create it)", err)
	}
	var vf vectorFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vf); err != nil {
		t.Fatalf("decode %s: %v", vectorsPath, err)
	}
	if len(vf.Vectors) != len(vectorSpecs) {
		t.Errorf("%s has %d vectors, want %d", vectorsPath, len(vf.Vectors), len(vectorSpecs))
	}
	sk, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), unhex(t, vf.SigningPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sigPubBytes, err := sk.PublicKey.Bytes()
	if err != nil || hex.EncodeToString(sigPubBytes) != vf.SigningPublicKey {
		t.Fatalf("signing_public_key_hex does not match signing_private_key_hex (%v)", err)
	}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) { checkVector(t, v, &sk.PublicKey) })
	}
}

// checkVector verifies one vector as a second implementation would: it
// re-derives the key, re-encodes the header, recomputes info, AADs and
// digests, verifies the signature and opens the ciphertext.
func checkVector(t *testing.T, v vector, sigPub *ecdsa.PublicKey) {
	vh := v.Header
	k, _, err := kemFor(vh.KEM)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := k.DeriveKeyPair(unhex(t, v.SealingKeyIKM))
	if err != nil {
		t.Fatal(err)
	}
	privBytes, _ := MarshalPrivateKey(priv)
	if hex.EncodeToString(privBytes) != v.SealingPrivateKey {
		t.Error("DeriveKeyPair(ikm) does not give sealing_private_key_hex")
	}
	if hex.EncodeToString(priv.PublicKey().Bytes()) != v.SealingPublicKey {
		t.Error("DeriveKeyPair(ikm) does not give sealing_public_key_hex")
	}
	if _, err := ParsePrivateKey(vh.KEM, unhex(t, v.SealingPrivateKey)); err != nil {
		t.Errorf("ParsePrivateKey(sealing_private_key_hex): %v", err)
	}
	if _, err := ParsePublicKey(vh.KEM, unhex(t, v.SealingPublicKey)); err != nil {
		t.Errorf("ParsePublicKey(sealing_public_key_hex): %v", err)
	}

	h := &Header{
		ID: vh.ID, Type: vh.Type, Sender: vh.Sender, Recipient: vh.Recipient,
		Created: time.UnixMilli(vh.CreatedMs).UTC(), ContentType: vh.ContentType, KeyID: vh.KeyID,
		KEM: vh.KEM, KDF: vh.KDF, AEAD: vh.AEAD, Enc: unhex(t, vh.Enc),
		ChunkSize: vh.ChunkSize, PayloadSize: vh.PayloadSize, CiphertextSize: vh.CiphertextSize,
	}
	copy(h.CiphertextDigest[:], unhex(t, vh.CiphertextDigest))
	if got := h.Created.Format("2006-01-02T15:04:05.000Z"); got != vh.CreatedRFC3339 {
		t.Errorf("created_rfc3339 %s, created_unix_ms says %s", vh.CreatedRFC3339, got)
	}
	hb, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("header fields do not marshal: %v", err)
	}
	if hex.EncodeToString(hb) != v.HeaderBytes {
		t.Errorf("header fields encode to\n%x\nwant header_hex\n%s", hb, v.HeaderBytes)
	}
	parsed, err := ParseHeader(unhex(t, v.HeaderBytes))
	if err != nil || !headersEqual(parsed, h) {
		t.Errorf("ParseHeader(header_hex) = %+v, %v; want the header fields", parsed, err)
	}
	if hex.EncodeToString(SealInfo(h)) != v.HPKEInfo {
		t.Errorf("SealInfo = %x, want hpke_info_hex %s", SealInfo(h), v.HPKEInfo)
	}
	d := SignatureDigest(hb)
	if hex.EncodeToString(d[:]) != v.SignatureInputDigest {
		t.Error("SignatureDigest differs from signature_input_sha256_hex")
	}
	if err := Verify(sigPub, hb, unhex(t, v.Signature)); err != nil {
		t.Errorf("signature_hex: %v", err)
	}

	pt, ct := unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
	if sha256.Sum256(ct) != h.CiphertextDigest || uint64(len(ct)) != h.CiphertextSize || uint64(len(pt)) != h.PayloadSize {
		t.Error("ciphertext_hex / plaintext_hex do not match the header's sizes and digest")
	}
	if want := int(chunkCount(h.PayloadSize, h.ChunkSize)); len(v.Chunks) != want {
		t.Errorf("%d chunks listed, want %d", len(v.Chunks), want)
	}
	var ptOff, ctOff uint64
	for i, c := range v.Chunks {
		final := i == len(v.Chunks)-1
		if c.Index != uint64(i) || c.AAD != hex.EncodeToString(chunkAAD(uint64(i), final)) ||
			c.PlaintextOffset != ptOff || c.CiphertextOffset != ctOff || c.CiphertextLength != c.PlaintextLength+TagSize {
			t.Errorf("chunk %d: %+v inconsistent with the format", i, c)
		}
		ptOff += c.PlaintextLength
		ctOff += c.CiphertextLength
	}
	if ptOff != h.PayloadSize || ctOff != h.CiphertextSize {
		t.Errorf("chunks cover %d/%d bytes, want %d/%d", ptOff, ctOff, h.PayloadSize, h.CiphertextSize)
	}
	got, err := openAll(priv, h, bytes.NewReader(ct))
	if err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Open(ciphertext_hex) = %d bytes, %v; want plaintext_hex", len(got), err)
	}

	env := unhex(t, v.Envelope)
	r := bytes.NewReader(env)
	_, ehb, esig, err := ReadPreamble(r)
	if err != nil || !bytes.Equal(ehb, hb) || hex.EncodeToString(esig) != v.Signature {
		t.Errorf("envelope_hex preamble: %v", err)
	}
	if rest, _ := io.ReadAll(r); !bytes.Equal(rest, ct) {
		t.Error("envelope_hex does not end with ciphertext_hex")
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vectors: %v", err)
	}
	return b
}

// generateVectors rewrites testdata/vectors.json and the fuzz seed corpora.
// Deterministic randomness makes regeneration reproducible with this Go
// version; the check does not rely on it, since HPKE encapsulation and
// ECDSA signing are randomized by design.
func generateVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 20260515)
	sk := vectorSigningKey(t)
	skBytes, err := sk.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pkBytes, err := sk.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	vf := vectorFile{
		Comment: "taxlink envelope test vectors; format in docs/format.md. Keys are public test keys: never use them. " +
			"Sealing and signing are randomized, so a second implementation checks these by opening and verifying, " +
			"and by re-encoding the header fields to header_hex.",
		SigningPrivateKey: hex.EncodeToString(skBytes),
		SigningPublicKey:  hex.EncodeToString(pkBytes),
	}
	var headerSeeds, wireSeeds [][]byte
	for _, spec := range vectorSpecs {
		ikm := sha256.Sum256([]byte("taxlink test vector sealing key/" + spec.name))
		k, _, _ := kemFor(spec.kem)
		priv, err := k.DeriveKeyPair(ikm[:])
		if err != nil {
			t.Fatal(err)
		}
		privBytes, _ := MarshalPrivateKey(priv)
		h := &Header{
			ID: spec.id, Type: spec.typ, Sender: spec.sender, Recipient: spec.recipient,
			Created:     time.Date(2026, 5, 15, 0, 30, 0, 250_000_000, time.UTC),
			ContentType: spec.ctype, KeyID: spec.keyID, ChunkSize: spec.chunkSize,
		}
		pt := vectorPlaintext(spec.size)
		var ct bytes.Buffer
		if err := Seal(priv.PublicKey(), h, bytes.NewReader(pt), &ct); err != nil {
			t.Fatal(err)
		}
		hb, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := Sign(sk, hb)
		if err != nil {
			t.Fatal(err)
		}
		var env bytes.Buffer
		if err := WritePreamble(&env, hb, sig); err != nil {
			t.Fatal(err)
		}
		preamble := bytes.Clone(env.Bytes())
		env.Write(ct.Bytes())
		var chunks []chunkInfo
		n := chunkCount(h.PayloadSize, h.ChunkSize)
		for i := range n {
			off := i * uint64(h.ChunkSize)
			l := min(uint64(h.ChunkSize), h.PayloadSize-off)
			chunks = append(chunks, chunkInfo{
				Index: i, AAD: hex.EncodeToString(chunkAAD(i, i == n-1)),
				PlaintextOffset: off, PlaintextLength: l,
				CiphertextOffset: i * uint64(h.ChunkSize+TagSize), CiphertextLength: l + TagSize,
			})
		}
		d := SignatureDigest(hb)
		vf.Vectors = append(vf.Vectors, vector{
			Name:              spec.name,
			SealingKeyIKM:     hex.EncodeToString(ikm[:]),
			SealingPrivateKey: hex.EncodeToString(privBytes),
			SealingPublicKey:  hex.EncodeToString(priv.PublicKey().Bytes()),
			Header: vectorHeader{
				ID: h.ID, Type: h.Type, Sender: h.Sender, Recipient: h.Recipient,
				CreatedMs: h.Created.UnixMilli(), CreatedRFC3339: h.Created.Format("2006-01-02T15:04:05.000Z"),
				ContentType: h.ContentType, KeyID: h.KeyID, KEM: h.KEM, KDF: h.KDF, AEAD: h.AEAD,
				Enc: hex.EncodeToString(h.Enc), ChunkSize: h.ChunkSize, PayloadSize: h.PayloadSize,
				CiphertextSize: h.CiphertextSize, CiphertextDigest: hex.EncodeToString(h.CiphertextDigest[:]),
			},
			HeaderBytes:          hex.EncodeToString(hb),
			HPKEInfo:             hex.EncodeToString(SealInfo(h)),
			Chunks:               chunks,
			SignatureInputDigest: hex.EncodeToString(d[:]),
			Signature:            hex.EncodeToString(sig),
			Plaintext:            hex.EncodeToString(pt),
			Ciphertext:           hex.EncodeToString(ct.Bytes()),
			Envelope:             hex.EncodeToString(env.Bytes()),
		})
		headerSeeds = append(headerSeeds, hb)
		wireSeeds = append(wireSeeds, env.Bytes()[:min(env.Len(), len(preamble)+32)])
	}
	out, err := json.MarshalIndent(vf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFuzzSeeds(t, headerSeeds, wireSeeds)
}

// writeFuzzSeeds writes the committed seed corpora: the valid encodings
// plus hand-picked near misses, so that the fuzzers start at the edges.
func writeFuzzSeeds(t *testing.T, headers, wires [][]byte) {
	h := headers[0]
	mut := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	hdr := map[string][]byte{
		"valid-mlkem768p256": headers[0],
		"valid-dhkem-p256":   headers[1],
		"valid-empty":        headers[2],
		"empty":              {},
		"magic-only":         []byte("TLH1"),
		"truncated-half":     h[:len(h)/2],
		"trailing-byte":      append(bytes.Clone(h), 0),
		"bad-magic":          mut(h, func(b []byte) { b[3] = '0' }),
		"id-length-255":      mut(h, func(b []byte) { b[4] = 255 }),
		"max-size-zeros":     make([]byte, MaxHeaderSize),
	}
	w := wires[1]
	wire := map[string][]byte{
		"valid-mlkem768p256-prefix": wires[0],
		"valid-dhkem-p256-prefix":   wires[1],
		"valid-empty-envelope":      wires[2],
		"empty":                     {},
		"magic-only":                []byte("TLE1"),
		"header-length-ffff":        mut(w, func(b []byte) { b[4], b[5] = 0xff, 0xff }),
		"header-length-zero":        mut(w, func(b []byte) { b[4], b[5] = 0, 0 }),
		"sig-length-zero":           mut(w, func(b []byte) { b[6+len(headers[1])], b[7+len(headers[1])] = 0, 0 }),
		"truncated-in-signature":    w[:6+len(headers[1])+2+10],
	}
	for dir, seeds := range map[string]map[string][]byte{"FuzzParseHeader": hdr, "FuzzReadPreamble": wire} {
		path := filepath.Join("testdata", "fuzz", dir)
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(path, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestVectorKeysAreDeterministic guards the premise of the vectors: the
// same IKM gives the same sealing key, for both KEMs.
func TestVectorKeysAreDeterministic(t *testing.T) {
	for _, k := range kems {
		a, b := testSealingKey(t, k.id, "det"), testSealingKey(t, k.id, "det")
		if !bytes.Equal(a.PublicKey().Bytes(), b.PublicKey().Bytes()) {
			t.Errorf("%s: DeriveKeyPair is not deterministic", k.name)
		}
	}
}
