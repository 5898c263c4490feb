// Package blob keeps the ciphertexts too large to travel inside a hub's
// queue entry. A Store writes each blob durably under a reference of its
// own before the entry that names the reference is written, so that an
// entry never names bytes a crash could take away.
//
// Two stores exist: Dir, one file per blob in a directory of the hub (a hub
// running alone), and the queue's chunks in JetStream (replicas of a
// cluster, which JetStream replicates). Both pass the blobtest suite.
package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"taxlink/internal/fsutil"
)

// ErrNotFound: no blob under that reference.
var ErrNotFound = errors.New("blob: not found")

// ErrBadRef: a reference that no Put of this store could have returned.
var ErrBadRef = errors.New("blob: malformed reference")

// Store holds blobs. Implementations are safe for concurrent use.
type Store interface {
	// Put stores everything r yields under a new reference made of key
	// (ValidKey) and a part of its own, and returns the reference once
	// the bytes are durable. Two Puts of one key never share a
	// reference. When r or the store fails, nothing is left and the
	// error is returned (wrapping r's).
	Put(ctx context.Context, key string, r io.Reader) (ref string, err error)
	// Open streams the blob stored under ref: ErrNotFound when there is
	// none, ErrBadRef when ref is not a reference of this store.
	Open(ctx context.Context, ref string) (io.ReadCloser, error)
	// Remove deletes the blob under ref; removing one that is not there
	// is not an error.
	Remove(ctx context.Context, ref string) error
}

// MaxKey is the longest key.
const MaxKey = 200

// ValidKey reports whether key can name blobs: 1 to MaxKey characters,
// dot-separated non-empty parts of ASCII letters, digits, '_' and '-'
// (safe both as a file name and as JetStream subject tokens).
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKey {
		return fmt.Errorf("blob: key of %d characters (1 to %d)", len(key), MaxKey)
	}
	for part := range strings.SplitSeq(key, ".") {
		if part == "" {
			return fmt.Errorf("blob: key %q has an empty part", key)
		}
		for _, c := range []byte(part) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("blob: key %q holds %q", key, c)
			}
		}
	}
	return nil
}

// Unique returns key with a random part appended: the name of one Put.
func Unique(key string) string {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand never fails
	return key + "." + hex.EncodeToString(nonce[:])
}

// Key returns the key a name made by Unique was made of, or ErrBadRef.
func Key(name string) (string, error) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 || len(name)-i-1 != 16 {
		return "", fmt.Errorf("%w: %q", ErrBadRef, name)
	}
	if _, err := hex.DecodeString(name[i+1:]); err != nil || strings.ToLower(name[i+1:]) != name[i+1:] {
		return "", fmt.Errorf("%w: %q", ErrBadRef, name)
	}
	if err := ValidKey(name[:i]); err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadRef, name)
	}
	return name[:i], nil
}

// Dir is a Store of one file per blob in a directory: a blob's bytes are
// written once and synced once, read back through the page cache, and
// never held whole in memory.
type Dir struct {
	path string
}

// NewDir returns the store in directory path, creating it (mode 0700).
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Dir{path: path}, nil
}

// Path returns the directory.
func (d *Dir) Path() string { return d.path }

// copyBuffer is the size of the buffer a Put copies through.
const copyBuffer = 256 << 10

// Put implements Store: the file and then the directory are synced before
// it returns.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	name := Unique(key)
	path := filepath.Join(d.path, name)
	// CreateSynced removes the file when writing it fails.
	err := fsutil.CreateSynced(path, 0o600, func(w io.Writer) error {
		_, err := io.CopyBuffer(w, ctxReader{ctx, r}, make([]byte, copyBuffer))
		return err
	})
	if err == nil {
		if err = fsutil.SyncDir(d.path); err != nil {
			_ = os.Remove(path)
		}
	}
	if err != nil {
		return "", fmt.Errorf("blob: store %s: %w", key, err)
	}
	return name, nil
}

// Open implements Store.
func (d *Dir) Open(_ context.Context, ref string) (io.ReadCloser, error) {
	if _, err := Key(ref); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.path, ref))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return f, nil
}

// Remove implements Store. The removal is not synced: a crash that undoes
// it leaves a file that Stale lists.
func (d *Dir) Remove(_ context.Context, ref string) error {
	if _, err := Key(ref); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(d.path, ref)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// Stale returns the references of the blobs last written before before,
// for a sweep of the blobs no entry names (a hub killed between a Put and
// its entry). Files of other names are left out; so are files removed
// while the directory is read.
func (d *Dir) Stale(before time.Time) ([]string, error) {
	var out []string
	err := d.each(func(name string, info fs.FileInfo) {
		if info.ModTime().Before(before) {
			out = append(out, name)
		}
	})
	return out, err
}

// Bytes returns the total size of the blobs in the directory.
func (d *Dir) Bytes() (int64, error) {
	var n int64
	err := d.each(func(_ string, info fs.FileInfo) { n += info.Size() })
	return n, err
}

// each calls f for every blob file of the directory; files of other names
// are left out, so are files removed while the directory is read.
func (d *Dir) each(f func(name string, info fs.FileInfo)) error {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	for _, e := range ents {
		if _, err := Key(e.Name()); err != nil || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			f(e.Name(), info)
		}
	}
	return nil
}

// ctxReader ends a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
