package receipt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json and the committed fuzz seeds")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the layout of testdata/vectors.json (see docs/format.md).
type vectorFile struct {
	Comment string `json:"comment"`
	// HeaderBytes is the canonical envelope header the receipts refer to.
	HeaderBytes string   `json:"header_hex"`
	Vectors     []vector `json:"vectors"`
}

type vector struct {
	Name string `json:"name"`
	// Issuer test key: raw P-256 scalar and uncompressed public point.
	IssuerPrivateKey     string `json:"issuer_private_key_hex"`
	IssuerPublicKey      string `json:"issuer_public_key_hex"`
	JSON                 string `json:"json"` // exact MarshalJSON output
	SignedBytes          string `json:"signed_bytes_hex"`
	SignatureInputDigest string `json:"signature_input_sha256_hex"`
}

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
	if len(vf.Vectors) != 2 {
		t.Fatalf("%d vectors, want 2", len(vf.Vectors))
	}
	hb := unhex(t, vf.HeaderBytes)
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), unhex(t, v.IssuerPrivateKey))
			if err != nil {
				t.Fatal(err)
			}
			if pb, _ := k.PublicKey.Bytes(); hex.EncodeToString(pb) != v.IssuerPublicKey {
				t.Error("issuer_public_key_hex does not match issuer_private_key_hex")
			}
			r, err := Parse([]byte(v.JSON))
			if err != nil {
				t.Fatalf("Parse(json): %v", err)
			}
			sb, err := r.SignedBytes()
			if err != nil || hex.EncodeToString(sb) != v.SignedBytes {
				t.Errorf("SignedBytes =\n%x\nwant signed_bytes_hex\n%s", sb, v.SignedBytes)
			}
			if d := SignatureDigest(sb); hex.EncodeToString(d[:]) != v.SignatureInputDigest {
				t.Error("SignatureDigest differs from signature_input_sha256_hex")
			}
			if err := r.Verify(&k.PublicKey); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := r.MatchesHeader(hb); err != nil {
				t.Errorf("MatchesHeader(header_hex): %v", err)
			}
			if j, _ := r.MarshalJSON(); string(j) != v.JSON {
				t.Errorf("MarshalJSON =\n%s\nwant json\n%s", j, v.JSON)
			}
		})
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

// generateVectors rewrites testdata/vectors.json and the FuzzParse seeds.
func generateVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 20260515)
	hb := testHeaderBytes(t)
	vf := vectorFile{
		Comment: "taxlink receipt test vectors; format in docs/format.md. Keys are public test keys: never use them. " +
			"ECDSA signing is randomized: check by verifying, and by re-encoding json to signed_bytes_hex.",
		HeaderBytes: hex.EncodeToString(hb),
	}
	seeds := map[string][]byte{}
	for _, kind := range []Kind{Accepted, Recorded} {
		r, key := signedReceipt(t, kind)
		j, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := r.SignedBytes()
		d := SignatureDigest(sb)
		kb, _ := key.Bytes()
		pb, _ := key.PublicKey.Bytes()
		vf.Vectors = append(vf.Vectors, vector{
			Name:                 kind.String(),
			IssuerPrivateKey:     hex.EncodeToString(kb),
			IssuerPublicKey:      hex.EncodeToString(pb),
			JSON:                 string(j),
			SignedBytes:          hex.EncodeToString(sb),
			SignatureInputDigest: hex.EncodeToString(d[:]),
		})
		seeds["valid-"+kind.String()] = j
	}
	v := string(seeds["valid-accepted"])
	seeds["empty"] = []byte{}
	seeds["empty-object"] = []byte("{}")
	seeds["null"] = []byte("null")
	seeds["duplicate-member"] = []byte(strings.Replace(v, "{", `{"seq":1,`, 1))
	seeds["unknown-member"] = []byte(strings.Replace(v, "{", `{"x":1,`, 1))
	seeds["kind-null"] = []byte(strings.Replace(v, `"kind":"accepted"`, `"kind":null`, 1))
	seeds["seq-float"] = []byte(strings.Replace(v, `"seq":42`, `"seq":4.2e1`, 1))
	seeds["trailing"] = []byte(v + " {}")
	seeds["nested"] = []byte(`{"kind":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	seeds["whitespace-escapes"] = []byte(strings.ReplaceAll(strings.ReplaceAll(v, ",", " ,\n\t"), `"type"`, `"typ\u0065"`))
	out, err := json.MarshalIndent(vf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
