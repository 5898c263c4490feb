//go:build !linux

package drill

import (
	"errors"
	"os"
	"syscall"
)

// pauseSupported says whether this platform can stop and continue a
// process; the pause fault is left out where it cannot.
const pauseSupported = false

// chaosProcAttr returns no special attributes outside Linux.
func chaosProcAttr() *syscall.SysProcAttr { return nil }

// mountTmpfs is not supported outside Linux: the disk-full fault falls
// back to the node's disk-low refusal.
func mountTmpfs(string, int64) error { return errors.ErrUnsupported }

func unmount(string) error { return errors.ErrUnsupported }

func pauseProcess(*os.Process) error { return errors.ErrUnsupported }

func resumeProcess(*os.Process) error { return errors.ErrUnsupported }
