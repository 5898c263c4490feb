package drill_test

import (
	"context"
	"testing"
	"time"

	"taxlink/internal/devnet/devtest"
	"taxlink/internal/drill"
)

// TestAttackDrill runs every attack against a fresh dev network and
// requires each to be blocked with no legitimate notification lost.
func TestAttackDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the slow-client attacks wait out the server's timeouts (~30 s)")
	}
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	results, sum, err := drill.Attack(ctx, nw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Blocked {
			t.Errorf("NOT BLOCKED: %s (expected defence: %s): %s", r.Attack, r.Defence, r.Detail)
		}
	}
	if sum.Attacks < 25 {
		t.Errorf("only %d attacks; the drill must run at least 25", sum.Attacks)
	}
	if sum.LegitSent == 0 || sum.Lost != 0 {
		t.Errorf("legitimate traffic: %d sent, %d lost", sum.LegitSent, sum.Lost)
	}
	if !sum.Passed {
		t.Errorf("summary not passed: %+v", sum)
	}
}
