//go:build unix

package ledger

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking advisory lock on f. The kernel
// releases it when the process dies, so a crash never leaves it behind.
func lockFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		return err
	}
	if lerr == syscall.EWOULDBLOCK {
		return fmt.Errorf("%w: %s is open for writing elsewhere", ErrLocked, f.Name())
	}
	return lerr
}
