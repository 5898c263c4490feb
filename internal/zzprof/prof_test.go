package zzprof

import (
	"context"
	"log/slog"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"taxlink/internal/devnet"
)

func TestProfile(t *testing.T) {
	dir := t.TempDir()
	lay, err := devnet.Init(dir, devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := devnet.Widen(lay, 1788); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nw, err := devnet.Start(ctx, lay, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	if _, err := devnet.RunWorkload(ctx, nw, 1788, 1, 5*time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create("/tmp/cpu.prof")
	pprof.StartCPUProfile(f)
	start := time.Now()
	sum, err := devnet.RunWorkload(ctx, nw, 4000, 2, 5*time.Minute, nil)
	pprof.StopCPUProfile()
	t.Logf("%v %+v in %v", err, sum.PerSecond, time.Since(start))
}
