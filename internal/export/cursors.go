package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"taxlink/internal/fsutil"
)

// maxCursorFile bounds a cursor file read back; a real one is tens of bytes.
const maxCursorFile = 4 << 10

// cursorNameRE admits the names of clients ([a-z0-9-]) and the dotted
// names of drops ("drop.<name>", "drop.<name>.written").
var cursorNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,127}$`)

// Cursors keeps each client's acknowledged position (a store Seq) durably:
// one small JSON file per cursor, <dir>/<name>.json, replaced atomically
// (fsutil.WriteFileAtomic, mode 0600) on every change. A cursor never set
// is 0. Cursors is safe for concurrent use within one process; the
// directory must not be shared by two processes.
//
// API clients use their [Client].Name as the cursor name; a [Drop] named n
// uses "drop."+n and "drop."+n+".written", which cannot collide with a
// client name.
type Cursors struct {
	dir string
	mu  sync.Mutex
}

// cursorFile is the content of a cursor file.
type cursorFile struct {
	Name string `json:"name"`
	Seq  int64  `json:"seq"`
}

// OpenCursors opens the cursor directory dir, creating it (mode 0700) if
// it does not exist. It fails if dir is not a directory.
func OpenCursors(dir string) (*Cursors, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty cursor directory", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export: cursor directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("export: cursor directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: cursor directory %s is not a directory", ErrInvalid, dir)
	}
	return &Cursors{dir: dir}, nil
}

func validCursorName(name string) error {
	if !cursorNameRE.MatchString(name) {
		return fmt.Errorf("%w: cursor name %q is not 1..128 characters of [a-z0-9.-] starting with [a-z0-9]", ErrInvalid, name)
	}
	return nil
}

func (c *Cursors) path(name string) string { return filepath.Join(c.dir, name+".json") }

// Get returns the acknowledged position of the named client, 0 when it
// was never set. It fails with [ErrInvalid] for an invalid name and with
// an error naming the file when the file cannot be read or is not a
// well-formed cursor of that name.
func (c *Cursors) Get(client string) (int64, error) {
	if err := validCursorName(client); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.get(client)
}

func (c *Cursors) get(name string) (int64, error) {
	p := c.path(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("export: cursor %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCursorFile+1))
	if err != nil {
		return 0, fmt.Errorf("export: cursor %s: %w", name, err)
	}
	if len(b) > maxCursorFile {
		return 0, fmt.Errorf("export: cursor file %s is too large", p)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cf cursorFile
	if err := dec.Decode(&cf); err != nil || dec.More() {
		return 0, fmt.Errorf("export: cursor file %s is not a cursor", p)
	}
	if cf.Name != name || cf.Seq < 0 {
		return 0, fmt.Errorf("export: cursor file %s holds cursor %q at %d, want %q at a non-negative Seq", p, cf.Name, cf.Seq, name)
	}
	return cf.Seq, nil
}

// Set durably moves the named client's position to seq. Setting the
// current value is a no-op; a value below it fails with [ErrCursor] and
// changes nothing, as does a negative seq or an invalid name
// ([ErrInvalid]). The check and the write are atomic with respect to other
// calls on c.
func (c *Cursors) Set(client string, seq int64) error {
	if err := validCursorName(client); err != nil {
		return err
	}
	if seq < 0 {
		return fmt.Errorf("%w: cursor %s: negative Seq %d", ErrInvalid, client, seq)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.get(client)
	if err != nil {
		return err
	}
	switch {
	case seq < cur:
		return fmt.Errorf("%w: %s is at %d, refused %d", ErrCursor, client, cur, seq)
	case seq == cur:
		return nil
	}
	b, err := json.Marshal(cursorFile{Name: client, Seq: seq})
	if err != nil {
		return fmt.Errorf("export: cursor %s: %w", client, err)
	}
	if err := fsutil.WriteFileAtomic(c.path(client), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("export: cursor %s: %w", client, err)
	}
	return nil
}
