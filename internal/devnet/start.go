package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"taxlink/internal/daemon"
	"taxlink/internal/queue"
)

// Network is a dev network running in this process.
type Network struct {
	Layout *Layout
	Hub    *daemon.Service
	Nodes  map[string]*daemon.Service // by node ID
}

// Start starts the hub and every node of lay in this process, each through
// the same code path as `taxlink hub` and `taxlink node`.
func Start(ctx context.Context, lay *Layout, log *slog.Logger) (*Network, error) {
	net := &Network{Layout: lay, Nodes: map[string]*daemon.Service{}}
	h, err := daemon.StartHub(ctx, lay.HubConfig, log.With("process", HubID))
	if err != nil {
		return nil, fmt.Errorf("devnet: hub: %w", err)
	}
	net.Hub = h
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

// Stop stops every process of the network, nodes first.
func (n *Network) Stop() {
	for _, s := range n.Nodes {
		_ = s.Stop()
	}
	if n.Hub != nil {
		_ = n.Hub.Stop()
	}
}

// Queue returns the hub's durable store.
func (n *Network) Queue() *queue.Queue { return n.Hub.Queue }

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
