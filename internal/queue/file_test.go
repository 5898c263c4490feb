package queue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"
)

// TestMoveShards starts a hub alone on what an earlier version left in
// JetStream's work-queue streams (entries for two recipients, one naming
// a blob, a delivery consumer): every entry is moved into the file in its
// order, with its time, and delivered from there; the streams are gone.
func TestMoveShards(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := Options{StoreDir: filepath.Join(dir, "jetstream"), BlobDir: filepath.Join(dir, "blobs"), InlineMax: 16}
	q, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// What the earlier version wrote: its streams, entries and consumer.
	rcpts := []string{"lg:011002", "lg:131016"}
	for n := range queueShards {
		name, subjects := shard(n)
		if _, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subjects},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("B"), 100)
	ref, err := q.blobs.Put(ctx, Token(rcpts[0])+".ID-BIG", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		for _, r := range rcpts {
			id := fmt.Sprintf("ID-%d-%s", i, Token(r))
			_, subj := shardOf(Token(r))
			m := nats.NewMsg(subj)
			m.Header.Set(jetstream.MsgIDHeader, id)
			m.Data = []byte("PRE" + id)
			if i == 2 && r == rcpts[0] {
				id = "ID-BIG"
				m.Header.Set(jetstream.MsgIDHeader, id)
				m.Header.Set(blobHeader, ref)
				m.Data = []byte("PRE")
			}
			if _, err := q.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			if r == rcpts[0] {
				want = append(want, id)
			}
		}
	}
	stream, subj := shardOf(Token(rcpts[0]))
	if _, err := q.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "d_" + Token(rcpts[0]),
		FilterSubject: subj, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	before := time.Now()
	q, err = Open(ctx, o)
	if err != nil {
		t.Fatalf("open over the earlier version's streams: %v", err)
	}
	defer q.Close()
	for _, r := range rcpts {
		name, _ := shardOf(Token(r))
		if _, err := q.js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %s after the move: %v, want it deleted", name, err)
		}
		if n, _ := q.Backlog(ctx, r); n != 5 {
			t.Errorf("backlog of %s after the move: %d, want 5", r, n)
		}
	}
	if at, ok, err := q.Oldest(ctx, Token(rcpts[0])); err != nil || !ok || at.After(before) {
		t.Errorf("oldest entry at %v (%v, %v): want the time it was queued, before %v", at, ok, err, before)
	}
	var got []string
	var mu sync.Mutex
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	err = q.Consume(cctx, rcpts[0], 1, 200*time.Millisecond, func(ctx context.Context, it *Item) error {
		b, err := it.Body(ctx)
		if err != nil {
			return err
		}
		defer b.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(b); err != nil {
			return err
		}
		if it.ID == "ID-BIG" && !bytes.Equal(buf.Bytes(), append([]byte("PRE"), big...)) {
			t.Errorf("the moved entry naming a blob read back %d bytes", buf.Len())
		}
		mu.Lock()
		got = append(got, it.ID)
		mu.Unlock()
		return nil
	})
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("consume: %v, want ErrIdle after the moved entries", err)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("delivered %v, want in order %v", got, want)
	}
	if n, _ := q.Total(ctx); n != 5 {
		t.Errorf("%d entries left, want the other recipient's 5", n)
	}
}

// TestFileRefusesOtherDatabases opens a hub alone whose queue file is some
// other SQLite database: the open fails, naming the file, and changes
// nothing in it.
func TestFileRefusesOtherDatabases(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "jetstream")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(store, FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE other (x); INSERT INTO other VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	q, err := Open(t.Context(), Options{StoreDir: store})
	if err == nil {
		q.Close()
		t.Fatal("opened a queue over another SQLite database")
	}
	if !strings.Contains(err.Error(), "not a hub queue") || !strings.Contains(err.Error(), FileName) {
		t.Errorf("error %q: want it to say the file is not a hub queue and name it", err)
	}
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query("SELECT name FROM sqlite_master ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	var x int
	if err := db.QueryRow("SELECT x FROM other").Scan(&x); err != nil || x != 1 || strings.Join(tables, ",") != "other" {
		t.Errorf("the refused file now holds tables %v, row %d (%v): want only its own, unchanged", tables, x, err)
	}
}

// TestClusterRefusesQueuedFile starts a replica of a cluster on the store
// of a hub that ran alone with envelopes still queued: it refuses, saying
// why, before it starts anything, and the entries stay.
func TestClusterRefusesQueuedFile(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "jetstream")
	q, err := Open(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, "lg:011002", "ID1", []byte("PRE"), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	q.Close()
	cl := &Cluster{Name: "c", ServerName: "r1", Listen: "127.0.0.1:0", Routes: []string{"127.0.0.1:1"}}
	if q, err := Open(ctx, Options{StoreDir: dir, Cluster: cl}); err == nil {
		q.Close()
		t.Fatal("a replica started over a queue file with an envelope queued")
	} else if !strings.Contains(err.Error(), "holds 1 envelopes") || !strings.Contains(err.Error(), "alone") {
		t.Errorf("refusal %q: want the count and what to do", err)
	}
	q, err = Open(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, _ := q.Total(ctx); n != 1 {
		t.Errorf("%d entries after the refusal, want 1", n)
	}
}

// TestConsumeWhileEnqueuing enqueues from many goroutines while the
// recipient's loop of a hub alone delivers: every entry is delivered once,
// none is left behind, and the backlog ends at zero.
func TestConsumeWhileEnqueuing(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	q := open(t, t.TempDir())
	defer q.Close()
	const rcpt, writers, each = "lg:011002", 8, 100
	var mu sync.Mutex
	seen := map[string]int{}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, rcpt, 3, 0, func(_ context.Context, it *Item) error {
			mu.Lock()
			seen[it.ID]++
			mu.Unlock()
			return nil
		})
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, _, err := q.Enqueue(ctx, rcpt, fmt.Sprintf("W%d-%d", w, i), []byte("PRE"), strings.NewReader("x"), 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for {
		n, _ := q.Backlog(ctx, rcpt)
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if n == 0 && got == writers*each {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d delivered, backlog %d: entries were left behind", got, writers*each, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// TestFileGivesSpaceBack drains a backlog from a hub alone's queue file:
// the pages the backlog freed are given back as it drains (the file's page
// count falls to a fraction of its peak), and entries go on arriving and
// leaving.
func TestFileGivesSpaceBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	q, err := Open(ctx, Options{StoreDir: filepath.Join(dir, "jetstream"), File: filepath.Join(dir, FileName), BlobDir: filepath.Join(dir, "blobs"), InlineMax: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.file.minFree, q.file.step, q.file.every = 256, 128, 50 // 1 MiB, in steps of 512 KiB
	pages := func() int64 {
		var n int64
		if err := q.file.db.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const rcpt, n = "lg:011002", 300
	body := bytes.Repeat([]byte("c"), 32<<10)
	for i := range n {
		if _, _, err := q.Enqueue(ctx, rcpt, fmt.Sprintf("ID%03d", i), []byte("PRE"), bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	peak := pages()
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, rcpt, 4, 0, func(context.Context, *Item) error { return nil })
	}()
	for {
		if left, _ := q.Total(ctx); left == 0 && pages() < peak/4 {
			break
		}
		if ctx.Err() != nil {
			left, _ := q.Total(ctx)
			t.Fatalf("%d entries left, %d pages of a peak of %d: the drained backlog's pages were not given back", left, pages(), peak)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := q.Enqueue(ctx, rcpt, "AFTER", []byte("PRE"), bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("enqueue after giving space back: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for left, _ := q.Total(ctx); left != 0; left, _ = q.Total(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("the entry queued after the vacuum was not delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
}
