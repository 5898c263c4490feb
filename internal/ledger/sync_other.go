//go:build !linux

package ledger

import "os"

// datasync flushes f to stable storage. Outside Linux it is a full fsync.
func datasync(f *os.File) error { return f.Sync() }
