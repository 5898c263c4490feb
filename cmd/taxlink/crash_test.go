package main

import (
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

func crashRun(t *testing.T, victim string, total int) {
	bin := buildBinary(t)
	dir := t.TempDir()
	logDir := t.TempDir()
	if out, err := exec.Command(bin, "dev", "--init", dir).CombinedOutput(); err != nil {
		t.Fatalf("dev --init: %v\n%s", err, out)
	}
	// The layout is deterministic in shape; reload it from the files.
	lay := readLayout(t, dir)

	hub := start(t, bin, "hub", lay.HubConfig, lay.HubListen, logDir, 0)
	procs := map[string]*proc{"hub": hub}
	for _, n := range lay.Nodes {
		if n.ID == devnet.NTAID {
			continue // the test itself is the NTA node
		}
		procs[n.ID] = start(t, bin, "node", n.Config, n.Listen, logDir, 0)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log tail:\n%s", p.name, p.tail())
			}
		}
	})

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

	// Stop everything and count the records in each recipient's database.
	for name, p := range procs {
		if name != "hub" {
			p.stop(t)
		}
	}
	procs["hub"].stop(t)
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
						t.Errorf("%s recorded for %s, sent to %s", r.ID, tenant, want[r.ID])
					}
				}
			}
		}
		st.Close()
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s recorded %d times, want exactly once", id, seen[id])
		}
	}
	if len(seen) != total {
		t.Errorf("recorded %d distinct notifications, want %d", len(seen), total)
	}
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
