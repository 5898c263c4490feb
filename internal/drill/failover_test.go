package drill

import (
	"context"
	"testing"
	"time"
)

// TestFailover runs a short failover drill: a 3-replica hub cluster of
// real processes loses the replica every node uses, under traffic.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a replica cluster for about a minute; skipped with -short")
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Failover(ctx, FailoverOptions{Binary: bin, Duration: 20 * time.Second, Kills: 1, Seed: 20261129, Progress: testWriter{t: t}})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	logReport(t, s, rep.Problems, rep.Dir)
	if s.Kills != 1 || len(rep.Kills) != 1 || rep.Kills[0].Target != "hub-1" {
		t.Errorf("kills %d %+v, want hub-1 killed once", s.Kills, rep.Kills)
	}
	if s.Sent < 200 || s.Accepted != s.Sent || s.Recorded != s.Sent || s.Lost != 0 || s.Duplicates != 0 {
		t.Errorf("sent %d, accepted %d, recorded %d, lost %d, duplicates %d", s.Sent, s.Accepted, s.Recorded, s.Lost, s.Duplicates)
	}
	if s.MaxAcceptGapMS > s.GapLimitMS {
		t.Errorf("acceptance paused %d ms after the loss, limit %d", s.MaxAcceptGapMS, s.GapLimitMS)
	}
	if !s.ReplicaLedgersAgree || len(s.ReplicaEntries) != 3 || !s.LedgerConsistent {
		t.Errorf("ledgers: replicas agree %v %v, consistent %v", s.ReplicaLedgersAgree, s.ReplicaEntries, s.LedgerConsistent)
	}
	if !s.Passed {
		t.Errorf("the drill failed: %v", rep.Problems)
	}
}
