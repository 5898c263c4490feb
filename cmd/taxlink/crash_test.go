package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/node"
	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
	"taxlink/internal/synth"
)

// buildBinary builds taxlink into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "taxlink")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a taxlink process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	addr string
}

func start(t *testing.T, bin, role, cfg, addr, logDir string, gen int) *proc {
	t.Helper()
	name := strings.ReplaceAll(filepath.Base(filepath.Dir(cfg)), "/", "_")
	logPath := filepath.Join(logDir, fmt.Sprintf("%s-%d.log", name, gen))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, role, "--config", cfg)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	f.Close()
	p := &proc{name: name, cmd: cmd, log: logPath, addr: addr}
	t.Cleanup(func() { p.kill() })
	waitListening(t, p)
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
		p.kill()
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func waitListening(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not listening on %s; log:\n%s", p.name, p.addr, p.tail())
}

// TestCrashRealProcesses runs the hub and the recipient nodes as separate
// processes from `taxlink dev --init`, SIGKILLs the hub while 1,000
// notifications are in flight and restarts it, then does the same to a
// node, and checks that every accepted notification is recorded exactly
// once at its recipient.
func TestCrashRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs real processes; skipped with -short")
	}
	for _, victim := range []string{"hub", devnet.SapporoID} {
		t.Run("kill-"+strings.ReplaceAll(victim, ":", "-"), func(t *testing.T) {
			crashRun(t, victim, 1000)
		})
	}
}

// startProcesses builds taxlink, writes a dev network with `dev --init`
// and starts the hub and every node but the NTA's as processes of it. It
// returns the binary, the directory of the processes' logs, the layout and
// the processes by ID ("hub" for the hub); their log tails are printed if
// t fails.
func startProcesses(t *testing.T) (bin, logDir string, lay *devnet.Layout, procs map[string]*proc) {
	t.Helper()
	bin = buildBinary(t)
	dir := t.TempDir()
	logDir = t.TempDir()
	if out, err := exec.Command(bin, "dev", "--init", dir).CombinedOutput(); err != nil {
		t.Fatalf("dev --init: %v\n%s", err, out)
	}
	// The layout is deterministic in shape; reload it from the files.
	lay = readLayout(t, dir)
	procs = map[string]*proc{"hub": start(t, bin, "hub", lay.HubConfig, lay.HubListen, logDir, 0)}
	for _, n := range lay.Nodes {
		if n.ID != devnet.NTAID { // the NTA's node is the test's to run
			procs[n.ID] = start(t, bin, "node", n.Config, n.Listen, logDir, 0)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log tail:\n%s", p.name, p.tail())
			}
		}
	})
	return bin, logDir, lay, procs
}

func crashRun(t *testing.T, victim string, total int) {
	bin, logDir, lay, procs := startProcesses(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nta, err := daemon.LoadNode(lay.Nodes[0].Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()

	// Seal everything first so that the submissions are quick and many are
	// in flight when the victim dies.
	g := synth.NewGenerator(7)
	ids := make([]string, 0, total)
	want := map[string]string{}
	for i := range total {
		rcpt := lay.Recipients[i%len(lay.Recipients)]
		doc := g.Next("札幌市", "北海道")
		if doc.ContentType == "application/pdf" {
			doc.Body = g.PDF(20 << 10) // keep the run short
		}
		id, err := nta.Node.Prepare(ctx, node.Submission{Recipient: rcpt, Type: doc.Type, ContentType: doc.ContentType, Payload: bytes.NewReader(doc.Body)})
		if err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
		ids = append(ids, id)
		want[id] = rcpt
	}

	var killOnce sync.Once
	killed := make(chan struct{})
	kill := func() {
		killOnce.Do(func() {
			p := procs[victim]
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("SIGKILL %s: %v", victim, err)
			}
			_ = p.cmd.Wait()
			t.Logf("SIGKILLed %s", victim)
			close(killed)
		})
	}

	// Submit with 16 workers; for the hub, kill it after 300 acceptances.
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	next := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if _, err := nta.Node.SubmitPending(ctx, id); err == nil {
					mu.Lock()
					accepted++
					if accepted == 300 && victim == "hub" {
						go kill()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()

	if victim != "hub" {
		// Kill the node once it has recorded part of its share.
		waitFor(t, ctx, "the victim node to record something", func() bool {
			_, _, rec, _ := nta.Store.OutgoingCounts(ctx)
			_, _ = nta.Node.PollReceipts(ctx, 0)
			return rec >= 100
		})
		kill()
	}
	<-killed
	n, _ := lay.Node(victim)
	addr, cfg, role := n.Listen, n.Config, "node"
	if victim == "hub" {
		addr, cfg, role = lay.HubListen, lay.HubConfig, "hub"
	}
	procs[victim] = start(t, bin, role, cfg, addr, logDir, 1)

	// Everything not yet accepted is resubmitted; wait for every recording
	// receipt.
	waitFor(t, ctx, "all notifications accepted and recorded", func() bool {
		nta.Node.ResubmitPending(ctx)
		_, _ = nta.Node.PollReceipts(ctx, 200*time.Millisecond)
		tot, acc, rec, err := nta.Store.OutgoingCounts(ctx)
		return err == nil && tot == int64(total) && acc == tot && rec == tot
	})
	for _, id := range ids {
		o, err := nta.Store.GetOutgoing(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a, r := node.VerifyBoth(nta.Directory(), devnet.HubID, o); a != nil || r != nil {
			t.Errorf("%s: receipts do not verify: acceptance %v, recording %v", id, a, r)
		}
	}

	stopAll(t, procs)
	checkRecordedOnce(t, ctx, lay, want)
}

// stopAll stops the nodes, then the hub.
func stopAll(t *testing.T, procs map[string]*proc) {
	t.Helper()
	for name, p := range procs {
		if name != "hub" {
			p.stop(t)
		}
	}
	procs["hub"].stop(t)
}

// checkRecordedOnce reads every recipient node's database (the nodes
// stopped) and checks that each notification of want (envelope ID →
// recipient) is recorded exactly once, for its recipient, and nothing else.
func checkRecordedOnce(t *testing.T, ctx context.Context, lay *devnet.Layout, want map[string]string) {
	t.Helper()
	seen := map[string]int{}
	for _, ni := range lay.Nodes {
		if ni.ID == devnet.NTAID {
			continue
		}
		st, err := sqlite.Open(filepath.Join(filepath.Dir(ni.Config), "data", "node.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tenant := range ni.Tenants {
			var after int64
			for {
				recs, err := st.List(ctx, store.Query{Recipient: tenant, AfterSeq: after, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 0 {
					break
				}
				for _, r := range recs {
					after = r.Seq
					seen[r.ID]++
					if want[r.ID] != tenant {
						t.Errorf("%s recorded for %s, sent to %q", r.ID, tenant, want[r.ID])
					}
				}
			}
		}
		st.Close()
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s recorded %d times, want exactly once", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("recorded %d distinct notifications, want %d", len(seen), len(want))
	}
}

// The sender's helper process: TestMain runs it instead of the tests when
// senderHelperEnv names a node configuration.
const (
	senderHelperEnv     = "TAXLINK_CRASH_SENDER_CONFIG"
	senderRecipientsEnv = "TAXLINK_CRASH_SENDER_RECIPIENTS"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(senderHelperEnv); cfg != "" {
		os.Exit(runSender(cfg, strings.Split(os.Getenv(senderRecipientsEnv), ",")))
	}
	os.Exit(m.Run())
}

// runSender is the NTA's node in its own process: 8 workers prepare
// notifications (every tenth a 600 KiB scan, kept in outbox files; the
// others in outbox rows), print "prepared ID RECIPIENT" once Prepare
// returned, and submit them, until the process is killed.
func runSender(cfg string, recipients []string) int {
	l, err := daemon.LoadNode(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	var mu sync.Mutex
	g := synth.NewGenerator(11)
	n := 0
	for range 8 {
		go func() {
			for {
				mu.Lock()
				rcpt := recipients[n%len(recipients)]
				doc := g.Next("札幌市", "北海道")
				for n%10 == 0 && doc.ContentType != "application/pdf" {
					doc = g.Next("札幌市", "北海道")
				}
				if doc.ContentType == "application/pdf" {
					size := 20 << 10
					if n%10 == 0 {
						size = 600 << 10
					}
					doc.Body = g.PDF(size)
				}
				n++
				mu.Unlock()
				id, err := l.Node.Prepare(ctx, node.Submission{Recipient: rcpt, Type: doc.Type, ContentType: doc.ContentType, Payload: bytes.NewReader(doc.Body)})
				if err != nil {
					fmt.Fprintln(os.Stderr, "prepare:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("prepared %s %s\n", id, rcpt)
				mu.Unlock()
				_, _ = l.Node.SubmitPending(ctx, id)
			}
		}()
	}
	select {}
}

// TestCrashSender runs the NTA's node in a process of its own, preparing
// and submitting notifications with 8 workers, SIGKILLs it after 300 were
// prepared, and checks from the outbox it left that every notification
// Prepare returned for, small ones held in outbox rows and large ones in
// outbox files, is then accepted and recorded exactly once, with both
// receipts verified, and that no outbox file is left.
func TestCrashSender(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs real processes; skipped with -short")
	}
	_, _, lay, procs := startProcesses(t)
	nta, _ := lay.Node(devnet.NTAID)

	sender := exec.Command(os.Args[0], "-test.run=^$")
	sender.Env = append(os.Environ(), senderHelperEnv+"="+nta.Config, senderRecipientsEnv+"="+strings.Join(lay.Recipients, ","))
	var stderr bytes.Buffer
	sender.Stderr = &stderr
	out, err := sender.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Process.Kill() })
	want := map[string]string{}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 3 || f[0] != "prepared" {
			t.Fatalf("the sender printed %q", lines.Text())
		}
		want[f[1]] = f[2]
		if len(want) == 300 {
			if err := sender.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	// What it printed before it died is in the pipe still.
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 3 {
			want[f[1]] = f[2]
		}
	}
	if err := sender.Wait(); err == nil || len(want) < 300 {
		t.Fatalf("the sender ended on its own (%v) after %d notifications: %s", err, len(want), stderr.String())
	}
	outbox := filepath.Join(filepath.Dir(nta.Config), "data", "outbox")
	left, _ := filepath.Glob(filepath.Join(outbox, "*.ct"))
	t.Logf("SIGKILLed the sender after %d notifications prepared; %d large ones in outbox files", len(want), len(left))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := daemon.LoadNode(nta.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("reopening the killed sender's node: %v", err)
	}
	defer l.Close()
	// Files of a Prepare the kill interrupted have no entry: nothing else
	// writes this outbox now, so they need not age first.
	if err := l.Node.SweepOutbox(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "every prepared notification accepted and recorded", func() bool {
		l.Node.ResubmitPending(ctx)
		_, _ = l.Node.PollReceipts(ctx, 200*time.Millisecond)
		tot, acc, rec, err := l.Store.OutgoingCounts(ctx)
		return err == nil && tot >= int64(len(want)) && acc == tot && rec == tot
	})
	// The outbox may hold a few more than were printed: committed just
	// before the kill. They count as sent.
	var after string
	for {
		page, err := l.Store.ListOutgoing(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			after = o.ID
			if _, ok := want[o.ID]; !ok {
				want[o.ID] = o.Recipient
			}
			full, err := l.Store.GetOutgoing(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a, r := node.VerifyBoth(l.Directory(), devnet.HubID, full); a != nil || r != nil {
				t.Errorf("%s: receipts do not verify: acceptance %v, recording %v", o.ID, a, r)
			}
			if full.Envelope != nil {
				t.Errorf("%s: accepted, but its envelope is still in the outbox row", o.ID)
			}
		}
	}
	if _, err := os.Stat(outbox); err != nil {
		t.Fatalf("the sender's outbox directory: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(outbox, "*")); len(files) > 0 {
		t.Errorf("outbox files left after every acceptance: %v", files)
	}
	stopAll(t, procs)
	checkRecordedOnce(t, ctx, lay, want)
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readLayout rebuilds the layout of a directory written by dev --init.
func readLayout(t *testing.T, dir string) *devnet.Layout {
	t.Helper()
	lay, err := devnet.ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lay
}
