package keystore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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
