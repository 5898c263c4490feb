package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"taxlink/internal/fsutil"
)

// A Witness is what a node keeps to hold the hub to its log: the last
// checkpoint it has seen, persisted in a file. Each new checkpoint must
// extend it (a consistency proof), so the hub cannot roll the log back or
// show different nodes different histories without being caught.
// A Witness is safe for concurrent use.
type Witness struct {
	path      string
	verifiers note.Verifiers

	mu     sync.Mutex
	latest Checkpoint // zero until the first Observe
}

// NewWitness returns a Witness persisted at path, loading the checkpoint
// stored there if the file exists. The stored checkpoint is checked with
// verifiers; a file that does not parse is an error wrapping ErrCorrupt.
func NewWitness(path string, verifiers note.Verifiers) (*Witness, error) {
	if verifiers == nil {
		return nil, errors.New("ledger: witness: no verifiers")
	}
	w := &Witness{path: path, verifiers: verifiers}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return w, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: witness: %w", err)
	}
	cp, err := ParseCheckpoint(data, verifiers)
	if err != nil {
		return nil, fmt.Errorf("%w: witness file %s: %w", ErrCorrupt, path, err)
	}
	w.latest = cp
	return w, nil
}

// Latest returns the last checkpoint observed, and false if none was.
func (w *Witness) Latest() (Checkpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest, w.latest.Note != nil
}

// Observe checks cp against the last checkpoint seen and stores it
// (atomically, fsync'd) if it extends it. cp.Note is parsed again with
// the witness's verifiers and must match cp's fields (ErrBadCheckpoint
// otherwise). proof is the consistency proof from the stored checkpoint's
// size to cp's (Log.ConsistencyProof). Errors: ErrForeign for another
// origin; ErrRollback for a smaller size; ErrFork for the same size with
// another root, or a proof that fails (also wrapping ErrBadProof). The
// first checkpoint observed is trusted as is. Observing the stored
// checkpoint again is a no-op.
func (w *Witness) Observe(cp Checkpoint, proof tlog.TreeProof) error {
	parsed, err := ParseCheckpoint(cp.Note, w.verifiers)
	if err != nil {
		return fmt.Errorf("ledger: witness: %w", err)
	}
	if parsed.Origin != cp.Origin || parsed.Size != cp.Size || parsed.Hash != cp.Hash {
		return fmt.Errorf("%w: witness: checkpoint fields do not match its signed note", ErrBadCheckpoint)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latest.Note != nil {
		err := VerifyConsistency(w.latest, parsed, proof)
		if errors.Is(err, ErrBadProof) {
			return &multiError{
				msg:  fmt.Sprintf("ledger: witness: fork: checkpoint of size %d does not extend the one of size %d seen before: %v", parsed.Size, w.latest.Size, err),
				errs: []error{ErrFork, ErrBadProof},
			}
		}
		if err != nil {
			return fmt.Errorf("ledger: witness: %w", err)
		}
		if parsed.Size == w.latest.Size {
			return nil
		}
	}
	if err := fsutil.WriteFileAtomic(w.path, parsed.Note, 0o600); err != nil {
		return fmt.Errorf("ledger: witness: store checkpoint: %w", err)
	}
	w.latest = parsed
	return nil
}
