package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
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

	"taxlink/internal/config"
	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/lgdata"
	"taxlink/internal/pki"
)

// widen makes the dev network in lay serve n local governments as
// recipients: with n at most the dev network's own recipients it uses the
// first n of them; with more it adds local governments from the embedded
// list of 1,788 (in code order) to the directory, spread round-robin over
// the network's recipient nodes, each with its own sealing key (a dev-only
// file: key in the node's directory, since 1,788 Argon2id-encrypted keys
// would take minutes to write), re-signs the directory with the dev
// directory key and rewrites the nodes' configurations and layout.json. It
// must run before any process of the network starts. lay.Recipients holds
// the n recipients afterwards.
func widen(lay *devnet.Layout, n int) error {
	if n <= 0 {
		return errors.New("bench: at least one recipient is needed")
	}
	if n <= len(lay.Recipients) {
		lay.Recipients = lay.Recipients[:n]
		return nil
	}
	lg, err := lgdata.Load()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if n > lg.Len() {
		return fmt.Errorf("bench: %d recipients asked, there are %d local governments", n, lg.Len())
	}
	dirPath := filepath.Join(lay.Dir, "directory", "directory.json")
	pemKey, err := os.ReadFile(filepath.Join(lay.Dir, "directory", "directory-key.pem"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	pub, err := pki.ParsePublicKeyPEM(string(pemKey))
	if err != nil {
		return fmt.Errorf("bench: directory key: %w", err)
	}
	doc, err := os.ReadFile(dirPath)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	d, err := directory.Verify(doc, pub, devnet.Environment)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	signer, err := devnet.ReadKey(lay, filepath.Join(lay.Dir, "hub", "directory-signing.key"))
	if err != nil {
		return fmt.Errorf("bench: directory signing key: %w", err)
	}

	// The recipient nodes and their configurations.
	type host struct {
		info    *devnet.NodeInfo
		dirIdx  int // index in d.Nodes
		cfg     config.Node
		cfgPath string
	}
	var hosts []*host
	for i := range lay.Nodes {
		ni := &lay.Nodes[i]
		if ni.ID == devnet.NTAID {
			continue
		}
		h := &host{info: ni, cfgPath: ni.Config, dirIdx: -1}
		for j := range d.Nodes {
			if d.Nodes[j].ID == ni.ID {
				h.dirIdx = j
			}
		}
		if h.dirIdx < 0 {
			return fmt.Errorf("bench: node %s is not in the directory", ni.ID)
		}
		b, err := os.ReadFile(ni.Config)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := json.Unmarshal(b, &h.cfg); err != nil {
			return fmt.Errorf("bench: %s: %w", ni.Config, err)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return errors.New("bench: the dev network has no recipient node")
	}

	have := map[string]bool{}
	for _, p := range d.Participants {
		have[p.ID] = true
	}
	added := 0
	for _, g := range lg.All() {
		if len(lay.Recipients) >= n {
			break
		}
		id := g.ParticipantID()
		if have[id] {
			continue
		}
		h := hosts[added%len(hosts)]
		added++
		priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		pubRaw, err := envelope.MarshalPublicKey(priv.PublicKey())
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		privRaw, err := envelope.MarshalPrivateKey(priv)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		token := strings.ReplaceAll(id, ":", "-")
		file := "sealing-" + token + ".key"
		if err := os.WriteFile(filepath.Join(filepath.Dir(h.cfgPath), file), privRaw, 0o600); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		keyID := token + "-1"
		kind := "municipality"
		if g.IsPrefecture() {
			kind = "prefecture"
		}
		d.Participants = append(d.Participants, directory.Participant{
			ID: id, Name: g.Name, Kind: kind,
			SealingKeys: []directory.SealingKey{{ID: keyID, KEM: envelope.DefaultKEM, Public: base64.StdEncoding.EncodeToString(pubRaw)}},
		})
		d.Nodes[h.dirIdx].Tenants = append(d.Nodes[h.dirIdx].Tenants, id)
		h.cfg.SealingKeys = append(h.cfg.SealingKeys, config.SealingKeyFile{Tenant: id, KeyID: keyID, KEM: envelope.DefaultKEM, File: "file:" + file})
		h.info.Tenants = append(h.info.Tenants, id)
		lay.Recipients = append(lay.Recipients, id)
		have[id] = true
	}
	d.Version++
	signed, err := directory.Sign(d, signer)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(dirPath, signed, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for _, h := range hosts {
		if err := writeJSON(h.cfgPath, h.cfg); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(lay.Dir, "layout.json"), lay)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

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
// under logDir, and waits until it accepts TCP connections on addr or
// timeout passes.
func startProcess(ctx context.Context, bin, role, id, cfg, addr, logDir string, timeout time.Duration) (*process, error) {
	name := strings.ReplaceAll(id, ":", "-")
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd := exec.Command(bin, role, "--config", cfg)
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
