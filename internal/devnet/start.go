package devnet

import (
	"context"
	"fmt"
	"log/slog"

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
