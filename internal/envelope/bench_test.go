package envelope

import (
	"bytes"
	"io"
	"testing"
)

var benchSizes = []struct {
	name string
	n    int
}{{"8KiB", 8 << 10}, {"1MiB", 1 << 20}}

func BenchmarkSeal(b *testing.B) {
	for _, k := range kems {
		priv := testSealingKey(b, k.id, "bench")
		for _, sz := range benchSizes {
			b.Run(k.name+"/"+sz.name, func(b *testing.B) {
				pt := testPayload(sz.n)
				b.SetBytes(int64(sz.n))
				for b.Loop() {
					h := identityHeader()
					if err := Seal(priv.PublicKey(), h, bytes.NewReader(pt), io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, k := range kems {
		priv := testSealingKey(b, k.id, "bench")
		for _, sz := range benchSizes {
			b.Run(k.name+"/"+sz.name, func(b *testing.B) {
				h, ct := sealed(b, priv, 0, testPayload(sz.n))
				b.SetBytes(int64(sz.n))
				for b.Loop() {
					r, err := Open(priv, h, bytes.NewReader(ct))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerify measures what the hub does per envelope: parse the
// preamble and verify the header signature.
func BenchmarkVerify(b *testing.B) {
	env, _, _, _ := wireEnvelope(b, DefaultKEM, 1)
	pub := &testSigningKey(b, "wire").PublicKey
	for b.Loop() {
		_, hb, sig, err := ReadPreamble(bytes.NewReader(env))
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(pub, hb, sig); err != nil {
			b.Fatal(err)
		}
	}
}
