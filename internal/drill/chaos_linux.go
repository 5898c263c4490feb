//go:build linux

package drill

import (
	"fmt"
	"os"
	"syscall"
)

// pauseSupported says whether this platform can stop and continue a
// process (SIGSTOP, SIGCONT).
const pauseSupported = true

// chaosProcAttr makes every process the chaos drill starts die with the
// drill (SIGKILL when the drill's process goes away), so that an
// interrupted drill leaves nothing running.
func chaosProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// mountTmpfs mounts a tmpfs of size bytes on dir (root only).
func mountTmpfs(dir string, size int64) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// unmount unmounts what mountTmpfs mounted on dir.
func unmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// pauseProcess stops p (SIGSTOP) until resumeProcess.
func pauseProcess(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// resumeProcess continues p (SIGCONT).
func resumeProcess(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
