package standard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"taxlink/internal/fsutil"
)

// AttestationsFile is the name of the attestation store in a hub's or
// node's data directory.
const AttestationsFile = "attestations.jsonl"

// Limits of an attestation.
const (
	// MaxStatementLen bounds Attestation.Statement in bytes.
	MaxStatementLen = 1000
	// MaxValidity bounds how long an attestation stays in force.
	MaxValidity = 3 * 366 * 24 * time.Hour
	// maxStoreSize bounds the attestation file read by
	// OpenFileAttestations.
	maxStoreSize = 16 << 20
)

// ErrInvalidAttestation is wrapped by the errors of Attestation.Validate.
var ErrInvalidAttestation = errors.New("standard: invalid attestation")

// Attestation is an operator's dated statement that the organisational
// measures an item asks for are in place. It holds no personal data
// beyond the attesting operator's ID.
type Attestation struct {
	// Item is the catalogue ID of an item of kind AttestationKind.
	Item string `json:"item"`
	// AttestedBy is the operator ID of who attests (as in the console:
	// a lower-case letter, then 1..31 of a-z, 0-9, '.', '_', '-').
	AttestedBy string `json:"attested_by"`
	// Statement says what is in place and where the evidence is (a
	// document, a date, a drill report), 1..MaxStatementLen bytes of
	// printable text on one line.
	Statement string `json:"statement"`
	// Date is when the attestation was made.
	Date time.Time `json:"date"`
	// Expires is when it stops being in force: after Date, at most
	// MaxValidity later.
	Expires time.Time `json:"expires"`
}

var operatorIDRe = regexp.MustCompile(`^[a-z][a-z0-9._-]{1,31}$`)

// Validate checks a against its rules: an item of kind AttestationKind
// (an automated item can never be attested), an operator ID, a printable
// one-line statement, and Date < Expires <= Date+MaxValidity. It returns
// nil or an error wrapping ErrInvalidAttestation that names the field.
func (a Attestation) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidAttestation, field, fmt.Sprintf(format, args...))
	}
	it, ok := Lookup(a.Item)
	switch {
	case !ok:
		return bad("item", "%q is not an item of the catalogue", a.Item)
	case it.ID != a.Item:
		return bad("item", "%q: write the catalogue ID %s", a.Item, it.ID)
	case it.Kind != AttestationKind:
		return bad("item", "%s is checked automatically and cannot be attested", it.ID)
	}
	if !operatorIDRe.MatchString(a.AttestedBy) {
		return bad("attested_by", "%q is not an operator ID (a-z first, then 1..31 of a-z 0-9 . _ -)", a.AttestedBy)
	}
	s := a.Statement
	if strings.TrimSpace(s) == "" {
		return bad("statement", "empty: say what is in place and where the evidence is")
	}
	if len(s) > MaxStatementLen || !utf8.ValidString(s) {
		return bad("statement", "expected at most %d bytes of UTF-8 text", MaxStatementLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return bad("statement", "control or formatting character %U", r)
		}
	}
	if a.Date.IsZero() {
		return bad("date", "missing")
	}
	if !a.Expires.After(a.Date) {
		return bad("expires", "must be after the date")
	}
	if a.Expires.Sub(a.Date) > MaxValidity {
		return bad("expires", "more than %d days after the date", MaxValidity/(24*time.Hour))
	}
	return nil
}

// InForce reports whether a is in force at now: Date <= now < Expires.
func (a Attestation) InForce(now time.Time) bool {
	return !now.Before(a.Date) && now.Before(a.Expires)
}

// Attestations is where attestations are kept.
type Attestations interface {
	// Add validates a and records it durably; a later attestation of the
	// same item does not remove an earlier one.
	Add(a Attestation) error
	// Current returns the attestation of item id in force at now (of
	// several, the one made last), and whether there is one.
	Current(id string, now time.Time) (Attestation, bool)
}

// FileAttestations keeps attestations in a JSON-lines file, one record
// per line, appended and fsync'd one at a time: an attestation is never
// rewritten or removed, so the file is the history of every attestation
// made. It is safe for concurrent use within one process; records
// appended by another process are seen by the next OpenFileAttestations.
type FileAttestations struct {
	path string
	mu   sync.Mutex
	all  []Attestation
}

// OpenFileAttestations reads the store at path (a missing file is an
// empty store; it is created by the first Add, with its directory). A
// final line without a newline (an append cut short by a crash) is
// ignored; any other malformed or invalid line is an error naming its
// line number.
func OpenFileAttestations(path string) (*FileAttestations, error) {
	s := &FileAttestations{path: path}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("selfcheck: attestations: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStoreSize+1))
	if err != nil {
		return nil, fmt.Errorf("selfcheck: attestations %s: %w", path, err)
	}
	if len(b) > maxStoreSize {
		return nil, fmt.Errorf("selfcheck: attestations %s: larger than %d bytes", path, maxStoreSize)
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		b = b[:i+1] // torn tail
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxStoreSize)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var a Attestation
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("selfcheck: attestations %s: line %d: %v", path, n, err)
		}
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("selfcheck: attestations %s: line %d: %w", path, n, err)
		}
		s.all = append(s.all, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("selfcheck: attestations %s: %w", path, err)
	}
	return s, nil
}

// Path returns the file of the store.
func (s *FileAttestations) Path() string { return s.path }

// Add validates a, appends it to the file as one line and fsyncs the file
// (and, when it creates the file, its directory) before returning.
func (s *FileAttestations) Add(a Attestation) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.Date, a.Expires = a.Date.UTC(), a.Expires.UTC()
	line, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("selfcheck: attestation: %w", err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("selfcheck: attestations: %w", err)
	}
	_, statErr := os.Stat(s.path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("selfcheck: attestations: %w", err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("selfcheck: attestations %s: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("selfcheck: attestations %s: %w", s.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("selfcheck: attestations %s: %w", s.path, err)
	}
	if created {
		if err := fsutil.SyncDir(dir); err != nil {
			return fmt.Errorf("selfcheck: attestations: %w", err)
		}
	}
	s.all = append(s.all, a)
	return nil
}

// List returns every attestation of the store, in the order made.
func (s *FileAttestations) List() []Attestation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// Current returns the attestation of item id in force at now, the one
// made last when several are; id may be given in the ASCII short form.
func (s *FileAttestations) Current(id string, now time.Time) (Attestation, bool) {
	if it, ok := Lookup(id); ok {
		id = it.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var best Attestation
	found := false
	for _, a := range s.all {
		if a.Item == id && a.InForce(now) && (!found || !a.Date.Before(best.Date)) {
			best, found = a, true
		}
	}
	return best, found
}

// LastOf returns the most recent attestation of id in the store, in force
// or not, when the store can list its attestations.
func LastOf(st Attestations, id string) (Attestation, bool) {
	l, ok := st.(interface{ List() []Attestation })
	if !ok {
		return Attestation{}, false
	}
	var best Attestation
	found := false
	for _, a := range l.List() {
		if a.Item == id && (!found || !a.Date.Before(best.Date)) {
			best, found = a, true
		}
	}
	return best, found
}
