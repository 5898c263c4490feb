package keystore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFileMode is the mode of the files WriteEncrypted writes. Files read by
// this package (key files, passphrase and PIN files) must not grant any
// access to group or others (no bit of 0o077); 0600 and 0400 are accepted.
const KeyFileMode fs.FileMode = 0o600

// maxKeyFileSize bounds every file this package reads. An encrypted
// ML-KEM sealing key is under 1 KiB; nothing legitimate comes close.
const maxKeyFileSize = 64 << 10

// readPrivateFile reads a whole secret file after checking, on the opened
// file, that it is a regular file without group/other access. what names
// the file's role in error messages ("key file", "passphrase file"). The
// caller owns (and should clear) the returned bytes.
func readPrivateFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s %s: %w", ErrNotFound, what, path, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s %s is not a regular file (mode %v)", ErrKeyFilePermissions, what, path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s %s has mode %#o, want no group/other access (e.g. %#o)", ErrKeyFilePermissions, what, path, perm, KeyFileMode)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(data) > maxKeyFileSize {
		clear(data)
		return nil, fmt.Errorf("%w: %s %s is larger than %d bytes", ErrMalformed, what, path, maxKeyFileSize)
	}
	return data, nil
}

// writeFileAtomic writes data to path with mode perm: a temporary file in
// the same directory is created, chmod-ed, written, fsynced and closed,
// then renamed over path, and the directory is fsynced. An existing file at
// path is replaced. On failure the temporary file is removed and path is
// left untouched.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
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
	// CreateTemp already uses 0600; Chmod (not subject to the umask) makes
	// the mode exactly perm before any byte is written.
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
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: open directory for fsync: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: fsync directory: %w", path, err)
	}
	return nil
}
