package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProbeSize is the record size of the physical probes: 8 KiB.
const ProbeSize = 8 << 10

// Fsync is what FsyncRate measured.
type Fsync struct {
	PerS float64 `json:"per_s"`
	// P50MS and P99MS are the latencies of one write+fdatasync.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
}

// FsyncRate measures F: it appends size-byte blocks to a new file in dir,
// each write followed by fdatasync(2), one after the other, for about d,
// and returns the flushes per second and their latencies. The file is
// removed.
func FsyncRate(ctx context.Context, dir string, size int, d time.Duration) (Fsync, error) {
	fail := func(err error) (Fsync, error) { return Fsync{}, fmt.Errorf("bench: fsync probe: %w", err) }
	f, buf, done, err := probeFile(dir, "fsync-probe", size)
	if err != nil {
		return fail(err)
	}
	defer done()
	var lat []float64
	start := time.Now()
	for ctx.Err() == nil {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return fail(err)
		}
		if err := datasync(f); err != nil {
			return fail(err)
		}
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
		if len(lat)%64 == 0 && time.Since(start) >= d {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return Fsync{}, err
	}
	return Fsync{PerS: float64(len(lat)) / time.Since(start).Seconds(), P50MS: percentile(lat, 50), P99MS: percentile(lat, 99)}, nil
}

// DiskRate measures D, the disk's sequential durable rate: it appends
// 1 MiB writes to a new file in dir, with an fdatasync(2) after every
// 8 MiB (as a stream written to disk and synced as it goes), for about d
// or 512 MiB, whichever comes first, and returns bytes per second. The
// file is removed.
func DiskRate(ctx context.Context, dir string, d time.Duration) (float64, error) {
	const block, syncEvery, most = 1 << 20, 8, 512 << 20
	fail := func(err error) (float64, error) { return 0, fmt.Errorf("bench: disk probe: %w", err) }
	f, buf, done, err := probeFile(dir, "disk-probe", block)
	if err != nil {
		return fail(err)
	}
	defer done()
	var n int64
	start := time.Now()
	for ctx.Err() == nil {
		for range syncEvery {
			if _, err := f.Write(buf); err != nil {
				return fail(err)
			}
		}
		if err := datasync(f); err != nil {
			return fail(err)
		}
		n += block * syncEvery
		if time.Since(start) >= d || n >= most {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// probeFile creates a new file in dir for a probe, and a block of size
// random bytes to write to it; done closes and removes the file.
func probeFile(dir, name string, size int) (f *os.File, block []byte, done func(), err error) {
	f, err = os.CreateTemp(dir, name+"-*")
	if err != nil {
		return nil, nil, nil, err
	}
	done = func() {
		f.Close()
		os.Remove(f.Name())
	}
	block = make([]byte, size)
	if _, err := rand.Read(block); err != nil {
		done()
		return nil, nil, nil, err
	}
	return f, block, done, nil
}

// datasync is fdatasync(2), retried on EINTR.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// JetStreamRates is what JetStreamRate measured.
type JetStreamRates struct {
	// Sync is the rate of publishes that each wait for their ack.
	Sync float64 `json:"sync_per_s"`
	// Async is the rate of asynchronous publishes with at most Window
	// unacknowledged.
	Async  float64 `json:"async_per_s"`
	Window int     `json:"window"`
	// SyncP50MS and SyncP99MS are the latencies of one synchronous
	// publish, from the call to its acknowledgement.
	SyncP50MS float64 `json:"sync_p50_ms"`
	SyncP99MS float64 `json:"sync_p99_ms"`
}

// JetStreamRate measures J: it starts an embedded NATS server with
// JetStream storing in a new directory under dir with SyncAlways (every
// write fdatasync'd before its ack, as the hub runs it), creates a file
// stream, and publishes size-byte messages, first synchronously for about
// d, then asynchronously with window in flight for about d. The server and
// its files are removed before it returns.
func JetStreamRate(ctx context.Context, dir string, size, window int, d time.Duration) (JetStreamRates, error) {
	sd, err := os.MkdirTemp(dir, "jetstream-probe-")
	if err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	defer os.RemoveAll(sd)
	srv, err := server.NewServer(&server.Options{
		ServerName: "bench-probe", JetStream: true, StoreDir: sd,
		SyncAlways: true, DontListen: true, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(30 * time.Second) {
		return JetStreamRates{}, errors.New("bench: jetstream probe: server not ready within 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "PROBE", Subjects: []string{"probe.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return JetStreamRates{}, fmt.Errorf("bench: jetstream probe: %w", err)
	}
	res := JetStreamRates{Window: window}

	start := time.Now()
	var lat []float64
	for ctx.Err() == nil && (len(lat)%16 != 0 || time.Since(start) < d) {
		t := time.Now()
		if _, err := js.Publish(ctx, "probe.sync", data); err != nil {
			return res, fmt.Errorf("bench: jetstream probe: publish: %w", err)
		}
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
	}
	res.Sync = float64(len(lat)) / time.Since(start).Seconds()
	res.SyncP50MS, res.SyncP99MS = percentile(lat, 50), percentile(lat, 99)

	start = time.Now()
	n := 0
	for ctx.Err() == nil && (n%window != 0 || time.Since(start) < d) {
		if _, err := js.PublishAsync("probe.async", data, jetstream.WithStallWait(30*time.Second)); err != nil {
			return res, fmt.Errorf("bench: jetstream probe: publish: %w", err)
		}
		n++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return res, errors.New("bench: jetstream probe: async publishes not acknowledged within 30s")
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Async = float64(n) / time.Since(start).Seconds()
	return res, ctx.Err()
}

// TLSStreamRate measures the loopback rate of one TLS stream on
// 127.0.0.1: a server goroutine with server's configuration reads and
// discards what a client with client's configuration writes in 64 KiB
// writes for about d. It returns bytes per second, counted at the server
// from the first to the last byte.
func TLSStreamRate(ctx context.Context, server, client *tls.Config, d time.Duration) (float64, error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		return 0, fmt.Errorf("bench: tls probe: %w", err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		dur time.Duration
		err error
	}
	got := make(chan result, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		if err := c.(*tls.Conn).HandshakeContext(ctx); err != nil {
			got <- result{err: err}
			return
		}
		buf := make([]byte, 256<<10)
		var n int64
		var start time.Time
		for {
			m, err := c.Read(buf)
			if m > 0 && n == 0 {
				start = time.Now()
			}
			n += int64(m)
			if err == io.EOF {
				got <- result{n: n, dur: time.Since(start)}
				return
			}
			if err != nil {
				got <- result{err: err}
				return
			}
		}
	})
	defer wg.Wait()
	var dl net.Dialer
	raw, err := dl.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("bench: tls probe: %w", err)
	}
	c := tls.Client(raw, client)
	defer c.Close()
	if err := c.HandshakeContext(ctx); err != nil {
		return 0, fmt.Errorf("bench: tls probe: handshake: %w", err)
	}
	buf := make([]byte, 64<<10)
	if _, err := rand.Read(buf); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; ctx.Err() == nil && (i%16 != 0 || time.Since(start) < d); i++ {
		if _, err := c.Write(buf); err != nil {
			return 0, fmt.Errorf("bench: tls probe: write: %w", err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return 0, fmt.Errorf("bench: tls probe: %w", err)
	}
	r := <-got
	if r.err != nil {
		return 0, fmt.Errorf("bench: tls probe: server: %w", r.err)
	}
	if r.dur <= 0 {
		return 0, errors.New("bench: tls probe: nothing received")
	}
	return float64(r.n) / r.dur.Seconds(), nil
}

// tempDirIn returns a new directory under parent named for what.
func tempDirIn(parent, what string) (string, error) {
	d, err := os.MkdirTemp(parent, what+"-")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return filepath.Clean(d), nil
}
