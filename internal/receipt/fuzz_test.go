package receipt

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, refuses only with ErrMalformed,
// and that whatever it accepts is a valid receipt whose JSON re-parses to
// the same receipt with the same signed bytes (the JSON form may differ in
// whitespace and escapes; the signed form may not).
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if r != nil {
				t.Fatal("Parse returned both a receipt and an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		sb, err := r.SignedBytes()
		if err != nil {
			t.Fatalf("parsed receipt has no signed bytes: %v", err)
		}
		j, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("parsed receipt does not marshal: %v", err)
		}
		r2, err := Parse(j)
		if err != nil {
			t.Fatalf("MarshalJSON output does not parse: %v\n%s", err, j)
		}
		sb2, _ := r2.SignedBytes()
		if !bytes.Equal(sb, sb2) || !bytes.Equal(r.Signature, r2.Signature) {
			t.Fatalf("JSON round trip changed the receipt:\n%s", j)
		}
		if j2, _ := r2.MarshalJSON(); !bytes.Equal(j, j2) {
			t.Fatalf("MarshalJSON is not canonical:\n%s\n%s", j, j2)
		}
	})
}
