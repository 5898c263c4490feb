package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"taxlink/internal/metrics"
)

// TestRunTiny runs the whole benchmark with a tiny load: short probes, 8
// recipients (so the dev network is widened), 2 submitters, a 1.5 s
// sustained phase, on the real binary with the hub and nodes as processes.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a network of processes; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "taxlink")
	if out, err := exec.Command("go", "build", "-o", bin, "taxlink/cmd/taxlink").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Options{
		Duration: 1500 * time.Millisecond, Calibrate: 200 * time.Millisecond,
		Dir: t.TempDir(), Binary: bin, Recipients: 8, Concurrency: 2, Log: &log,
		Large: true, LargeCount: 2, LargeSize: 2_000_000, CompareRecipients: 2,
	})
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
	}
	if !res.Passed {
		t.Errorf("not passed: %v\nlog:\n%s", res.Failures, log.String())
	}
	if res.FsyncPerS <= 0 || res.JetStream.Sync <= 0 || res.JetStream.Async <= 0 || res.JetStreamPerS <= 0 {
		t.Errorf("F = %v, J = %+v: want positive rates", res.FsyncPerS, res.JetStream)
	}
	if res.Recipients != 8 || res.RecipientsRecording != 8 {
		t.Errorf("recipients %d, recording %d, want 8", res.Recipients, res.RecipientsRecording)
	}
	if res.AcceptPerS <= 0 || res.E2EPerS <= 0 || res.Notifications == 0 || res.Verified != res.Notifications {
		t.Errorf("accept %v/s, e2e %v/s, %d notifications, %d verified", res.AcceptPerS, res.E2EPerS, res.Notifications, res.Verified)
	}

	// The hub's own p99 of each acceptance step in the half-rate phase.
	for _, step := range append(metrics.AcceptSteps(), "total") {
		if v := res.HalfRate.HubP99MS[step]; v <= 0 {
			t.Errorf("hub p99 of %q at half rate: %v ms, want positive (from the hub's histograms)", step, v)
		}
	}
	if res.Crypto.PerMsgUs <= 0 || res.Crypto.CeilingPerS <= 0 {
		t.Errorf("cryptography per notification: %+v, want measured", res.Crypto)
	}

	// The large-payload phase and the comparison with fewer recipients,
	// each measured and judged against its goal.
	if w := res.WrittenKBPerMsg; w != nil && (len(w) != 4 || w["total"] < float64(res.PayloadBytes)/1000) {
		// Each notification is at least written to the outbox, the hub's
		// queue and the recipient's store.
		t.Errorf("written per message %v KB, payload %d B: want each role and a total of at least the payload", w, res.PayloadBytes)
	}
	if l := res.Large; l == nil || l.Count != 2 || l.SecondsE2E <= 0 || l.MBPerS <= 0 || l.TLSStreamMBPerS <= 0 || l.RatioTLS <= 0 || len(l.PeakRSSMB) != 3 || len(l.StartRSSMB) != 3 {
		t.Errorf("large phase: %+v, want 2 PDFs measured end to end, the TLS stream, and each role's RSS at the start and its peak", res.Large)
	} else if l.DiskMBPerS <= 0 || (l.WrittenMB != nil && (len(l.WrittenMB) != 3 || l.WritesPerByte < 1 || l.DiskCeilingMBPerS <= 0)) {
		// Each payload byte reaches the outbox, the hub and the recipient's
		// store at least: written fewer than once, the accounting is wrong.
		t.Errorf("large phase: D %.0f MB/s, written %v, %.2f writes per payload byte, ceiling %.0f MB/s: want D, and each role's writes adding up to at least the payloads",
			l.DiskMBPerS, l.WrittenMB, l.WritesPerByte, l.DiskCeilingMBPerS)
	}
	if c := res.Compare; c == nil || c.Recipients != 2 || c.AcceptPerS <= 0 || c.E2EPerS <= 0 || c.Ratio <= 0 {
		t.Errorf("comparison run: %+v, want 2 recipients measured", res.Compare)
	}
	for _, g := range []string{"large_ge_0.5_tls_stream", "large_rss_lt_256mb", "recipients_1788_cost_le_10pct"} {
		if res.Goals[g].Met == nil {
			t.Errorf("goal %s not judged: %+v", g, res.Goals[g])
		}
	}

	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"fsync_per_s", "jetstream_per_s", "accept_per_s", "e2e_per_s", "ratio_e2e_fsync", "ratio_accept_jetstream",
		"p50_accept_ms", "p99_accept_ms", "p99_e2e_ms", "p99_accept_half_rate_ms", "cpu_us_per_msg", "peak_rss_mb",
		"duration_s", "notifications", "passed", "goals", "crypto",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	for _, role := range []string{"nta", "hub", "node"} {
		if v, ok := m["cpu_us_per_msg"].(map[string]any)[role].(float64); !ok || v <= 0 {
			t.Errorf("cpu_us_per_msg[%s] = %v, want positive", role, v)
		}
		if v, ok := m["peak_rss_mb"].(map[string]any)[role].(float64); !ok || v <= 0 {
			t.Errorf("peak_rss_mb[%s] = %v, want positive", role, v)
		}
	}

	var svg bytes.Buffer
	if err := WriteSVG(&svg, res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || !strings.Contains(svg.String(), "<polyline") {
		t.Errorf("SVG does not look like a chart:\n%.300s", svg.String())
	}
}

// TestProbes checks that F and J, with their latencies, come out positive
// on their own.
func TestProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("fsyncs and starts an embedded JetStream server; skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	f, err := FsyncRate(ctx, dir, ProbeSize, 100*time.Millisecond)
	if err != nil || f.PerS <= 0 || f.P50MS <= 0 || f.P99MS < f.P50MS {
		t.Fatalf("FsyncRate = %+v, %v: want a positive rate and latencies, p99 >= p50", f, err)
	}
	if d, err := DiskRate(ctx, dir, 100*time.Millisecond); err != nil || d <= 0 {
		t.Fatalf("DiskRate = %.0f B/s, %v: want a positive rate", d, err)
	}
	j, err := JetStreamRate(ctx, dir, ProbeSize, 32, 100*time.Millisecond)
	if err != nil || j.Sync <= 0 || j.Async <= 0 || j.SyncP50MS <= 0 || j.SyncP99MS < j.SyncP50MS {
		t.Fatalf("JetStreamRate = %+v, %v: want positive rates and latencies, p99 >= p50", j, err)
	}
}

// TestCryptoFloor checks that the cryptography probe times every
// operation, adds them up as one notification needs them, and seals the
// payload it is given (a megabyte costs more than 6 KB).
func TestCryptoFloor(t *testing.T) {
	ctx := context.Background()
	small, err := CryptoFloor(ctx, make([]byte, 6000), 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"seal": small.SealUs, "header verify": small.HeaderVerifyUs,
		"receipt sign": small.ReceiptSignUs, "receipt verify": small.ReceiptVerifyUs} {
		if v <= 0 {
			t.Errorf("%s: %v µs, want positive", name, v)
		}
	}
	want := small.SealUs + 2*small.HeaderVerifyUs + 2*small.ReceiptSignUs + 3*small.ReceiptVerifyUs
	if math.Abs(small.PerMsgUs-want) > 1e-9 || small.PayloadSize != 6000 {
		t.Errorf("per notification %v µs for %d B, want %v µs for 6000 B", small.PerMsgUs, small.PayloadSize, want)
	}
	if got := small.CeilingPerS * small.PerMsgUs / 1e6; math.Abs(got-float64(runtime.GOMAXPROCS(0))) > 1e-9 {
		t.Errorf("ceiling %v/s is not the CPUs' time over %v µs", small.CeilingPerS, small.PerMsgUs)
	}
	large, err := CryptoFloor(ctx, make([]byte, 4<<20), 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if large.SealUs <= small.SealUs {
		t.Errorf("sealing 4 MiB took %v µs, 6 KB %v µs: the payload is not sealed", large.SealUs, small.SealUs)
	}
}

func TestSearchOn(t *testing.T) {
	tests := []struct {
		c          int
		rate, best float64
		want       bool
	}{
		{4, 10, 0, true},
		{32, 1, 100, true},    // below 64 the search always goes on
		{64, 99, 100, false},  // no better than before
		{64, 104, 100, false}, // better, but not by 5 %
		{64, 105, 100, true},
		{128, 120, 105, true},
		{maxSearch, 500, 100, false}, // the last level
	}
	for _, tt := range tests {
		if got := searchOn(tt.c, tt.rate, tt.best); got != tt.want {
			t.Errorf("searchOn(N=%d, %.0f/s, best %.0f/s) = %v, want %v", tt.c, tt.rate, tt.best, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {10, 1}, {100, 10}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing should be 0")
	}
}

func TestReadWriteBytes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          int64
	}{
		{"accounted", "rchar: 9\nwchar: 5\nread_bytes: 0\nwrite_bytes: 8192\ncancelled_write_bytes: 4096\n", 4096},
		{"nothing cancelled", "write_bytes: 12288\ncancelled_write_bytes: 0\n", 12288},
		{"no write_bytes", "rchar: 9\n", -1},
		{"garbled", "write_bytes: lots\n", -1},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := readWriteBytes(path); got != tt.want {
			t.Errorf("%s: readWriteBytes = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := readWriteBytes(filepath.Join(dir, "missing")); got != -1 {
		t.Errorf("missing file: readWriteBytes = %d, want -1", got)
	}
}

// TestWritten checks the sum of the roles' writes over a phase: recipient
// nodes added up, nothing when a process is not accounted.
func TestWritten(t *testing.T) {
	before := map[string]ProcSample{"nta": {WriteBytes: 1e6}, "hub": {WriteBytes: 0}, "node:a": {WriteBytes: 5e6}, "node:b": {WriteBytes: 0}}
	after := map[string]ProcSample{"nta": {WriteBytes: 3e6}, "hub": {WriteBytes: 4e6}, "node:a": {WriteBytes: 6e6}, "node:b": {WriteBytes: 2e6}}
	got := written(before, after)
	if len(got) != 3 || got["nta"] != 2 || got["hub"] != 4 || got["node"] != 3 {
		t.Errorf("written = %v, want nta 2, hub 4, node 3 (MB)", got)
	}
	after["hub"] = ProcSample{WriteBytes: -1}
	if got := written(before, after); got != nil {
		t.Errorf("written with a process not accounted = %v, want nil", got)
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(0)
	if err != nil {
		t.Skipf("no Linux /proc: %v", err)
	}
	if s.RSSKiB <= 0 || s.HWMKiB < s.RSSKiB {
		t.Errorf("RSS %d KiB, HWM %d KiB", s.RSSKiB, s.HWMKiB)
	}
}
