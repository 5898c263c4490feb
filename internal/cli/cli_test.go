package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/synth"
)

func run(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := Run(ctx, args, &out, &errw)
	return code, out.String(), errw.String()
}

func lastJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last line is not JSON: %q (%v)", lines[len(lines)-1], err)
	}
	return m
}

// TestDevNotificationsExit runs `taxlink dev --notifications 40 --exit` and
// checks its report and exit status.
func TestDevNotificationsExit(t *testing.T) {
	keep := filepath.Join(t.TempDir(), "net")
	code, out, errw := run(t, context.Background(), "dev", "--notifications", "40", "--exit", "--keep", keep, "--timeout", "2m", "--verbose")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errw)
	}
	if !strings.Contains(errw, "DEVELOPMENT NETWORK") {
		t.Errorf("no development warning on stderr")
	}
	for _, want := range []string{"hub:kiko", "nta:hq", "lg:130001", "lg:011002", "corp:8700150012345", "lg:013030", "当別町", "札幌市", "東京都"} {
		if !strings.Contains(out, want) {
			t.Errorf("endpoint list lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "metrics: http://127.0.0.1:"); n != 5 {
		t.Errorf("%d metrics lines, want one per process (5):\n%s", n, out)
	}
	if n := strings.Count(out, "console: https://localhost:"); n != 5 || !strings.Contains(out, "enrol admin with code ") || !strings.Contains(out, "sign in:") {
		t.Errorf("%d console lines, want one per process (5) with the administrator's code and how to sign in:\n%s", n, out)
	}
	m := lastJSON(t, out)
	for _, k := range []string{"sent", "accepted", "recorded", "receipts_verified"} {
		if m[k] != float64(40) {
			t.Errorf("%s = %v, want 40", k, m[k])
		}
	}
	if m["duplicates"] != float64(0) || m["passed"] != true {
		t.Errorf("duplicates %v passed %v", m["duplicates"], m["passed"])
	}
	if _, ok := m["elapsed_ms"]; !ok {
		t.Errorf("no elapsed_ms in %v", m)
	}
	if _, err := os.Stat(filepath.Join(keep, "nodes", "lg-011002", "data", "node.db")); err != nil {
		t.Errorf("--keep did not keep the data: %v", err)
	}
	// The synthetic returns carry My Numbers, names and addresses; none may
	// reach the logs (every process logged at info level here).
	if !strings.Contains(errw, `"level":"INFO"`) {
		t.Fatalf("no info logs captured; the check below would prove nothing")
	}
	all := out + errw
	for _, ix := range regexp.MustCompile(`\b\d{12}\b`).FindAllStringIndex(all, -1) {
		if m := all[ix[0]:ix[1]]; synth.ValidMyNumber(m) == nil {
			// The line it is in says where it came from.
			start := strings.LastIndexByte(all[:ix[0]], '\n') + 1
			end := ix[1] + max(strings.IndexByte(all[ix[1]:], '\n'), 0)
			t.Errorf("output contains %s, a valid My Number, in: %s", m, all[start:end])
		}
	}
	for _, pii := range []string{"<氏名>", "住所", "SYNTHETIC", "<?xml", "%PDF"} {
		if strings.Contains(out+errw, pii) {
			t.Errorf("output contains payload text %q", pii)
		}
	}
}

// TestInitSendReceipts writes a network with `dev --init`, runs the hub and
// 札幌市's node from those files, and uses `send` and `receipts` on the NTA's
// node configuration.
func TestInitSendReceipts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	code, out, errw := run(t, context.Background(), "dev", "--init", dir)
	if code != 0 {
		t.Fatalf("dev --init: exit %d: %s %s", code, out, errw)
	}
	if !strings.Contains(out, "taxlink hub  --config") || !strings.Contains(out, "taxlink node --config") {
		t.Errorf("--init does not say how to run the parts:\n%s", out)
	}
	lay, err := devnet.ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	hub, err := daemon.StartHub(ctx, lay.HubConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Stop()
	sapporo, _ := lay.Node(devnet.SapporoID)
	ns, err := daemon.StartNode(ctx, sapporo.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()

	nta, _ := lay.Node(devnet.NTAID)
	file := filepath.Join(t.TempDir(), "return.xml")
	if err := os.WriteFile(file, []byte(`<?xml version="1.0" encoding="UTF-8"?><申告書/>`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errw = run(t, ctx, "send", "--config", nta.Config, "--to", "lg:011002", "--type", "income-tax-return", file)
	if code != 0 || !strings.Contains(out, "accepted") {
		t.Fatalf("send: exit %d\n%s\n%s", code, out, errw)
	}
	id := strings.Fields(out)[1]

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errw = run(t, ctx, "receipts", "--config", nta.Config)
		if code != 0 {
			t.Fatalf("receipts: exit %d\n%s\n%s", code, out, errw)
		}
		if lastJSON(t, out)["verified"] == float64(1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipt never verified:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, id) || !strings.Contains(out, "verified") {
		t.Errorf("receipts list lacks %s verified:\n%s", id, out)
	}

	// Refusals reach the operator with their code, and change nothing.
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--to", "lg:011003", "--type", "income-tax-return"}, "check digit"},
		{[]string{"--to", "lg:012025", "--type", "income-tax-return"}, "lg:012025"},
		{[]string{"--to", "lg:011002", "--type", "corporate-tax"}, "unknown-type"},
	}
	for _, c := range cases {
		args := append([]string{"send", "--config", nta.Config}, c.args...)
		code, out, errw := run(t, ctx, append(args, file)...)
		if code == 0 || !strings.Contains(errw, c.want) {
			t.Errorf("send %v: exit %d, stderr %q; want failure mentioning %q (stdout %q)", c.args, code, errw, c.want, out)
		}
	}
}

// TestConfigErrorsStopStart checks that a wrong config value stops `taxlink
// hub` with a message naming the key.
func TestConfigErrorsStopStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	if code, out, errw := run(t, context.Background(), "dev", "--init", dir); code != 0 {
		t.Fatalf("dev --init: %s %s", out, errw)
	}
	lay, _ := devnet.ReadLayout(dir)
	b, _ := os.ReadFile(lay.HubConfig)
	bad := strings.Replace(string(b), `"environment": "dev"`, `"environment": "prod"`, 1)
	if err := os.WriteFile(lay.HubConfig, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errw := run(t, context.Background(), "hub", "--config", lay.HubConfig)
	if code == 0 || !strings.Contains(errw, "environment") || !strings.Contains(errw, "expected production, test or dev") {
		t.Errorf("hub with a bad environment: exit %d, stderr %q", code, errw)
	}
}

// TestDevStopsOnInterrupt runs `taxlink dev` until it says it is running,
// then cancels its context as Ctrl-C does (main's signal.NotifyContext),
// and checks that it stops cleanly with status 0 and removes its data.
func TestDevStopsOnInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errw devtest.Buffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"dev"}, &out, &errw) }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "press Ctrl-C to stop") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("dev never said it was running:\n%s\n%s", out.String(), errw.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "configs" {
			dir = f[1]
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d after interrupt; stderr:\n%s", code, errw.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of the interrupt")
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Errorf("no stopping message")
	}
	if dir == "" {
		t.Fatalf("no configs line in:\n%s", out.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the temporary network %s was not removed: %v", dir, err)
	}
}
