package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/pflag"
)

// profiles are the pprof profiles a long-running role (hub, node) writes
// for its operator: CPU from its start until it is told to stop, and the
// heap in use at that moment, before the stop frees it. Profiles hold code
// locations and sizes, never data.
type profiles struct {
	cpu, mem string
}

func (p *profiles) flags(f *pflag.FlagSet) {
	f.StringVar(&p.cpu, "cpuprofile", "", "write a pprof CPU profile of this process, from its start until it is told to stop, to `FILE`")
	f.StringVar(&p.mem, "memprofile", "", "write a pprof profile of the heap in use when this process is told to stop to `FILE`")
}

// start starts the CPU profile, if asked for, and returns what writes the
// profiles at the stop; the files are created at once, so a path that
// cannot be written fails the start, not the stop.
func (p *profiles) start() (stop func() error, err error) {
	var cpu, mem *os.File
	closeAll := func() {
		for _, f := range []*os.File{cpu, mem} {
			if f != nil {
				_ = f.Close()
			}
		}
	}
	if p.mem != "" {
		if mem, err = os.Create(p.mem); err != nil {
			return nil, fmt.Errorf("memprofile: %w", err)
		}
	}
	if p.cpu != "" {
		if cpu, err = os.Create(p.cpu); err != nil {
			closeAll()
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			closeAll()
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if mem != nil {
			runtime.GC() // the heap in use, not what the last cycle left
			if err := pprof.Lookup("heap").WriteTo(mem, 0); err != nil {
				errs = append(errs, fmt.Errorf("memprofile: %w", err))
			}
			errs = append(errs, mem.Close())
		}
		return errors.Join(errs...)
	}, nil
}
