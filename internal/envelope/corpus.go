package envelope

import (
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// fuzzCorpus is the committed seed corpus of the preamble decoder's fuzz
// target, embedded so that the attack drill can replay it against a
// running hub. It is read only.
//
//go:embed testdata/fuzz/FuzzReadPreamble
var fuzzCorpus embed.FS

// FuzzSeeds returns the committed seed inputs of FuzzReadPreamble: valid
// envelopes and hand-made malformed ones (zero and maximal lengths, bad
// magic, truncations). Each is decoded from Go's fuzz corpus format.
func FuzzSeeds() ([][]byte, error) {
	var out [][]byte
	err := fs.WalkDir(fuzzCorpus, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fuzzCorpus.ReadFile(path)
		if err != nil {
			return err
		}
		v, err := parseCorpusFile(string(b))
		if err != nil {
			return fmt.Errorf("envelope: fuzz seed %s: %w", path, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// parseCorpusFile decodes a "go test fuzz v1" file holding one []byte.
func parseCorpusFile(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "go test fuzz v1\n")
	if !ok {
		return nil, fmt.Errorf("not a go fuzz corpus file")
	}
	rest = strings.TrimSpace(rest)
	inner, ok := strings.CutPrefix(rest, "[]byte(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, fmt.Errorf("expected one []byte value")
	}
	v, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}
