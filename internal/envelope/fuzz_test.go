package envelope

import (
	"bytes"
	"errors"
	"testing"
)

// knownSentinel reports whether err wraps one of the errors ParseHeader and
// ReadPreamble are documented to return for bad input.
func knownSentinel(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupportedSuite)
}

// FuzzParseHeader checks that ParseHeader never panics, refuses with a
// documented sentinel, and that whatever it accepts re-marshals to exactly
// the input (the encoding is canonical).
func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if err != nil {
			if h != nil {
				t.Fatal("ParseHeader returned both a header and an error")
			}
			if !knownSentinel(err) {
				t.Fatalf("ParseHeader error %v wraps no documented sentinel", err)
			}
			return
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed header does not re-marshal: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("re-marshal differs:\n in  %x\n out %x", data, b)
		}
	})
}

// FuzzReadPreamble checks that ReadPreamble never panics, reads exactly
// the preamble it returns (no more), and that what it returns re-writes to
// exactly the bytes it consumed.
func FuzzReadPreamble(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, hb, sig, err := ReadPreamble(r)
		if err != nil {
			if !knownSentinel(err) {
				t.Fatalf("ReadPreamble error %v wraps no documented sentinel", err)
			}
			return
		}
		consumed := len(data) - r.Len()
		if consumed != 4+2+len(hb)+2+len(sig) {
			t.Fatalf("consumed %d bytes for a %d-byte preamble", consumed, 4+2+len(hb)+2+len(sig))
		}
		var out bytes.Buffer
		if err := WritePreamble(&out, hb, sig); err != nil {
			t.Fatalf("WritePreamble of what ReadPreamble returned: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data[:consumed]) {
			t.Fatalf("re-written preamble differs from input")
		}
		if b, err := h.MarshalBinary(); err != nil || !bytes.Equal(b, hb) {
			t.Fatalf("header does not re-marshal to headerBytes: %v", err)
		}
	})
}
