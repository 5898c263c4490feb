package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// signText signs an arbitrary note text with the test key.
func signText(t *testing.T, text string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, mustSigner(t, testSKey))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCheckpoint(t *testing.T) {
	var root tlog.Hash
	root[31] = 9
	good, err := signCheckpoint(testOrigin, 1234, root, mustSigner(t, testSKey))
	if err != nil {
		t.Fatal(err)
	}
	b64 := root.String()
	otherSigned, _ := signCheckpoint(testOrigin, 1234, root, mustSigner(t, otherSKey))
	badSig := bytes.Clone(good.Note)
	badSig[len(badSig)-5] ^= 1
	tests := []struct {
		name   string
		signed []byte
		msg    string // "" means valid
	}{
		{"valid", good.Note, ""},
		{"valid empty tree", signText(t, testOrigin+"\n0\n"+emptyTreeHash().String()+"\n"), ""},
		{"signed by an unknown key", otherSigned.Note, "no signature by a trusted key"},
		{"invalid signature", badSig, "invalid signature"},
		{"not a note", []byte("hello\n"), "malformed note"},
		{"too large", append(bytes.Clone(good.Note), bytes.Repeat([]byte("x"), MaxCheckpointSize)...), "exceeds the limit"},
		{"extension line", signText(t, testOrigin+"\n1234\n"+b64+"\nextra\n"), "4 lines"},
		{"two lines", signText(t, testOrigin+"\n1234\n"), "2 lines"},
		{"leading zero", signText(t, testOrigin+"\n01234\n"+b64+"\n"), "not a canonical decimal"},
		{"signed size", signText(t, testOrigin+"\n+1234\n"+b64+"\n"), "not a canonical decimal"},
		{"size overflow", signText(t, testOrigin+"\n99999999999999999999\n"+b64+"\n"), "not a canonical decimal"},
		{"size out of range", signText(t, testOrigin+"\n9999999999999999999\n"+b64+"\n"), "out of range"},
		{"short root", signText(t, testOrigin+"\n1234\nAAAA\n"), "not the base64"},
		{"non-canonical base64", signText(t, testOrigin+"\n1234\n"+b64[:42]+"B=\n"), "not the base64"},
		{"origin with a space", signText(t, "taxlink hub\n1234\n"+b64+"\n"), "origin"},
		{"empty origin", signText(t, "\n1234\n"+b64+"\n"), "origin"},
		{"size 0 with a root", signText(t, testOrigin+"\n0\n"+b64+"\n"), "empty tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := ParseCheckpoint(tt.signed, testVerifiers(t))
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("ParseCheckpoint: %v", err)
				}
				if !bytes.Equal(cp.Note, tt.signed) || cp.Origin != testOrigin {
					t.Fatalf("ParseCheckpoint = %+v", cp)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseCheckpoint accepted %q", tt.signed)
			}
			if !errors.Is(err, ErrBadCheckpoint) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseCheckpoint error %q, want ErrBadCheckpoint mentioning %q", err, tt.msg)
			}
		})
	}
	if _, err := ParseCheckpoint(good.Note, nil); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("ParseCheckpoint with nil verifiers = %v, want ErrBadCheckpoint", err)
	}
}

func TestWitness(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	path := filepath.Join(t.TempDir(), "witness")
	w, err := NewWitness(path, testVerifiers(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Latest(); ok {
		t.Fatalf("new witness has a checkpoint")
	}
	appendN(t, l, 0, 10)
	cp10, _ := l.Checkpoint(ctx)
	if err := w.Observe(cp10, nil); err != nil {
		t.Fatalf("first Observe: %v", err)
	}
	appendN(t, l, 10, 15)
	cp25, _ := l.Checkpoint(ctx)
	proof, err := l.ConsistencyProof(10, 25)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Observe(cp25, proof); err != nil {
		t.Fatalf("Observe of an extension: %v", err)
	}
	if err := w.Observe(cp25, nil); err != nil {
		t.Fatalf("Observe of the same checkpoint again: %v", err)
	}

	var forkRoot tlog.Hash
	forkRoot[0] = 1
	fork25, _ := signCheckpoint(testOrigin, 25, forkRoot, mustSigner(t, testSKey))
	fork30, _ := signCheckpoint(testOrigin, 30, forkRoot, mustSigner(t, testSKey))
	foreign, _ := signCheckpoint(otherOrigin, 40, forkRoot, mustSigner(t, testSKey))
	appendN(t, l, 25, 5)
	cp30, _ := l.Checkpoint(ctx)
	proof30, _ := l.ConsistencyProof(25, 30)
	lying := cp30
	lying.Size = 31
	unsigned, _ := signCheckpoint(testOrigin, 30, cp30.Hash, mustSigner(t, otherSKey))
	tests := []struct {
		name  string
		cp    Checkpoint
		proof tlog.TreeProof
		want  []error
	}{
		{"rollback", cp10, nil, []error{ErrRollback}},
		{"same size, other root", fork25, nil, []error{ErrFork}},
		{"bigger, proof does not verify", fork30, proof30, []error{ErrFork, ErrBadProof}},
		{"bigger, no proof", cp30, nil, []error{ErrFork, ErrBadProof}},
		{"fields differ from the note", lying, proof30, []error{ErrBadCheckpoint}},
		{"signed by an unknown key", unsigned, proof30, []error{ErrBadCheckpoint}},
		{"another origin", foreign, nil, []error{ErrForeign}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Observe(tt.cp, tt.proof)
			for _, s := range tt.want {
				if !errors.Is(err, s) {
					t.Fatalf("Observe = %v, want it to wrap %v", err, s)
				}
			}
			if got, _ := w.Latest(); got.Size != 25 {
				t.Fatalf("a refused checkpoint replaced the stored one: size %d", got.Size)
			}
		})
	}
	if err := w.Observe(cp30, proof30); err != nil {
		t.Fatalf("Observe of a valid extension after refusals: %v", err)
	}
	// Persistence.
	w2, err := NewWitness(path, testVerifiers(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := w2.Latest(); !ok || !bytes.Equal(got.Note, cp30.Note) {
		t.Fatalf("reloaded witness holds %q, want the size-30 checkpoint", got.Note)
	}
	if err := w2.Observe(cp25, nil); !errors.Is(err, ErrRollback) {
		t.Fatalf("reloaded witness accepted a rollback: %v", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWitness(path, testVerifiers(t)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("NewWitness on a garbage file = %v, want ErrCorrupt", err)
	}
}

func TestBundle(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	appendN(t, l, 0, 21)
	if _, err := l.Bundle(3); !errors.Is(err, ErrRange) {
		t.Fatalf("Bundle before any checkpoint = %v, want ErrRange", err)
	}
	cp, _ := l.Checkpoint(ctx)
	b, err := l.Bundle(13)
	if err != nil {
		t.Fatal(err)
	}
	js, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseBundle(js)
	if err != nil {
		t.Fatalf("ParseBundle(Marshal()): %v\n%s", err, js)
	}
	got, err := VerifyBundle(parsed, testVerifiers(t))
	if err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	if got.Size != cp.Size || got.Hash != cp.Hash {
		t.Fatalf("VerifyBundle returned checkpoint %d/%v, want %d/%v", got.Size, got.Hash, cp.Size, cp.Hash)
	}
	var indented bytes.Buffer
	if err := jsonIndent(&indented, js); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBundle(indented.Bytes()); err != nil {
		t.Fatalf("ParseBundle refused the same bundle with whitespace: %v", err)
	}

	s := string(js)
	refused := []struct{ name, json string }{
		{"key in another case", strings.Replace(s, `"index"`, `"Index"`, 1)},
		{"unknown key", strings.Replace(s, `{"checkpoint"`, `{"x":1,"checkpoint"`, 1)},
		{"duplicate key", strings.Replace(s, `"index":13`, `"index":13,"index":13`, 1)},
		{"missing proof", s[:strings.Index(s, `,"proof"`)] + "}"},
		{"keys reordered", strings.Replace(strings.Replace(s, `"index":13,`, ``, 1), `}`, `,"index":13}`, 1)},
		{"index as float", strings.Replace(s, `"index":13`, `"index":13.0`, 1)},
		{"null entry", s[:strings.Index(s, `"entry":`)] + `"entry":null` + s[strings.Index(s, `,"proof"`):]},
		{"trailing data", s + "{}"},
		{"too large", s + strings.Repeat(" ", MaxBundleSize)},
		{"negative index", strings.Replace(s, `"index":13`, `"index":-1`, 1)},
	}
	for _, r := range refused {
		if _, err := ParseBundle([]byte(r.json)); !errors.Is(err, ErrBadBundle) {
			t.Errorf("ParseBundle(%s) = %v, want ErrBadBundle", r.name, err)
		}
	}

	bad := parsed
	bad.Entry = []byte("forged")
	if _, err := VerifyBundle(bad, testVerifiers(t)); !errors.Is(err, ErrBadProof) {
		t.Fatalf("VerifyBundle with another entry = %v, want ErrBadProof", err)
	}
	bad = parsed
	bad.Index = 12
	if _, err := VerifyBundle(bad, testVerifiers(t)); !errors.Is(err, ErrBadProof) {
		t.Fatalf("VerifyBundle with another index = %v, want ErrBadProof", err)
	}
	if _, err := VerifyBundle(parsed, note.VerifierList(mustVerifier(t, otherVKey))); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("VerifyBundle with another key = %v, want ErrBadCheckpoint", err)
	}
}

// jsonIndent indents JSON, to check that whitespace is accepted.
func jsonIndent(dst *bytes.Buffer, src []byte) error { return json.Indent(dst, src, "", "  ") }
