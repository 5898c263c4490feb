//go:build !unix

package ledger

import "os"

// lockFile is a no-op where flock(2) does not exist: only one process may
// open a directory for writing, and nothing checks it.
func lockFile(f *os.File) error { return nil }
