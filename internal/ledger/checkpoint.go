package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Checkpoint is a signed tree head in the C2SP tlog-checkpoint format:
// the note text is "<origin>\n<size>\n<base64 root>\n", followed by a blank
// line and one or more note signature lines.
type Checkpoint struct {
	Origin string    // the log's origin line
	Size   int64     // number of entries covered
	Hash   tlog.Hash // RFC 6962 root of the first Size entries
	Note   []byte    // the complete signed note; nil for the zero Checkpoint
}

// errUntrusted reports a note without a signature by a trusted key.
var errUntrusted = errors.New("no signature by a trusted key")

// emptyTreeHash returns the RFC 6962 hash of the empty tree.
func emptyTreeHash() tlog.Hash {
	h, _ := tlog.TreeHash(0, nil)
	return h
}

// checkpointText returns the note text of a checkpoint.
func checkpointText(origin string, size int64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// signCheckpoint signs the tree head with signer.
func signCheckpoint(origin string, size int64, root tlog.Hash, signer note.Signer) (Checkpoint, error) {
	signed, err := note.Sign(&note.Note{Text: checkpointText(origin, size, root)}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	if len(signed) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: signed checkpoint is %d bytes, limit %d", ErrBadCheckpoint, len(signed), MaxCheckpointSize)
	}
	return Checkpoint{Origin: origin, Size: size, Hash: root, Note: signed}, nil
}

// ParseCheckpoint parses and verifies a signed checkpoint. It refuses,
// with an error wrapping ErrBadCheckpoint: notes over MaxCheckpointSize
// bytes, notes without a valid signature by one of verifiers (a signature
// by a known key that does not verify is refused even if another one
// does), and any text other than exactly three lines: an origin of 1..255
// printable ASCII bytes without spaces, a decimal size without sign or
// leading zeros, and the canonical padded base64 of a 32-byte root.
// Signatures by unknown keys (for example witness cosignatures) are
// allowed alongside a trusted one.
func ParseCheckpoint(signed []byte, verifiers note.Verifiers) (Checkpoint, error) {
	if len(signed) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrBadCheckpoint, len(signed), MaxCheckpointSize)
	}
	if verifiers == nil {
		return Checkpoint{}, fmt.Errorf("%w: no verifiers", ErrBadCheckpoint)
	}
	n, err := note.Open(signed, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, errUntrusted)
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
		default:
			return Checkpoint{}, fmt.Errorf("%w: note: %w", ErrBadCheckpoint, err)
		}
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.Note = bytes.Clone(signed)
	return cp, nil
}

// parseCheckpointText parses the three-line checkpoint body.
func parseCheckpointText(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: text does not end in a newline", ErrBadCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 {
		return Checkpoint{}, fmt.Errorf("%w: text has %d lines, want 3 (origin, size, root)", ErrBadCheckpoint, len(lines))
	}
	if err := checkOrigin(lines[0]); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return Checkpoint{}, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != lines[2] {
		return Checkpoint{}, fmt.Errorf("%w: root %q is not the base64 of %d bytes", ErrBadCheckpoint, truncate(lines[2], 64), tlog.HashSize)
	}
	var h tlog.Hash
	copy(h[:], raw)
	if size == 0 && h != emptyTreeHash() {
		return Checkpoint{}, fmt.Errorf("%w: size 0 with a root other than the empty tree's", ErrBadCheckpoint)
	}
	return Checkpoint{Origin: lines[0], Size: size, Hash: h}, nil
}

// parseSize parses a canonical non-negative decimal int64.
func parseSize(s string) (int64, error) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: size %q is not a canonical decimal", ErrBadCheckpoint, truncate(s, 32))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: size %q is not a canonical decimal", ErrBadCheckpoint, truncate(s, 32))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q out of range", ErrBadCheckpoint, s)
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// VerifyInclusion checks that proof shows entry at index in the tree that
// cp signs. It returns nil or an error wrapping ErrBadProof. cp must come
// from ParseCheckpoint (or a Log): VerifyInclusion does not check its
// signature.
func VerifyInclusion(cp Checkpoint, index int64, entry []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= cp.Size {
		return fmt.Errorf("%w: index %d outside the tree of size %d", ErrBadProof, index, cp.Size)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("%w: entry %d is not in the tree of size %d with root %s: %w", ErrBadProof, index, cp.Size, cp.Hash, err)
	}
	return nil
}

// VerifyConsistency checks that proof shows the tree signed by old to be
// a prefix of the tree signed by new. Both must come from ParseCheckpoint
// (signatures are not checked here). It returns nil, or an error wrapping:
// ErrForeign if the origins differ; ErrRollback if new is smaller than
// old; ErrFork if the sizes are equal and the roots differ; ErrBadProof if
// the proof does not verify.
func VerifyConsistency(old, new Checkpoint, proof tlog.TreeProof) error {
	if old.Origin != new.Origin {
		return fmt.Errorf("%w: origin %q, then %q", ErrForeign, old.Origin, new.Origin)
	}
	switch {
	case new.Size < old.Size:
		return fmt.Errorf("%w: checkpoint of size %d after one of size %d", ErrRollback, new.Size, old.Size)
	case new.Size == old.Size:
		if new.Hash != old.Hash {
			return fmt.Errorf("%w: two checkpoints of size %d with roots %s and %s", ErrFork, old.Size, old.Hash, new.Hash)
		}
		if len(proof) != 0 {
			return fmt.Errorf("%w: non-empty proof between trees of equal size", ErrBadProof)
		}
		return nil
	case old.Size == 0:
		if len(proof) != 0 {
			return fmt.Errorf("%w: non-empty proof from the empty tree", ErrBadProof)
		}
		return nil
	}
	if err := tlog.CheckTree(proof, new.Size, new.Hash, old.Size, old.Hash); err != nil {
		return fmt.Errorf("%w: tree of size %d (root %s) is not a prefix of tree of size %d (root %s): %w",
			ErrBadProof, old.Size, old.Hash, new.Size, new.Hash, err)
	}
	return nil
}
