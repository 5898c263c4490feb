package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// wireEnvelope returns a complete signed envelope and its parts.
func wireEnvelope(t testing.TB, kem uint16, n int) (env, hb, sig, ct []byte) {
	t.Helper()
	priv := testSealingKey(t, kem, "wire")
	h, ct := sealed(t, priv, MinChunkSize, testPayload(n))
	hb, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sig, err = Sign(testSigningKey(t, "wire"), hb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePreamble(&buf, hb, sig); err != nil {
		t.Fatal(err)
	}
	buf.Write(ct)
	return buf.Bytes(), hb, sig, ct
}

func TestPreambleRoundTrip(t *testing.T) {
	for _, k := range kems {
		t.Run(k.name, func(t *testing.T) {
			env, hb, sig, ct := wireEnvelope(t, k.id, 3000)
			if string(env[:4]) != "TLE1" || int(binary.BigEndian.Uint16(env[4:])) != len(hb) ||
				!bytes.Equal(env[6:6+len(hb)], hb) ||
				int(binary.BigEndian.Uint16(env[6+len(hb):])) != len(sig) {
				t.Fatalf("preamble layout differs from TLE1 || u16 len || header || u16 len || sig")
			}
			// One byte at a time proves ReadPreamble reads no more than the
			// preamble: the rest must still be in the source.
			src := bytes.NewReader(env)
			h, gotHB, gotSig, err := ReadPreamble(iotest.OneByteReader(src))
			if err != nil {
				t.Fatalf("ReadPreamble: %v", err)
			}
			if !bytes.Equal(gotHB, hb) || !bytes.Equal(gotSig, sig) {
				t.Error("ReadPreamble returned other header or signature bytes")
			}
			if err := Verify(&testSigningKey(t, "wire").PublicKey, gotHB, gotSig); err != nil {
				t.Errorf("Verify after ReadPreamble: %v", err)
			}
			rest, _ := io.ReadAll(src)
			if !bytes.Equal(rest, ct) {
				t.Fatalf("ReadPreamble consumed %d bytes of ciphertext", len(ct)-len(rest))
			}
			if _, err := io.ReadAll(VerifyingReader(h, bytes.NewReader(rest))); err != nil {
				t.Errorf("VerifyingReader on the rest: %v", err)
			}
		})
	}
}

func TestReadPreambleStrict(t *testing.T) {
	env, hb, _, _ := wireEnvelope(t, KEMDHKEMP256, 10)
	sigOff := 6 + len(hb)
	set16 := func(off int, v uint16) []byte {
		b := bytes.Clone(env)
		binary.BigEndian.PutUint16(b[off:], v)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"bad magic", append([]byte("TLE2"), env[4:]...), ErrMalformed},
		{"header magic as wire magic", append([]byte("TLH1"), env[4:]...), ErrMalformed},
		{"header length 0", set16(4, 0), ErrMalformed},
		{"header length too big", set16(4, MaxHeaderSize+1), ErrMalformed},
		{"header length one short", set16(4, uint16(len(hb)-1)), ErrMalformed},
		{"header length one long", set16(4, uint16(len(hb)+1)), ErrMalformed},
		{"header kem unsupported", func() []byte { b := bytes.Clone(env); b[6+4+27+20+10+10+8+16+18+1] = 0x20; return b }(), ErrUnsupportedSuite},
		{"signature length 0", set16(sigOff, 0), ErrMalformed},
		{"signature length 81", set16(sigOff, MaxSignatureSize+1), ErrMalformed},
		{"signature length 0xffff", set16(sigOff, 0xffff), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _, err := ReadPreamble(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadPreamble = %v, %v; want %v", h, err, tc.want)
			}
		})
	}
	// Every truncation of the preamble is refused as malformed and truncated.
	end := sigOff + 2 + int(binary.BigEndian.Uint16(env[sigOff:]))
	for n := range end {
		_, _, _, err := ReadPreamble(bytes.NewReader(env[:n]))
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrTruncated) {
			t.Fatalf("ReadPreamble(first %d of %d preamble bytes) = %v, want ErrMalformed+ErrTruncated", n, end, err)
		}
	}
	// Transport errors pass through and are not mistaken for truncation.
	_, _, _, err := ReadPreamble(iotest.ErrReader(errors.New("tls: bad record")))
	if err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("ReadPreamble(failing reader) = %v, want the transport error", err)
	}
}

func TestWritePreambleRefuses(t *testing.T) {
	_, hb, sig, _ := wireEnvelope(t, KEMDHKEMP256, 10)
	if err := WritePreamble(io.Discard, append(bytes.Clone(hb), 0), sig); !errors.Is(err, ErrMalformed) {
		t.Errorf("WritePreamble(non-canonical header) = %v, want ErrMalformed", err)
	}
	if err := WritePreamble(io.Discard, hb, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("WritePreamble(empty signature) = %v, want ErrMalformed", err)
	}
	if err := WritePreamble(io.Discard, hb, make([]byte, 81)); !errors.Is(err, ErrMalformed) {
		t.Errorf("WritePreamble(81-byte signature) = %v, want ErrMalformed", err)
	}
	if err := WritePreamble(failingWriter{}, hb, sig); err == nil {
		t.Error("WritePreamble to a failing writer succeeded")
	}
}

// TestEnvelopeTampering runs the receiver's full pipeline (ReadPreamble,
// Verify, Open) over a wire envelope with one region tampered, and checks
// that each tampering is detected with the right sentinel.
func TestEnvelopeTampering(t *testing.T) {
	for _, k := range kems {
		env, hb, sig, ct := wireEnvelope(t, k.id, 3*MinChunkSize+7)
		hOff, sOff, cOff := 6, 6+len(hb)+2, 6+len(hb)+2+len(sig)
		c := MinChunkSize + TagSize
		tamper := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(env)) }
		tests := []struct {
			name string
			env  []byte
			want error
		}{
			{"untouched", env, nil},
			{"header: ID char", tamper(func(b []byte) []byte { b[hOff+4+1+5] = 'Y'; return b }), ErrBadSignature},
			{"header: created", tamper(func(b []byte) []byte { b[hOff+4+27+20+10+10+7]++; return b }), ErrBadSignature},
			{"header: enc byte", tamper(func(b []byte) []byte { b[hOff+len(hb)-32-28-10]++; return b }), ErrBadSignature},
			{"header: digest byte", tamper(func(b []byte) []byte { b[hOff+len(hb)-1]++; return b }), ErrBadSignature},
			{"header: type made invalid", tamper(func(b []byte) []byte { b[hOff+4+27+1] = 'R'; return b }), ErrMalformed},
			{"signature byte", tamper(func(b []byte) []byte { b[sOff+len(sig)-2] ^= 0x40; return b }), ErrBadSignature},
			{"ciphertext byte", tamper(func(b []byte) []byte { b[cOff+c+3] ^= 1; return b }), ErrDecrypt},
			{"dropped last chunk", env[:cOff+3*c], ErrTruncated},
			{"extra trailing bytes", append(bytes.Clone(env), "extra"...), ErrSizeMismatch},
			{"swapped chunks", tamper(func(b []byte) []byte {
				copy(b[cOff:], ct[c:2*c])
				copy(b[cOff+c:], ct[:c])
				return b
			}), ErrDecrypt},
		}
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				err := receive(t, k.id, tc.env)
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("receive = %v, want %v", err, tc.want)
				}
			})
		}
	}
}

// receive is the receiver's pipeline; it returns the first error.
func receive(t *testing.T, kem uint16, env []byte) error {
	r := bytes.NewReader(env)
	h, hb, sig, err := ReadPreamble(r)
	if err != nil {
		return err
	}
	if err := Verify(&testSigningKey(t, "wire").PublicKey, hb, sig); err != nil {
		return err
	}
	pt, err := Open(testSealingKey(t, kem, "wire"), h, r)
	if err != nil {
		return err
	}
	_, err = io.ReadAll(pt)
	return err
}

func TestFuzzSeedsEmbedded(t *testing.T) {
	seeds, err := FuzzSeeds()
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) < 5 {
		t.Fatalf("only %d embedded seeds", len(seeds))
	}
}
