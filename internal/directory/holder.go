package directory

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"taxlink/internal/fsutil"
)

// ErrRollback: a directory older than the one in force was offered.
var ErrRollback = errors.New("directory: older than the version in force")

// Holder keeps the directory in force for a process and its last good copy
// on disk. Every update is verified with the directory key, must be for the
// holder's environment and must not be older than the version in force; a
// newer one is written to disk (atomically, fsync'd) before it takes
// effect, so that a restart while the hub is unreachable starts from it.
type Holder struct {
	path string
	key  *ecdsa.PublicKey
	env  string

	mu  sync.Mutex // serializes updates
	cur atomic.Pointer[held]
}

type held struct {
	dir  *Directory
	doc  []byte
	etag string
}

// ETag is the HTTP entity tag of a signed directory document: a digest of
// its bytes, quoted. A node sends the tag of the directory it holds, and
// the hub answers 304 Not Modified instead of the document (megabytes for
// 1,788 local governments) while it is the one in force.
func ETag(doc []byte) string {
	sum := sha256.Sum256(doc)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// NewHolder loads the signed directory at path.
func NewHolder(path string, key *ecdsa.PublicKey, env string) (*Holder, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	d, err := Verify(doc, key, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h := &Holder{path: path, key: key, env: env}
	h.cur.Store(&held{d, doc, ETag(doc)})
	return h, nil
}

// Get returns the directory in force.
func (h *Holder) Get() *Directory { return h.cur.Load().dir }

// Signed returns the signed document of the directory in force.
func (h *Holder) Signed() []byte { return h.cur.Load().doc }

// ETag returns the entity tag of the directory in force (see ETag).
func (h *Holder) ETag() string { return h.cur.Load().etag }

// Update verifies doc and puts it in force if it is newer. It returns true
// when the version changed, false when doc is the version in force, and
// ErrRollback for an older one; a document with the same version but other
// content is refused too.
func (h *Holder) Update(doc []byte) (bool, error) {
	if bytes.Equal(doc, h.cur.Load().doc) {
		// The very bytes in force were verified when they took effect.
		return false, nil
	}
	d, err := Verify(doc, h.key, h.env)
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.cur.Load()
	switch {
	case d.Version < cur.dir.Version:
		return false, fmt.Errorf("%w: offered version %d, in force %d", ErrRollback, d.Version, cur.dir.Version)
	case d.Version == cur.dir.Version:
		if string(doc) != string(cur.doc) {
			return false, fmt.Errorf("%w: version %d offered with other content than the one in force", ErrInvalid, d.Version)
		}
		return false, nil
	}
	if err := fsutil.WriteFileAtomic(h.path, doc, 0o644); err != nil {
		return false, fmt.Errorf("directory: keep last good copy: %w", err)
	}
	h.cur.Store(&held{d, doc, ETag(doc)})
	return true, nil
}
