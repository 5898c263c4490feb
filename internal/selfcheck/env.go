package selfcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"taxlink/internal/standard"
	"time"

	"taxlink/internal/config"
	"taxlink/internal/directory"
	"taxlink/internal/pki"
)

// Env is what the checks of one hub or node look at.
type Env struct {
	// ConfigPath is the configuration file the Env was loaded from.
	ConfigPath string
	// Role is "hub" or "node".
	Role string
	// Common is the part of the configuration hubs and nodes share.
	Common *config.Common
	// Hub is the whole configuration of a hub (nil for a node).
	Hub *config.Hub
	// Node is the whole configuration of a node (nil for a hub).
	Node *config.Node
	// Directory is the signed directory the configuration names,
	// verified with its directory key for the configuration's
	// environment; nil when that failed.
	Directory *directory.Directory
	// DirectoryErr says why Directory is nil.
	DirectoryErr error
	// Attestations holds the operators' attestations (Load opens the
	// file store in the data directory).
	Attestations standard.Attestations
	// Now is the time of the check.
	Now time.Time
	// Live says how to look at the running process.
	Live Live
}

// Live configures the checks of the running process.
type Live struct {
	// Off skips every network probe and the listener inventory: only
	// configuration and files are checked.
	Off bool
	// Service, Console and Metrics are the addresses the process actually
	// listens on, when the configuration leaves a port to the system
	// ("127.0.0.1:0"); empty: the configured address.
	Service, Console, Metrics string
	// PID is the operating-system process that runs the hub or node; 0:
	// the process that owns the service listener, if it can be found.
	PID int
	// Shared lists further addresses the same operating-system process
	// may listen on: the other hubs and nodes of a dev network running
	// in one process.
	Shared []string
	// Timeout bounds each probe (default 3 s).
	Timeout time.Duration
}

func (l Live) timeout() time.Duration {
	if l.Timeout <= 0 {
		return 3 * time.Second
	}
	return l.Timeout
}

// Load reads and validates the configuration at path (a hub's or a node's,
// by its role), verifies the directory it names and opens the attestation
// store in its data directory. An invalid configuration is an error: the
// self-check reports on configurations the process would start with. A
// directory that does not verify is not an error here: the checks that
// need it fail.
func Load(path string) (*Env, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("selfcheck: %w", err)
	}
	var probe struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(b, &probe)
	env := &Env{ConfigPath: path, Role: probe.Role, Now: time.Now()}
	switch probe.Role {
	case "hub":
		c, err := config.LoadHub(path)
		if err != nil {
			return nil, fmt.Errorf("selfcheck: %w", err)
		}
		env.Hub, env.Common = c, &c.Common
	case "node":
		c, err := config.LoadNode(path)
		if err != nil {
			return nil, fmt.Errorf("selfcheck: %w", err)
		}
		env.Node, env.Common = c, &c.Common
	default:
		return nil, fmt.Errorf("selfcheck: %s: role: expected \"hub\" or \"node\", got %q", path, probe.Role)
	}
	env.Directory, env.DirectoryErr = loadDirectory(env.Common.Directory, env.Common.DirectoryKey, env.Common.Environment)
	st, err := standard.OpenFileAttestations(filepath.Join(env.Common.DataDir, standard.AttestationsFile))
	if err != nil {
		return nil, err
	}
	env.Attestations = st
	return env, nil
}

// loadDirectory reads and verifies the signed directory.
func loadDirectory(docPath, keyPath, env string) (*directory.Directory, error) {
	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("directory key: %w", err)
	}
	key, err := pki.ParsePublicKeyPEM(string(pemBytes))
	if err != nil {
		return nil, fmt.Errorf("directory key %s: %w", keyPath, err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	d, err := directory.Verify(doc, key, env)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", docPath, err)
	}
	return d, nil
}

// dev reports whether the Env is of the dev environment.
func (e *Env) dev() bool { return e.Common.Environment == pki.EnvDev }

// BackupsWritten reports whether backup.dir holds a copy of every log the
// process backs up (the hub its ledger and audit log, a node its audit
// log): after a fresh start, whether the first backup has been made.
func (e *Env) BackupsWritten() bool {
	if e.Common.Backup.Dir == "" {
		return false
	}
	r := &runState{env: e}
	for _, name := range r.backedUp() {
		if !isLogDir(filepath.Join(e.Common.Backup.Dir, name)) {
			return false
		}
	}
	return true
}
