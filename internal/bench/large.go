package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/node"
	"taxlink/internal/pki"
	"taxlink/internal/synth"
)

// runLarge is the large payload phase: opts.LargeCount PDFs of
// opts.LargeSize bytes (written beforehand with synth.WritePDF, streaming,
// so that generating them is not timed) submitted at once to different
// recipients, from the first submission to the last verified recording
// receipt; compared with one loopback mTLS stream measured just before.
// Each role's peak RSS is reset before and read after.
func runLarge(ctx context.Context, d *driver, lay *devnet.Layout, procs *running, dir string, opts Options) (*Large, error) {
	ld := filepath.Join(dir, "large")
	if err := os.MkdirAll(ld, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	d.logf("large: writing %d synthetic PDFs of %d MB", opts.LargeCount, opts.LargeSize/1_000_000)
	var paths []string
	var size int64
	for i := range opts.LargeCount {
		p := filepath.Join(ld, fmt.Sprintf("scan-%d.pdf", i))
		n, err := writePDF(p, opts.LargeSize, uint64(i+1))
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
		size = max(size, n)
	}

	ntaInfo, _ := lay.Node(devnet.NTAID)
	hubCert, err := devnet.TLSCert(lay, filepath.Dir(lay.HubConfig))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ntaCert, err := devnet.TLSCert(lay, filepath.Dir(ntaInfo.Config))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cas, err := pki.ReadCertFile(filepath.Join(lay.Dir, "pki", "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	roots := pki.CertPool(cas...)
	srv, err := pki.ServerConfig(hubCert, roots, devnet.Environment)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cli, err := pki.ClientConfig(ntaCert, roots, pki.Identity{Env: devnet.Environment, ID: devnet.HubID})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cli.ServerName = "127.0.0.1" // as the NTA node's HTTP client sets it from the hub's URL
	tlsRate, err := TLSStreamRate(ctx, srv, cli, min(max(opts.Calibrate, time.Second), 3*time.Second))
	if err != nil {
		return nil, err
	}
	d.logf("large: one loopback mTLS stream: %.0f MB/s", tlsRate/1e6)
	diskRate, err := DiskRate(ctx, dir, min(max(opts.Calibrate, time.Second), 3*time.Second))
	if err != nil {
		return nil, err
	}
	d.logf("large: D, sequential durable writes in %s: %.0f MB/s", dir, diskRate/1e6)

	debug.FreeOSMemory()
	if err := ResetPeakRSS(0); err != nil {
		d.logf("warning: %v", err)
	}
	for _, p := range procs.all() {
		if err := ResetPeakRSS(p.pid()); err != nil {
			d.logf("warning: %s %s: %v (its large-phase peak includes what came before)", p.role, p.id, err)
		}
	}
	atStart, err := procs.sample()
	if err != nil {
		return nil, err
	}

	ph := d.newPhase("large")
	start := time.Now()
	d.mu.Lock()
	ph.start = start
	d.mu.Unlock()
	d.logf("large: %d × %d MB end to end", len(paths), size/1_000_000)
	var wg sync.WaitGroup
	errs := make([]error, len(paths))
	for i, p := range paths {
		wg.Go(func() {
			f, err := os.Open(p)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			_, errs[i] = d.submit(ctx, ph, start, node.Submission{
				Recipient: d.recipients[(i*max(len(d.recipients)/len(paths), 1))%len(d.recipients)],
				Type:      synth.TypePaperReturnScan, ContentType: synth.ContentTypePDF, Payload: f,
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			d.logf("large: submission failed (resubmitted while draining): %v", err)
		}
	}
	if err := d.drain(ctx, opts.DrainTimeout, stallTimeout); err != nil {
		n, _ := d.abandon()
		return nil, fmt.Errorf("large: %w (gave up on %d)", err, n)
	}
	d.mu.Lock()
	var last, prep, acc float64
	if len(ph.e2e) > 0 {
		last = slices.Max(ph.e2e) / 1000
	}
	if len(ph.prepare) > 0 {
		prep, acc = slices.Max(ph.prepare)/1000, slices.Max(ph.accept)/1000
	}
	d.mu.Unlock()
	if last <= 0 {
		last = time.Since(start).Seconds()
	}
	s, err := procs.sample()
	if err != nil {
		return nil, err
	}
	lr := &Large{
		Count: len(paths), Bytes: size, SecondsE2E: last, PrepareS: prep, AcceptS: acc,
		MBPerS:          float64(size) * float64(len(paths)) / last / 1e6,
		TLSStreamMBPerS: tlsRate / 1e6,
		PeakRSSMB:       peakRSS(s),
		StartRSSMB:      currentRSS(atStart),
	}
	lr.RatioTLS = ratio(lr.MBPerS, lr.TLSStreamMBPerS)
	lr.DiskMBPerS = diskRate / 1e6
	if w := written(atStart, s); w != nil {
		lr.WrittenMB = w
		var sum float64
		for _, v := range w {
			sum += v
		}
		lr.WritesPerByte = ratio(sum*1e6, float64(size)*float64(len(paths)))
		lr.DiskCeilingMBPerS = ratio(lr.DiskMBPerS, lr.WritesPerByte)
		lr.RatioDiskCeilingTLS = ratio(lr.DiskCeilingMBPerS, lr.TLSStreamMBPerS)
		d.logf("large: %.0f MB written to storage, %.1f × the payloads: D over that is %.0f MB/s (%.2f × one mTLS stream)",
			sum, lr.WritesPerByte, lr.DiskCeilingMBPerS, lr.RatioDiskCeilingTLS)
	}
	d.logf("large: %.1f s, %.0f MB/s (%.2f × one mTLS stream)", lr.SecondsE2E, lr.MBPerS, lr.RatioTLS)
	return lr, nil
}

func writePDF(path string, size int, seed uint64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n, err := synth.WritePDF(w, size, seed)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("bench: write %s: %w", path, err)
	}
	return n, nil
}
