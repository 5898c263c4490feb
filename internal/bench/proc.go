package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) is
// not reachable without cgo).
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and memory.
type ProcSample struct {
	// CPUTicks is utime+stime in clock ticks (1/100 s).
	CPUTicks int64
	// RSSKiB and HWMKiB are VmRSS and VmHWM (peak RSS) in KiB.
	RSSKiB, HWMKiB int64
	// WriteBytes is what the process sent to storage so far
	// (/proc/PID/io: write_bytes less cancelled_write_bytes), -1 where
	// the kernel does not account it.
	WriteBytes int64
}

// CPUMicros returns the CPU time of s in microseconds.
func (s ProcSample) CPUMicros() float64 { return float64(s.CPUTicks) * 1e6 / clockTicks }

// ReadProc reads /proc/PID/stat and /proc/PID/status of pid (0: this
// process). It fails when the process is gone or /proc is not Linux's.
func ReadProc(pid int) (ProcSample, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return ProcSample{}, fmt.Errorf("bench: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ProcSample{}, fmt.Errorf("bench: /proc/%s/stat: unexpected format", p)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return ProcSample{}, fmt.Errorf("bench: /proc/%s/stat: too few fields", p)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ProcSample{}, fmt.Errorf("bench: /proc/%s/stat: bad utime/stime", p)
	}
	s := ProcSample{CPUTicks: ut + st}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return ProcSample{}, fmt.Errorf("bench: %w", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.RSSKiB
		case "VmHWM":
			dst = &s.HWMKiB
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return ProcSample{}, fmt.Errorf("bench: /proc/%s/status: %s: %w", p, k, err)
		}
		*dst = n
	}
	s.WriteBytes = readWriteBytes("/proc/" + p + "/io")
	return s, nil
}

// readWriteBytes returns write_bytes less cancelled_write_bytes of the
// /proc/PID/io file at path, or -1 if it cannot be read (a kernel without
// task I/O accounting).
func readWriteBytes(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var w, c int64 = -1, 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "write_bytes" && k != "cancelled_write_bytes") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return -1
		}
		if k == "write_bytes" {
			w = n
		} else {
			c = n
		}
	}
	if w < 0 {
		return -1
	}
	return w - c
}

// ResetPeakRSS resets VmHWM of pid (0: this process) to its current RSS by
// writing 5 to /proc/PID/clear_refs (Linux 4.0+), so that a later VmHWM is
// the peak of what came after.
func ResetPeakRSS(pid int) error {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	if err := os.WriteFile("/proc/"+p+"/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("bench: reset peak RSS: %w", err)
	}
	return nil
}
