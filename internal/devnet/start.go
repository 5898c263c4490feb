package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"taxlink/internal/daemon"
	"taxlink/internal/queue"
)

// Network is a dev network running in this process.
type Network struct {
	Layout *Layout
	Hub    *daemon.Service
	// Replicas are the hub's replicas when it is a cluster, Hub first
	// (an entry is nil once StopReplica stopped it).
	Replicas []*daemon.Service
	Nodes    map[string]*daemon.Service // by node ID
}

// Start starts the hub and every node of lay in this process, each through
// the same code path as `taxlink hub` and `taxlink node`.
func Start(ctx context.Context, lay *Layout, log *slog.Logger) (*Network, error) {
	net := &Network{Layout: lay, Nodes: map[string]*daemon.Service{}}
	if len(lay.HubReplicas) > 1 {
		if err := net.startReplicas(ctx, log); err != nil {
			return nil, err
		}
	} else {
		h, err := daemon.StartHub(ctx, lay.HubConfig, log.With("process", HubID))
		if err != nil {
			return nil, fmt.Errorf("devnet: hub: %w", err)
		}
		net.Hub = h
	}
	for _, n := range lay.Nodes {
		s, err := daemon.StartNode(ctx, n.Config, log.With("process", n.ID))
		if err != nil {
			net.Stop()
			return nil, fmt.Errorf("devnet: node %s: %w", n.ID, err)
		}
		net.Nodes[n.ID] = s
	}
	return net, nil
}

// startReplicas starts the replicas of a clustered hub together: each
// waits for the others to form the cluster.
func (n *Network) startReplicas(ctx context.Context, log *slog.Logger) error {
	n.Replicas = make([]*daemon.Service, len(n.Layout.HubReplicas))
	errs := make([]error, len(n.Layout.HubReplicas))
	var wg sync.WaitGroup
	for i, r := range n.Layout.HubReplicas {
		wg.Go(func() {
			n.Replicas[i], errs[i] = StartReplica(ctx, r, log)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		n.Stop()
		return fmt.Errorf("devnet: hub replicas: %w", err)
	}
	n.Hub = n.Replicas[0]
	return nil
}

// StartReplica starts one replica of a clustered hub in this process.
func StartReplica(ctx context.Context, r HubReplica, log *slog.Logger) (*daemon.Service, error) {
	return daemon.StartHub(ctx, r.Config, log.With("process", HubID, "replica", r.Route))
}

// Stop stops every process of the network, nodes first.
func (n *Network) Stop() {
	for _, s := range n.Nodes {
		_ = s.Stop()
	}
	if n.Replicas != nil {
		for _, r := range n.Replicas {
			if r != nil {
				_ = r.Stop()
			}
		}
		return
	}
	if n.Hub != nil {
		_ = n.Hub.Stop()
	}
}

// Queue returns the hub's durable store.
func (n *Network) Queue() *queue.Queue { return n.Hub.Queue }

// Recorded returns how many envelopes the node hosting recipient has
// recorded for it: 0 while that node is not running or cannot count (a
// test waits for a count to be reached).
func (n *Network) Recorded(ctx context.Context, recipient string) int64 {
	host, err := n.Hub.Directory().HostOf(recipient)
	if err != nil {
		return 0
	}
	svc, ok := n.Nodes[host.ID]
	if !ok {
		return 0
	}
	c, _ := svc.Store.Count(ctx, recipient)
	return c
}

// EditConfig rewrites the JSON configuration file at path with edit
// applied to its decoded form, keeping the file's mode: how a test or a
// Prepare step changes a setting of the network written by Init.
func EditConfig(path string, edit func(cfg map[string]any)) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("devnet: %s: %w", path, err)
	}
	edit(cfg)
	if raw, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return fmt.Errorf("devnet: %s: %w", path, err)
	}
	return os.WriteFile(path, raw, fi.Mode().Perm())
}

// InitAndStart writes a dev network into dir (emptied first) and starts it
// in this process. Free ports are picked when the layout is written and
// bound when the processes start; another program can take one in
// between, so a start that fails on a port in use is tried again with new
// ports (up to five times).
func InitAndStart(ctx context.Context, dir string, opts Options, log *slog.Logger) (*Network, error) {
	// Only what this function wrote is ever removed: dir must start empty.
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("devnet: %s must be an empty directory", dir)
	}
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			if err := emptyDir(dir); err != nil {
				return nil, err
			}
		}
		lay, err := Init(dir, opts)
		if err != nil {
			return nil, err
		}
		if opts.Prepare != nil {
			if err := opts.Prepare(lay); err != nil {
				return nil, fmt.Errorf("devnet: prepare: %w", err)
			}
		}
		nw, err := Start(ctx, lay, log)
		if err == nil {
			return nw, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// emptyDir removes everything inside dir, creating it if needed.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
