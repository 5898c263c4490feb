package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWriterGroupCommit holds the writer with one write while ten more
// arrive, and checks that those ten commit together in one transaction,
// that the one failing among them is undone alone, and that a write whose
// context ended while it waited never runs.
func TestWriterGroupCommit(t *testing.T) {
	db := Open(filepath.Join(t.TempDir(), "t.db"), Options{})
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(db)
	insert := func(tx *sql.Tx, x int) error {
		_, err := tx.Exec("INSERT INTO t (x) VALUES (?)", x)
		return err
	}
	pending := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.pending)
	}
	waitPending := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for pending() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes pending, want %d", pending(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	release, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Tx(ctx, func(tx *sql.Tx) error { close(holding); <-release; return insert(tx, 0) }); err != nil {
			t.Errorf("the first write: %v", err)
		}
	})
	<-holding // the first write holds the writer

	// A write whose context ends while it waits is withdrawn.
	cctx, cancel := context.WithCancel(ctx)
	ran := false
	done := make(chan error)
	go func() { done <- w.Tx(cctx, func(tx *sql.Tx) error { ran = true; return nil }) }()
	waitPending(1)
	cancel()
	var te *TxError
	if err := <-done; !errors.As(err, &te) || te.Step != "waiting for the write slot" || ran {
		t.Fatalf("a cancelled write: %v (ran %v)", err, ran)
	}

	var mu sync.Mutex
	txs := map[*sql.Tx]bool{}
	errBad := errors.New("bad write")
	errs := make([]error, 10)
	for i := range 10 {
		wg.Go(func() {
			errs[i] = w.Tx(ctx, func(tx *sql.Tx) error {
				mu.Lock()
				txs[tx] = true
				mu.Unlock()
				if err := insert(tx, i+1); err != nil {
					return err
				}
				if i == 3 {
					return errBad
				}
				return nil
			})
		})
	}
	waitPending(10)
	close(release)
	wg.Wait()
	for i, err := range errs {
		if want := error(nil); i == 3 {
			if !errors.Is(err, errBad) {
				t.Errorf("write %d: %v, want its own error", i, err)
			}
		} else if err != want {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if len(txs) != 1 {
		t.Errorf("the ten writes ran in %d transactions, want 1", len(txs))
	}
	var got []int
	rows, err := db.QueryContext(ctx, "SELECT x FROM t ORDER BY x")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	if want := "[0 1 2 3 5 6 7 8 9 10]"; fmt.Sprint(got) != want {
		t.Errorf("rows %v, want %s (write 4 undone alone)", got, want)
	}
}

// BenchmarkWriter inserts one row per write, from 1 and from 32 writers
// at once: with group commit the concurrent writes share commits, so
// their rate is a multiple of the single writer's (one fsync per commit).
func BenchmarkWriter(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db := Open(filepath.Join(b.TempDir(), "t.db"), Options{})
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
				b.Fatal(err)
			}
			w := NewWriter(db)
			ctx := context.Background()
			b.SetParallelism(writers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Tx(ctx, func(tx *sql.Tx) error {
						_, err := tx.Exec("INSERT INTO t (x) VALUES (1)")
						return err
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
