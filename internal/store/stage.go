package store

import (
	"fmt"
	"io"
	"math"
	"os"
)

// Staged is a ciphertext read to its end before the transaction that
// stores it begins, so that a slow sender never holds a database lock: in
// Mem when it is smaller than the implementation's chunk size, else in the
// unlinked spool file File, positioned at its start.
type Staged struct {
	Mem  []byte
	File *os.File
	Size int64
	name string // File's name while it could not be unlinked yet
}

// Close releases the spool file.
func (st *Staged) Close() {
	if st.File != nil {
		st.File.Close()
	}
	if st.name != "" {
		os.Remove(st.name)
	}
}

// Rewind positions the spool file at its start again (for a retried
// transaction).
func (st *Staged) Rewind() error {
	if st.File == nil {
		return nil
	}
	_, err := st.File.Seek(0, io.SeekStart)
	return err
}

// readErrors remembers the error, other than io.EOF, its reader returned,
// so that a failing reader is told apart from a failing spool file.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Stage reads rec's ciphertext from r to its end, or to
// rec.CiphertextSize+1 bytes, whichever comes first: in memory below
// memBelow bytes, else into a spool file in spoolDir. It fails with the
// read error wrapped (so that a verifying reader aborts the recording) or
// with ErrSizeMismatch; errors start with who (the implementation).
func Stage(who string, rec Record, r io.Reader, memBelow int, spoolDir string) (*Staged, error) {
	want := rec.CiphertextSize
	limit := want
	if limit < math.MaxInt64 {
		limit++ // one byte more reveals a ciphertext that is too long
	}
	src := &readErrors{r: io.LimitReader(r, limit)}
	mismatch := func(n int64) error {
		more := ""
		if n == limit && limit > want {
			more = " or more"
		}
		return fmt.Errorf("%s: record %s: %w: read %d%s bytes, header says %d", who, rec.ID, ErrSizeMismatch, n, more, want)
	}

	if want < int64(memBelow) {
		buf := make([]byte, limit)
		n, err := io.ReadFull(src, buf)
		if src.err != nil {
			return nil, fmt.Errorf("%s: record %s: reading the ciphertext: %w", who, rec.ID, src.err)
		}
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, fmt.Errorf("%s: record %s: reading the ciphertext: %w", who, rec.ID, err)
		}
		if int64(n) != want {
			return nil, mismatch(int64(n))
		}
		return &Staged{Mem: buf[:n], Size: want}, nil
	}

	f, err := os.CreateTemp(spoolDir, ".taxlink-spool-*")
	if err != nil {
		return nil, fmt.Errorf("%s: record %s: creating a spool file: %w", who, rec.ID, err)
	}
	st := &Staged{File: f, Size: want}
	if err := os.Remove(f.Name()); err != nil {
		st.name = f.Name() // an open file cannot be unlinked here (Windows)
	}
	n, err := io.Copy(f, src)
	switch {
	case src.err != nil:
		st.Close()
		return nil, fmt.Errorf("%s: record %s: reading the ciphertext: %w", who, rec.ID, src.err)
	case err != nil:
		st.Close()
		return nil, fmt.Errorf("%s: record %s: spooling the ciphertext: %w", who, rec.ID, err)
	case n != want:
		st.Close()
		return nil, mismatch(n)
	}
	if err := st.Rewind(); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: record %s: rewinding the spool file: %w", who, rec.ID, err)
	}
	return st, nil
}
