package drill_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/drill"
)

// TestAttackRunningNetwork runs the drill against a network started from
// the files of `taxlink dev --init` and reached only through its
// listeners and files (the path of `taxlink drill attack --config`).
func TestAttackRunningNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("the slow-client attacks wait out the server's timeouts (~30 s)")
	}
	dir := t.TempDir()
	lay, err := devnet.Init(dir, devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	h, err := daemon.StartHub(ctx, lay.HubConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	for _, n := range lay.Nodes {
		if n.ID == devnet.NTAID {
			continue // the drill loads the NTA node's configuration itself
		}
		s, err := daemon.StartNode(ctx, n.Config, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
	}
	results, sum, err := drill.AttackRunning(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Blocked {
			t.Errorf("NOT BLOCKED: %s: %s", r.Attack, r.Detail)
		}
	}
	if !sum.Passed || sum.Attacks < 25 || sum.Lost != 0 {
		t.Errorf("summary %+v", sum)
	}
}
