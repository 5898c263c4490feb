// Package fsutil writes files so that a crash leaves either the old or the
// new content, never a mix: the one way every taxlink package replaces a
// key, a certificate, a directory or a checkpoint on disk, creates a file
// that must be whole on disk before it is used (CreateSynced), and syncs a
// directory (SyncDir).
package fsutil

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data, with mode exactly perm: a
// temporary file in the same directory is created, chmod-ed (before any
// byte is written), written, fsynced and closed, renamed over path, and
// the directory is fsynced. On failure the temporary file is removed and
// path is left untouched.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("%s: no file name", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: create temporary file: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	// Chmod is not subject to the umask, so the mode is exactly perm.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("%s: chmod temporary file: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("%s: write temporary file: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: fsync temporary file: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: close temporary file: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("%s: rename into place: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that creations and renames in it are
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// CreateSynced creates path, which must not exist, with mode perm, writes
// it with fill, and syncs and closes it; on any failure the file is
// removed. The directory entry is not synced: a caller that needs the
// file to survive a crash calls SyncDir once its files are written.
func CreateSynced(path string, perm fs.FileMode, fill func(io.Writer) error) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}
