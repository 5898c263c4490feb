package ledger

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashDirEnv names the log directory of the crash child process.
const crashDirEnv = "TAXLINK_LEDGER_CRASH_DIR"

// crashLinePrefix marks the child's reports on its stdout.
const crashLinePrefix = "LEDGER-CRASH "

// TestCrashChild is the child process of TestCrashRecovery: it appends in
// a tight loop from 4 goroutines, checkpoints every 100 entries, and
// reports on stdout each index (with its content) after Append returns,
// and each checkpoint size after Checkpoint returns, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child process of TestCrashRecovery")
	}
	l, err := Open(dir, testOptions(t))
	if err != nil {
		fmt.Fprintf(os.Stdout, "%sERROR open: %v\n", crashLinePrefix, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	report := func(format string, args ...any) {
		line := fmt.Sprintf(crashLinePrefix+format+"\n", args...)
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(4) // the parent is gone
		}
	}
	round := os.Getpid()
	cpNeeded := make(chan struct{}, 1)
	go func() {
		for range cpNeeded {
			cp, err := l.Checkpoint(context.Background())
			if err != nil {
				report("ERROR checkpoint: %v", err)
				os.Exit(3)
			}
			report("C %d", cp.Size)
		}
	}()
	deadline := time.Now().Add(2 * time.Minute) // never outlive a lost parent for long
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				data := fmt.Sprintf("pid%d-g%d-s%d-%x", round, g, seq, seq*2654435761)
				idx, err := l.Append(context.Background(), []byte(data))
				if err != nil {
					report("ERROR append: %v", err)
					os.Exit(3)
				}
				report("A %d %s", idx, data)
				if idx%100 == 99 {
					select {
					case cpNeeded <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	os.Exit(5)
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills child processes")
	}
	dir := t.TempDir()
	durable := map[int64]string{} // index → content the child saw acknowledged
	var lastCP int64              // largest checkpoint size the child saw acknowledged
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 3 {
		killAfter := 2000 + rng.IntN(1500)
		appended, cps := runCrashChild(t, dir, killAfter)
		if appended < 2000 {
			t.Fatalf("round %d: the child reported only %d appends before it stopped", round, appended)
		}
		for idx, data := range cps.appends {
			durable[idx] = data
		}
		lastCP = max(lastCP, cps.maxCheckpoint)

		l, err := Open(dir, testOptions(t))
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		latest := l.Latest()
		t.Logf("round %d: killed after %d reported appends; log has %d entries, latest checkpoint %d (child saw %d); recovered %v",
			round, appended, l.Size(), latest.Size, lastCP, l.Recovered())
		if latest.Size < lastCP {
			t.Fatalf("round %d: latest checkpoint has size %d, but a checkpoint of size %d was acknowledged", round, latest.Size, lastCP)
		}
		if latest.Size > l.Size() {
			t.Fatalf("round %d: latest checkpoint of size %d exceeds the %d entries", round, latest.Size, l.Size())
		}
		if root, err := l.TreeHash(latest.Size); err != nil || root != latest.Hash {
			t.Fatalf("round %d: tree hash at the latest checkpoint = %v, %v; checkpoint says %v", round, root, err, latest.Hash)
		}
		for idx, data := range durable {
			got, err := l.Entry(idx)
			if err != nil {
				t.Fatalf("round %d: acknowledged entry %d lost: %v", round, idx, err)
			}
			if string(got) != data {
				t.Fatalf("round %d: acknowledged entry %d = %q, want %q", round, idx, got, data)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := VerifyDir(dir, testVerifiers(t)); err != nil || len(rep.Recoverable) != 0 {
		t.Fatalf("VerifyDir after the crash rounds: %v (recoverable %v)", err, rep.Recoverable)
	}
}

// crashReports is what a crash child acknowledged before it died.
type crashReports struct {
	appends       map[int64]string
	maxCheckpoint int64
}

// runCrashChild runs TestCrashChild on dir and SIGKILLs it once it has
// reported killAfter appends in this run. It returns the number of appends
// reported and everything reported in complete lines.
func runCrashChild(t *testing.T, dir string, killAfter int) (int, crashReports) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A child that hangs or stops reporting is killed at the deadline.
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()

	rep := crashReports{appends: map[int64]string{}}
	r := bufio.NewReader(stdout)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a last line without its newline was cut by the kill: ignore it
		}
		if err != nil {
			t.Fatalf("reading the child's stdout: %v", err)
		}
		text, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), crashLinePrefix)
		if !ok {
			continue
		}
		fields := strings.Fields(text)
		switch {
		case fields[0] == "A" && len(fields) == 3:
			idx, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("bad child line %q", line)
			}
			rep.appends[idx] = fields[2]
		case fields[0] == "C" && len(fields) == 2:
			size, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("bad child line %q", line)
			}
			rep.maxCheckpoint = max(rep.maxCheckpoint, size)
		default:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child reported %q; stderr:\n%s", text, stderr.String())
		}
		if !killed && len(rep.appends) >= killAfter {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d appends without being killed: %v; stderr:\n%s", len(rep.appends), err, stderr.String())
	}
	return len(rep.appends), rep
}
