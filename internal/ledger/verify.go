package ledger

import (
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// A Report is the result of VerifyDir.
type Report struct {
	Dir         string     // the directory checked
	Origin      string     // the log's origin (empty if the headers are unreadable)
	LogID       string     // the log's identity, hex (empty if the headers are unreadable)
	Entries     int64      // valid entries
	Checkpoints int        // valid checkpoints
	Latest      Checkpoint // the last valid checkpoint (zero if none)
	// Problems lists every defect found, entries first, then hashes,
	// checkpoints and the head. Any problem makes the directory corrupt.
	Problems []Problem
	// Recoverable lists what a crash left behind and Open would repair
	// (torn tails, missing hash slots after the last checkpoint, an
	// interrupted head update). It is not evidence of tampering.
	Recoverable []Problem
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// VerifyDir checks a log directory offline, read only (nothing is trimmed
// or repaired): every record's framing and CRC, every stored hash against
// the tree rebuilt from the entries, every checkpoint's signature (with
// verifiers), origin and root, that checkpoints strictly increase, and
// that the head names the last checkpoint. An edited byte, a deleted
// record, reordered records, a truncated file, a dropped or forged
// checkpoint, and a file from another log each give a distinct Problem
// kind and message naming the file, the record and the byte offset.
//
// The error is nil when Report.Problems is empty. Otherwise it wraps
// ErrCorrupt (and ErrForeign when the first problem is a foreign file),
// and its message is the first problem. I/O errors (for example an
// unreadable directory) are returned as they are, with an empty Report.
// VerifyDir may run while a Log appends to dir; it then sees a prefix of
// the log and possibly a torn tail.
func VerifyDir(dir string, verifiers note.Verifiers) (Report, error) {
	rep := Report{Dir: dir}
	if verifiers == nil {
		verifiers = note.VerifierList()
	}
	scan, err := scanDir(dir, scanOptions{verifiers: verifiers})
	if err != nil {
		return rep, err
	}
	if scan.hdr.kind != "" {
		rep.Origin = scan.hdr.origin
		rep.LogID = hexID(scan.hdr.logID)
	}
	rep.Entries = scan.entries
	rep.Checkpoints = len(scan.cps)
	rep.Latest = scan.latest()
	rep.Problems = scan.problems
	rep.Recoverable = scan.recoverable
	if len(rep.Problems) > 0 {
		return rep, &problemsError{problems: rep.Problems}
	}
	return rep, nil
}

func hexID(id [logIDLen]byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*logIDLen)
	for _, b := range id {
		out = append(out, digits[b>>4], digits[b&15])
	}
	return string(out)
}

// String formats the report for operators: a summary line, then one line
// per problem and per recoverable leftover.
func (r Report) String() string {
	var b strings.Builder
	status := "OK"
	if !r.OK() {
		status = fmt.Sprintf("CORRUPT (%d problems)", len(r.Problems))
	}
	fmt.Fprintf(&b, "%s: %s: origin %q, log %s, %d entries, %d checkpoints", r.Dir, status, r.Origin, r.LogID, r.Entries, r.Checkpoints)
	if r.Latest.Note != nil {
		fmt.Fprintf(&b, ", latest checkpoint size %d root %s", r.Latest.Size, r.Latest.Hash)
	}
	b.WriteString("\n")
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem (%s): %s\n", p.Kind, p)
	}
	for _, p := range r.Recoverable {
		fmt.Fprintf(&b, "  recoverable (%s): %s\n", p.Kind, p)
	}
	return b.String()
}
