package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestIsolationSmall runs Isolation with a small backlog and short windows
// and checks the report's consistency (not the goal: a shared test
// machine is too noisy for a 10% bound on 5 s windows).
func TestIsolationSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev network and runs for about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := Isolation(ctx, IsolationOptions{
		Queued: 500, Duration: 5 * time.Second, Warmup: time.Second, Concurrency: 8,
		FillConcurrency: 8, Settle: -1, DrainMax: 30 * time.Second, Dir: t.TempDir(), RestartHub: true,
	}, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Queued != 500 || r.BacklogAfterFill != 500 || r.BacklogEndOfWindow != 500 {
		t.Errorf("queued %d, backlog after fill %d, at the window's end %d: want 500", r.Queued, r.BacklogAfterFill, r.BacklogEndOfWindow)
	}
	if r.BaselinePerS <= 0 || r.WithBacklogPerS <= 0 || r.FillPerS <= 0 {
		t.Errorf("rates: baseline %v, with backlog %v, fill %v", r.BaselinePerS, r.WithBacklogPerS, r.FillPerS)
	}
	if math.Abs(r.Ratio-r.WithBacklogPerS/r.BaselinePerS) > 1e-9 {
		t.Errorf("ratio %v is not %v / %v", r.Ratio, r.WithBacklogPerS, r.BaselinePerS)
	}
	if !r.DrainComplete || r.DrainRemaining != 0 {
		t.Errorf("drain incomplete: %d remain", r.DrainRemaining)
	}
	if r.DrainPerS <= 0 || math.Abs(r.DrainRatio-r.DrainPerS/r.BaselinePerS) > 1e-9 {
		t.Errorf("drain %v /s, ratio %v", r.DrainPerS, r.DrainRatio)
	}
	if r.DownFailuresInWindow <= 0 {
		t.Errorf("no failed delivery attempt to the down recipient during the window")
	}
	if r.Passed != (r.Ratio >= IsolationGoal && len(r.Failures) == 0) {
		t.Errorf("passed %v with ratio %v and failures %q", r.Passed, r.Ratio, r.Failures)
	}
	if r.ClockOffsetH != 24 || r.OldestQueuedAgeH < 24 {
		t.Errorf("clock offset %v h, oldest queued %v h", r.ClockOffsetH, r.OldestQueuedAgeH)
	}
	// The restarted hub accepted again; a time, not a goal, is checked.
	if r.HubRestartMet == nil || r.HubRestartAcceptS <= 0 || r.HubRestartAcceptS < r.HubRestartStartS {
		t.Errorf("hub restart: met %v, start %v s, accepting %v s", r.HubRestartMet, r.HubRestartStartS, r.HubRestartAcceptS)
	}
}

// TestIsolationFull runs Isolation at full size when
// TAXLINK_BENCH_ISOLATION_QUEUED is set (e.g. 100000), with windows of
// TAXLINK_BENCH_ISOLATION_DURATION (default 30s), and prints the report as
// `taxlink bench isolation` would.
func TestIsolationFull(t *testing.T) {
	qs := os.Getenv("TAXLINK_BENCH_ISOLATION_QUEUED")
	if qs == "" {
		t.Skip("set TAXLINK_BENCH_ISOLATION_QUEUED to run")
	}
	q, err := strconv.Atoi(qs)
	if err != nil {
		t.Fatal(err)
	}
	o := IsolationOptions{Queued: q}
	if d := os.Getenv("TAXLINK_BENCH_ISOLATION_DURATION"); d != "" {
		if o.Duration, err = time.ParseDuration(d); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Isolation(context.Background(), o, func(s string) { fmt.Fprintln(os.Stderr, "isolation:", s) })
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteIsolationReport(os.Stdout, r); err != nil {
		t.Fatal(err)
	}
}
