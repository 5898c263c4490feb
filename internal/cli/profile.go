package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"taxlink/internal/fsutil"
	"taxlink/internal/pause"
)

// profiles are the pprof profiles a long-running role (hub, node) writes
// for its operator: CPU from its start until it is told to stop, and the
// heap as it was when the live heap was largest, which is what explains
// the process's peak memory. Profiles hold code locations and sizes, never
// data.
type profiles struct {
	cpu, mem string
	// every is how often the live heap is compared with its largest size
	// so far (default a second).
	every time.Duration
}

func (p *profiles) flags(f *pflag.FlagSet) {
	f.StringVar(&p.cpu, "cpuprofile", "", "write a pprof CPU profile of this process, from its start until it is told to stop, to `FILE`")
	f.StringVar(&p.mem, "memprofile", "", "write a pprof profile of the heap at its largest live size (checked each second and at the stop) to `FILE`")
}

// liveHeap is the runtime metric of the heap the last collection found in
// use.
const liveHeap = "/gc/heap/live:bytes"

// start starts the CPU profile and the heap watch, if asked for, and
// returns what writes the profiles at the stop; the files are created at
// once, so a path that cannot be written fails the start, not the stop.
func (p *profiles) start() (stop func() error, err error) {
	var cpu *os.File
	if p.mem != "" {
		f, err := os.Create(p.mem)
		if err != nil {
			return nil, fmt.Errorf("memprofile: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("memprofile: %w", err)
		}
	}
	if p.cpu != "" {
		if cpu, err = os.Create(p.cpu); err != nil {
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			_ = cpu.Close()
			return nil, fmt.Errorf("cpuprofile: %w", err)
		}
	}
	var watch sync.WaitGroup
	heap := &heapWatch{path: p.mem}
	ctx, cancel := context.WithCancel(context.Background())
	if p.mem != "" {
		every := cmp.Or(p.every, time.Second)
		watch.Go(func() {
			for pause.For(ctx, every) {
				heap.check()
			}
		})
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		cancel()
		watch.Wait()
		if p.mem != "" {
			runtime.GC() // the heap in use now, not what the last cycle left
			heap.check()
			errs = append(errs, heap.err)
		}
		return errors.Join(errs...)
	}, nil
}

// heapWatch keeps the heap profile of the largest live heap seen.
type heapWatch struct {
	path string
	peak uint64 // the live heap of the profile at path
	err  error  // the first failure to write it
}

// check reads the live heap (what the last collection found in use) and
// observes it.
func (w *heapWatch) check() {
	s := []metrics.Sample{{Name: liveHeap}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		w.observe(s[0].Value.Uint64())
	}
}

// observe writes the heap profile when live, the live heap now, is a
// tenth larger than any seen before (not on every small growth); it
// reports whether it wrote.
func (w *heapWatch) observe(live uint64) bool {
	if live <= w.peak+w.peak/10 {
		return false
	}
	w.peak = live
	if err := writeHeap(w.path); err != nil {
		w.err = cmp.Or(w.err, err)
		return false
	}
	return true
}

// writeHeap replaces the file at path with the heap profile, whole.
func writeHeap(path string) error {
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	return nil
}
