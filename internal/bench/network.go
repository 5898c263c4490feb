package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// process is a hub or node running as a child process of the bench.
type process struct {
	role string // "hub" or "node"
	id   string // participant ID
	addr string // listen address
	log  string // path of its stdout+stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit error, once done
}

// startProcess runs `bin role --config cfg` with its output in a log file
// under logDir (and, with profiles, its pprof profiles beside it), and
// waits until it accepts TCP connections on addr or timeout passes.
func startProcess(ctx context.Context, bin, role, id, cfg, addr, logDir string, timeout time.Duration, profiles bool) (*process, error) {
	name := strings.ReplaceAll(id, ":", "-")
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	args := []string{role, "--config", cfg}
	if profiles {
		args = append(args, "--cpuprofile", filepath.Join(logDir, name+".cpu.pprof"), "--memprofile", filepath.Join(logDir, name+".heap.pprof"))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s %s: %w", role, id, err)
	}
	f.Close()
	p := &process{role: role, id: id, addr: addr, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitListening(ctx, timeout); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// errPortTaken: a process could not bind its port, which another program
// took after devnet.Init picked it.
var errPortTaken = errors.New("bench: address already in use")

// waitListening waits until the process says it listens on its address
// (`taxlink hub` and `taxlink node` print "ROLE listening on https://ADDR"
// once they serve) and a TCP connection there succeeds. A successful dial
// alone is not enough: another program may hold the port.
func (p *process) waitListening(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	want := []byte(p.role + " listening on https://" + p.addr + "\n")
	for {
		if b, err := os.ReadFile(p.log); err == nil && bytes.Contains(b, want) {
			c, err := net.DialTimeout("tcp", p.addr, time.Second)
			if err == nil {
				c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s %s is not listening on %s after %v; log:\n%s", p.role, p.id, p.addr, timeout, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			if strings.Contains(p.tail(), "address already in use") {
				return fmt.Errorf("%w: %s %s on %s", errPortTaken, p.role, p.id, p.addr)
			}
			return fmt.Errorf("bench: %s %s exited (%v) before listening; log:\n%s", p.role, p.id, p.err, p.tail())
		case <-tick.C:
		}
	}
}

// pid returns the process ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// metricsAddr returns where the process serves /metrics, from the line
// `taxlink hub` and `taxlink node` log when they have started.
// The line is near the top of a log that grows by a line per envelope: the
// log is read up to it only.
func (p *process) metricsAddr() (string, error) {
	f, err := os.Open(p.log)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct{ Msg, Metrics string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == p.role+" started" && l.Metrics != "" {
			return l.Metrics, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("bench: %s: %w", p.log, err)
	}
	return "", fmt.Errorf("bench: %s %s logged no metrics address", p.role, p.id)
}

// alive reports whether the process has not exited.
func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to 30 s, then kills the process.
func (p *process) stop() error {
	if !p.alive() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
		return p.exitErr()
	case <-t.C:
		p.kill()
		return fmt.Errorf("bench: %s %s did not stop within 30s of SIGTERM; killed", p.role, p.id)
	}
}

func (p *process) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("bench: %s %s: %w", p.role, p.id, p.err)
	}
	return nil
}

func (p *process) kill() {
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// topError returns the most frequent ERROR message of the process's JSON
// log with its count, recipients and IDs left out, or "".
func (p *process) topError() string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	// Participant and envelope IDs vary between otherwise equal messages.
	idRe := regexp.MustCompile(`\b(lg:\d{6}|[0-9A-HJKMNP-TV-Z]{26})\b`)
	count := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e struct {
			Level, Msg, Err string
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Level != "ERROR" {
			continue
		}
		k := e.Msg
		if e.Err != "" {
			k += ": " + e.Err
		}
		count[idRe.ReplaceAllString(k, "…")]++
	}
	best, n := "", 0
	for k, c := range count {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d × %q", n, best)
}

// tail returns the end of the process's log.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
