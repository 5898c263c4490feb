package envelope

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSealOpenRoundTrip(t *testing.T) {
	const chunk = MinChunkSize
	sizes := []struct {
		name  string
		n     int
		chunk uint32
	}{
		{"empty", 0, chunk},
		{"one byte", 1, chunk},
		{"exactly one chunk", chunk, chunk},
		{"one chunk plus one", chunk + 1, chunk},
		{"two full chunks", 2 * chunk, chunk},
		{"3MB default chunk", 3 << 20, 0},
	}
	for _, k := range kems {
		priv := testSealingKey(t, k.id, "roundtrip")
		for _, sz := range sizes {
			t.Run(k.name+"/"+sz.name, func(t *testing.T) {
				pt := testPayload(sz.n)
				h, ct := sealed(t, priv, sz.chunk, pt)
				wantChunk := sz.chunk
				if wantChunk == 0 {
					wantChunk = DefaultChunkSize
				}
				if h.KEM != k.id || h.KDF != KDFHKDFSHA256 || h.AEAD != AEADAES256GCM || h.ChunkSize != wantChunk {
					t.Errorf("suite/chunk = 0x%04x/0x%04x/0x%04x/%d", h.KEM, h.KDF, h.AEAD, h.ChunkSize)
				}
				wantCT, _ := CiphertextSizeFor(uint64(sz.n), wantChunk)
				if h.PayloadSize != uint64(sz.n) || h.CiphertextSize != wantCT || uint64(len(ct)) != wantCT {
					t.Errorf("PayloadSize %d CiphertextSize %d len(ct) %d; want %d, %d", h.PayloadSize, h.CiphertextSize, len(ct), sz.n, wantCT)
				}
				if h.CiphertextDigest != sha256.Sum256(ct) {
					t.Error("CiphertextDigest is not the SHA-256 of the ciphertext")
				}
				if err := h.Validate(); err != nil {
					t.Errorf("sealed header does not validate: %v", err)
				}
				got, err := openAll(priv, h, bytes.NewReader(ct))
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("open returned %d bytes differing from the %d sealed", len(got), len(pt))
				}
				// A reader that returns one byte at a time, and one that
				// returns data together with io.EOF, must give the same result.
				for name, r := range map[string]io.Reader{
					"OneByteReader": iotest.OneByteReader(bytes.NewReader(ct)),
					"DataErrReader": iotest.DataErrReader(bytes.NewReader(ct)),
				} {
					if sz.n > 64<<10 && name == "OneByteReader" {
						continue // too slow to be worth it
					}
					got, err := openAll(priv, h, r)
					if err != nil || !bytes.Equal(got, pt) {
						t.Errorf("open via %s: %d bytes, %v", name, len(got), err)
					}
				}
			})
		}
	}
}

// TestSealRefuses checks the preconditions of Seal and that a failed Seal
// leaves the header untouched.
func TestSealRefuses(t *testing.T) {
	priv := testSealingKey(t, KEMDHKEMP256, "refuse")
	x25519, err := hpke.DHKEM(ecdhX25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		pub    hpke.PublicKey
		mutate func(*Header)
		pt     io.Reader
		want   error
	}{
		{"x25519 key", x25519.PublicKey(), func(*Header) {}, strings.NewReader("x"), ErrUnsupportedSuite},
		{"nil key", nil, func(*Header) {}, strings.NewReader("x"), ErrBadKey},
		{"bad type", priv.PublicKey(), func(h *Header) { h.Type = "Bad" }, strings.NewReader("x"), ErrMalformed},
		{"bad recipient", priv.PublicKey(), func(h *Header) { h.Recipient = "lg:011003" }, strings.NewReader("x"), ErrBadParticipantID},
		{"chunk too small", priv.PublicKey(), func(h *Header) { h.ChunkSize = 512 }, strings.NewReader("x"), ErrMalformed},
		{"read error", priv.PublicKey(), func(*Header) {}, iotest.ErrReader(errors.New("disk on fire")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := identityHeader()
			tc.mutate(h)
			before := *h
			err := Seal(tc.pub, h, tc.pt, io.Discard)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Seal = %v, want %v", err, tc.want)
			}
			if !headersEqual(h, &before) {
				t.Errorf("failed Seal modified the header: %+v", h)
			}
		})
	}
}

func TestSealWriteError(t *testing.T) {
	priv := testSealingKey(t, KEMDHKEMP256, "write")
	err := Seal(priv.PublicKey(), identityHeader(), strings.NewReader("x"), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "write ciphertext") {
		t.Fatalf("Seal to failing writer = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestOpenStreams checks that Open holds at most one chunk: after the first
// plaintext byte is returned it must have consumed exactly one chunk of
// ciphertext, not the whole stream.
func TestOpenStreams(t *testing.T) {
	priv := testSealingKey(t, KEMDHKEMP256, "stream")
	h, ct := sealed(t, priv, MinChunkSize, testPayload(10*MinChunkSize))
	src := &countingReader{r: bytes.NewReader(ct)}
	r, err := Open(priv, h, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if src.n != MinChunkSize+TagSize {
		t.Errorf("after the first byte Open consumed %d ciphertext bytes, want one chunk (%d)", src.n, MinChunkSize+TagSize)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestOpenRejectsTampering is the table test of every way the ciphertext
// stream (or the key / header used to open it) can be wrong.
func TestOpenRejectsTampering(t *testing.T) {
	const chunk = MinChunkSize
	for _, k := range kems {
		priv := testSealingKey(t, k.id, "tamper")
		other := testSealingKey(t, k.id, "other")
		pt := testPayload(3*chunk + 100) // 4 chunks, the last one short
		h, ct := sealed(t, priv, chunk, pt)
		c := chunk + TagSize
		tests := []struct {
			name string
			priv hpke.PrivateKey
			h    func() *Header
			ct   func() []byte
			want error
		}{
			{"flip first byte", nil, nil, func() []byte { b := bytes.Clone(ct); b[0] ^= 1; return b }, ErrDecrypt},
			{"flip tag of chunk 1", nil, nil, func() []byte { b := bytes.Clone(ct); b[2*c-1] ^= 0x80; return b }, ErrDecrypt},
			{"flip last byte", nil, nil, func() []byte { b := bytes.Clone(ct); b[len(b)-1] ^= 1; return b }, ErrDecrypt},
			{"swap chunks 0 and 1", nil, nil, func() []byte {
				b := bytes.Clone(ct)
				copy(b[:c], ct[c:2*c])
				copy(b[c:2*c], ct[:c])
				return b
			}, ErrDecrypt},
			{"drop last chunk", nil, nil, func() []byte { return ct[:3*c] }, ErrTruncated},
			{"drop middle chunk", nil, nil, func() []byte { return append(bytes.Clone(ct[:c]), ct[2*c:]...) }, ErrDecrypt},
			{"cut mid chunk", nil, nil, func() []byte { return ct[:c+10] }, ErrTruncated},
			{"empty stream", nil, nil, func() []byte { return nil }, ErrTruncated},
			{"one trailing byte", nil, nil, func() []byte { return append(bytes.Clone(ct), 0) }, ErrSizeMismatch},
			{"trailing chunk copy", nil, nil, func() []byte { return append(bytes.Clone(ct), ct[:c]...) }, ErrSizeMismatch},
			{"wrong private key", other, nil, nil, ErrDecrypt},
			{"header with another ID", nil, func() *Header { h2 := *h; h2.ID = "01JH8Z5V6Q3K4M7N8P9R0S1T2W"; return &h2 }, nil, ErrDecrypt},
			{"header with another recipient", nil, func() *Header { h2 := *h; h2.Recipient = "lg:011002"; return &h2 }, nil, ErrDecrypt},
			{"header with another key id", nil, func() *Header { h2 := *h; h2.KeyID = "other"; return &h2 }, nil, ErrDecrypt},
			{"header with wrong digest", nil, func() *Header { h2 := *h; h2.CiphertextDigest[0] ^= 1; return &h2 }, nil, ErrDigestMismatch},
			{"header with another enc", nil, func() *Header {
				h2 := *h
				h2.Enc = bytes.Clone(h.Enc)
				h2.Enc[len(h2.Enc)-1] ^= 1
				return &h2
			}, nil, ErrDecrypt},
		}
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				p, hh, cc := priv, h, ct
				if tc.priv != nil {
					p = tc.priv
				}
				if tc.h != nil {
					hh = tc.h()
				}
				if tc.ct != nil {
					cc = tc.ct()
				}
				got, err := openAll(p, hh, bytes.NewReader(cc))
				if !errors.Is(err, tc.want) {
					t.Fatalf("open = %d bytes, %v; want %v", len(got), err, tc.want)
				}
				// The plaintext of the last chunk is withheld on any failure,
				// so a failed stream never yields the complete payload.
				if bytes.Equal(got, pt) {
					t.Error("the complete plaintext was released despite the error")
				}
				if strings.Contains(err.Error(), string(pt[:8])) {
					t.Error("error message contains payload bytes")
				}
			})
		}
	}
}

// TestOpenRejectsMissingFinalFlag builds, with the real sender context, a
// stream whose chunks all authenticate but whose last chunk lacks the final
// flag (what a truncating attacker who could re-frame would produce): it
// must not open.
func TestOpenRejectsMissingFinalFlag(t *testing.T) {
	priv := testSealingKey(t, KEMDHKEMP256, "final")
	for _, tc := range []struct {
		name  string
		final func(i, n int) bool
	}{
		{"no final flag", func(i, n int) bool { return false }},
		{"final flag on every chunk", func(i, n int) bool { return true }},
		{"final flag on first chunk", func(i, n int) bool { return i == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := identityHeader()
			h.ChunkSize = MinChunkSize
			pt := testPayload(2*MinChunkSize + 1)
			enc, s, err := hpke.NewSender(priv.PublicKey(), hpke.HKDFSHA256(), hpke.AES256GCM(), SealInfo(h))
			if err != nil {
				t.Fatal(err)
			}
			var ct []byte
			for i := range 3 {
				part := pt[i*MinChunkSize : min((i+1)*MinChunkSize, len(pt))]
				c, err := s.Seal(chunkAAD(uint64(i), tc.final(i, 3)), part)
				if err != nil {
					t.Fatal(err)
				}
				ct = append(ct, c...)
			}
			h.KEM, h.KDF, h.AEAD, h.Enc = KEMDHKEMP256, KDFHKDFSHA256, AEADAES256GCM, enc
			h.PayloadSize, h.CiphertextSize, h.CiphertextDigest = uint64(len(pt)), uint64(len(ct)), sha256.Sum256(ct)
			if _, err := openAll(priv, h, bytes.NewReader(ct)); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("open = %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	priv := testSealingKey(t, KEMMLKEM768P256, "refuse")
	dh := testSealingKey(t, KEMDHKEMP256, "refuse")
	h, ct := sealed(t, priv, 0, []byte("x"))
	if _, err := Open(dh, h, bytes.NewReader(ct)); !errors.Is(err, ErrBadKey) {
		t.Errorf("Open with a key of another KEM = %v, want ErrBadKey", err)
	}
	if _, err := Open(nil, h, bytes.NewReader(ct)); !errors.Is(err, ErrBadKey) {
		t.Errorf("Open with nil key = %v, want ErrBadKey", err)
	}
	bad := *h
	bad.CiphertextSize++
	if _, err := Open(priv, &bad, bytes.NewReader(ct)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open with invalid header = %v, want ErrMalformed", err)
	}
	if _, err := Open(priv, nil, bytes.NewReader(ct)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open with nil header = %v, want ErrMalformed", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	priv := testSealingKey(t, KEMDHKEMP256, "verify")
	h, ct := sealed(t, priv, MinChunkSize, testPayload(5000))
	badHeader := *h
	badHeader.ChunkSize = 1
	tests := []struct {
		name     string
		h        *Header
		src      io.Reader
		want     error // nil means a clean io.EOF
		wantData int   // bytes that must be passed through
	}{
		{"exact", h, bytes.NewReader(ct), nil, len(ct)},
		{"exact one byte at a time", h, iotest.OneByteReader(bytes.NewReader(ct)), nil, len(ct)},
		{"exact with data+EOF", h, iotest.DataErrReader(bytes.NewReader(ct)), nil, len(ct)},
		{"short", h, bytes.NewReader(ct[:len(ct)-1]), ErrTruncated, len(ct) - 1},
		{"long", h, bytes.NewReader(append(bytes.Clone(ct), 1, 2, 3)), ErrSizeMismatch, len(ct)},
		{"long with data+EOF", h, iotest.DataErrReader(bytes.NewReader(append(bytes.Clone(ct), 1))), ErrSizeMismatch, len(ct)},
		{"flipped", h, bytes.NewReader(flip(ct, 100)), ErrDigestMismatch, len(ct)},
		{"flipped last byte", h, iotest.DataErrReader(bytes.NewReader(flip(ct, len(ct)-1))), ErrDigestMismatch, len(ct)},
		{"invalid header", &badHeader, bytes.NewReader(ct), ErrMalformed, 0},
		{"nil header", nil, bytes.NewReader(ct), ErrMalformed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := VerifyingReader(tc.h, tc.src)
			got, err := io.ReadAll(r)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("ReadAll = %d bytes, %v; want %v", len(got), err, tc.want)
			}
			if len(got) != tc.wantData {
				t.Errorf("passed through %d bytes, want %d", len(got), tc.wantData)
			}
			if tc.wantData > 0 && !bytes.Equal(got, flipBack(tc.name, got, ct)) {
				t.Error("bytes were altered in passing")
			}
			// Errors are sticky: a second read must not turn into io.EOF.
			if _, err2 := r.Read(make([]byte, 10)); tc.want != nil && !errors.Is(err2, tc.want) {
				t.Errorf("second Read = %v, want sticky %v", err2, tc.want)
			}
		})
	}
	_, err := io.ReadAll(VerifyingReader(h, bytes.NewReader(ct[:10])))
	if !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("truncated stream error %v does not also match ErrSizeMismatch", err)
	}
	_, err = io.ReadAll(VerifyingReader(h, iotest.ErrReader(errors.New("connection reset"))))
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("transport error = %v, want it passed through", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// flipBack returns the slice the test expects to have been passed through:
// the tampered cases pass through the tampered bytes, the others ct.
func flipBack(name string, got, ct []byte) []byte {
	if strings.HasPrefix(name, "flipped") {
		return got
	}
	return ct[:len(got)]
}

// TestHeaderHoldsNoPayload checks that nothing of the payload reaches the
// routable part of the envelope: no 8-byte window of the plaintext occurs in
// the header, the preamble, or (for that matter) the ciphertext.
func TestHeaderHoldsNoPayload(t *testing.T) {
	// Something that looks like what must never leak: a name and a 12-digit
	// individual number, repeated so that any partial leak is caught.
	pt := []byte(strings.Repeat("<氏名>山田太郎</氏名><個人番号>123456789018</個人番号>", 200))
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			priv := testSealingKey(t, k.id, "pii")
			h, ct := sealed(t, priv, MinChunkSize, pt)
			hb, err := h.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(testSigningKey(t, "pii"), hb)
			if err != nil {
				t.Fatal(err)
			}
			var pre bytes.Buffer
			if err := WritePreamble(&pre, hb, sig); err != nil {
				t.Fatal(err)
			}
			for region, b := range map[string][]byte{"header": hb, "preamble": pre.Bytes(), "ciphertext": ct} {
				for i := 0; i+8 <= len(pt); i++ {
					if bytes.Contains(b, pt[i:i+8]) {
						t.Fatalf("%s contains payload bytes %q (payload offset %d)", region, pt[i:i+8], i)
					}
				}
			}
			if uint64(len(hb)) > 2000 {
				t.Errorf("header is %d bytes; it should not grow with the payload", len(hb))
			}
		})
	}
}

func ExampleSeal() {
	priv, _ := GenerateSealingKey(DefaultKEM)
	h := &Header{
		ID: "01JH8Z5V6Q3K4M7N8P9R0S1T2V", Type: "resident-tax-notice",
		Sender: "nta:e-tax", Recipient: "lg:130001",
		Created:     identityHeader().Created,
		ContentType: "application/xml", KeyID: "lg-130001.2026-01",
	}
	var ct bytes.Buffer
	if err := Seal(priv.PublicKey(), h, strings.NewReader("<notice/>"), &ct); err != nil {
		panic(err)
	}
	r, _ := Open(priv, h, &ct)
	pt, err := io.ReadAll(r)
	fmt.Println(string(pt), err, h.PayloadSize, h.CiphertextSize)
	// Output: <notice/> <nil> 9 25
}
