package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseCheckpoint checks that ParseCheckpoint never panics, refuses
// only with ErrBadCheckpoint, and that whatever it accepts is exactly the
// canonical checkpoint text of its fields, signed.
func FuzzParseCheckpoint(f *testing.F) {
	verifiers := testVerifiers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := ParseCheckpoint(data, verifiers)
		if err != nil {
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("error %v does not wrap ErrBadCheckpoint", err)
			}
			return
		}
		if !bytes.Equal(cp.Note, data) {
			t.Fatalf("Note differs from the input")
		}
		if len(data) > MaxCheckpointSize {
			t.Fatalf("accepted %d bytes, limit %d", len(data), MaxCheckpointSize)
		}
		text := checkpointText(cp.Origin, cp.Size, cp.Hash)
		if !bytes.HasPrefix(data, []byte(text+"\n")) {
			t.Fatalf("accepted note does not start with its canonical text %q", text)
		}
	})
}

// FuzzParseBundle checks that ParseBundle never panics, refuses only with
// ErrBadBundle, that whatever it accepts re-marshals to the compacted
// input, and that VerifyBundle never panics on it.
func FuzzParseBundle(f *testing.F) {
	verifiers := testVerifiers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			if !errors.Is(err, ErrBadBundle) {
				t.Fatalf("error %v does not wrap ErrBadBundle", err)
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("accepted bundle does not marshal: %v", err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatalf("accepted input is not JSON: %v", err)
		}
		if !bytes.Equal(out, compact.Bytes()) {
			t.Fatalf("re-marshal differs:\n in  %s\n out %s", compact.Bytes(), out)
		}
		if _, err := VerifyBundle(b, verifiers); err != nil &&
			!errors.Is(err, ErrBadCheckpoint) && !errors.Is(err, ErrBadProof) && !errors.Is(err, ErrBadBundle) {
			t.Fatalf("VerifyBundle error %v wraps no documented sentinel", err)
		}
	})
}
