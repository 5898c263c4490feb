package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"taxlink/internal/lgdata"
)

func open(t *testing.T, dir string) *Queue {
	t.Helper()
	return openAlone(t, dir)
}

// eachLayout runs test as a subtest for each way a queue keeps its
// entries and the ciphertexts above its inline limit: a hub alone with
// blob files, a hub alone with blob chunks in JetStream, and hubs sharing
// an external JetStream (entries in its work queues, blobs in chunks).
// open opens the subtest's queue, again on the same storage when called
// again (a restart).
func eachLayout(t *testing.T, test func(t *testing.T, open func() *Queue)) {
	for _, kind := range []string{"files", "chunks", "shared"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{StoreDir: filepath.Join(dir, "jetstream"), InlineMax: 1024}
			switch kind {
			case "files":
				o.BlobDir = filepath.Join(dir, "blobs")
			case "shared":
				ext, _ := startExternal(t)
				o = Options{External: ext(), InlineMax: 1024}
			}
			test(t, func() *Queue {
				t.Helper()
				q, err := Open(t.Context(), o)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return q
			})
		})
	}
}

type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("digest mismatch (injected)")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestEnqueueConsumeAcrossRestart stores an inline and a chunked envelope,
// a duplicate and a failed one, restarts JetStream, and consumes.
func TestEnqueueConsumeAcrossRestart(t *testing.T) {
	eachLayout(t, testEnqueueConsumeAcrossRestart)
}

func testEnqueueConsumeAcrossRestart(t *testing.T, open func() *Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := open()
	small := bytes.Repeat([]byte("s"), 100)
	big := make([]byte, 3*chunkSize+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	pre := []byte("PRE")
	seq1, dup, err := q.Enqueue(ctx, "lg:011002", "ID1", pre, bytes.NewReader(small), int64(len(small)))
	if err != nil || dup {
		t.Fatalf("enqueue small: %v dup=%v", err, dup)
	}
	if _, _, err := q.Enqueue(ctx, "lg:011002", "ID2", pre, bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatalf("enqueue big: %v", err)
	}
	seqDup, dup, err := q.Enqueue(ctx, "lg:011002", "ID1", pre, bytes.NewReader(small), int64(len(small)))
	if err != nil || !dup || seqDup != seq1 {
		t.Fatalf("repeat: seq %d dup %v err %v; want seq %d dup true", seqDup, dup, err, seq1)
	}
	if _, _, err := q.Enqueue(ctx, "lg:011002", "ID3", pre, &failAfter{bytes.NewReader(big), chunkSize + 10}, int64(len(big))); err == nil {
		t.Fatal("a failing reader was enqueued")
	}
	if n, _ := q.Backlog(ctx, "lg:011002"); n != 2 {
		t.Fatalf("backlog %d, want 2 (the failed one must leave nothing)", n)
	}
	q.Close()

	q = open()
	defer q.Close()
	if n, _ := q.Backlog(ctx, "lg:011002"); n != 2 {
		t.Fatalf("backlog %d after the restart, want 2", n)
	}
	got := map[string][]byte{}
	var mu sync.Mutex
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, "lg:011002", 2, 0, func(ctx context.Context, it *Item) error {
			body, err := it.Body(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			mu.Lock()
			got[it.ID] = b
			mu.Unlock()
			return nil
		})
	}()
	for {
		n, _ := q.Backlog(ctx, "lg:011002")
		if n == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("queue never drained")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	if !bytes.Equal(got["ID1"], append(pre, small...)) {
		t.Errorf("inline envelope came back different")
	}
	if !bytes.Equal(got["ID2"], append(pre, big...)) {
		t.Errorf("chunked envelope came back different (%d bytes, want %d)", len(got["ID2"]), len(pre)+len(big))
	}
	if _, ok := got["ID3"]; ok {
		t.Errorf("the failed envelope was delivered")
	}
}

// TestManyRecipients checks that hubs sharing a JetStream can hold a
// delivery consumer for every local government, over its shards.
func TestManyRecipients(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,800 consumers")
	}
	ctx := context.Background()
	ext, _ := startExternal(t)
	q, err := Open(ctx, Options{External: ext()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 1800 {
		tok := fmt.Sprintf("lg_%06d", i)
		stream, subj := shardOf(tok)
		if _, err := q.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "d_" + tok, FilterSubject: subj, AckPolicy: jetstream.AckExplicitPolicy, MemoryStorage: true,
		}); err != nil {
			t.Fatalf("consumer %d: %v", i, err)
		}
	}
}

// TestRetryAfterFailedChunkedEnqueue enqueues a chunked envelope whose
// first attempt fails midway (a cut connection) and retries the same ID at
// once, as a sender does: every chunk of the accepted envelope must be
// readable. Chunk messages once carried a deduplication ID, so the retry's
// chunks were answered with the purged first attempt's sequences and the
// accepted envelope could never be delivered.
func TestRetryAfterFailedChunkedEnqueue(t *testing.T) {
	eachLayout(t, testRetryAfterFailedChunkedEnqueue)
}

func testRetryAfterFailedChunkedEnqueue(t *testing.T, open func() *Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := open()
	defer q.Close()
	big := make([]byte, 6*chunkSize+77)
	for i := range big {
		big[i] = byte(i * 13)
	}
	if _, _, err := q.Enqueue(ctx, "lg:011002", "RETRY", []byte("PRE"), &failAfter{bytes.NewReader(big), 3*chunkSize + 5}, int64(len(big))); err == nil {
		t.Fatal("the cut attempt was enqueued")
	}
	if _, _, err := q.Enqueue(ctx, "lg:011002", "RETRY", []byte("PRE"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := readFirst(t, ctx, q, "lg:011002"); !bytes.Equal(got, append([]byte("PRE"), big...)) {
		t.Fatalf("the retried envelope came back different (%d bytes)", len(got))
	}
}

// TestConcurrentChunkedEnqueueSameID enqueues the same chunked envelope
// from two goroutines at once (a sender retrying while its first upload is
// still running): one entry is queued, and it reads back whole.
func TestConcurrentChunkedEnqueueSameID(t *testing.T) {
	eachLayout(t, testConcurrentChunkedEnqueueSameID)
}

func testConcurrentChunkedEnqueueSameID(t *testing.T, open func() *Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := open()
	defer q.Close()
	big := make([]byte, 9*chunkSize+1)
	for i := range big {
		big[i] = byte(i * 31)
	}
	var wg sync.WaitGroup
	dups := make(chan bool, 2)
	for range 2 {
		wg.Go(func() {
			_, dup, err := q.Enqueue(ctx, "lg:011002", "TWICE", []byte("PRE"), bytes.NewReader(big), int64(len(big)))
			if err != nil {
				t.Errorf("enqueue: %v", err)
			}
			dups <- dup
		})
	}
	wg.Wait()
	close(dups)
	fresh := 0
	for d := range dups {
		if !d {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d attempts queued a new entry, want exactly 1", fresh)
	}
	if got := readFirst(t, ctx, q, "lg:011002"); !bytes.Equal(got, append([]byte("PRE"), big...)) {
		t.Fatalf("the envelope came back different (%d bytes)", len(got))
	}
}

// readFirst consumes the first envelope queued for recipient and returns
// it whole, failing the test if it cannot be read before ctx ends.
func readFirst(t *testing.T, ctx context.Context, q *Queue, recipient string) []byte {
	t.Helper()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	got := make(chan []byte, 1)
	go func() {
		_ = q.Consume(cctx, recipient, 1, 0, func(ctx context.Context, it *Item) error {
			body, err := it.Body(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Errorf("reading the queued envelope %s: %v", it.ID, err)
				return err
			}
			got <- b
			return nil
		})
	}()
	select {
	case b := <-got:
		return b
	case <-ctx.Done():
		t.Fatal("the envelope was never read whole")
		return nil
	}
}

// TestShardsSpread checks that the 1,788 local governments' queues spread
// over the work-queue streams evenly enough that no stream's
// acknowledgements walk many more consumers than another's, and that a
// recipient always lands in the same stream.
func TestShardsSpread(t *testing.T) {
	all, err := lgdata.All()
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, g := range all {
		tok := Token(g.ParticipantID())
		stream, subj := shardOf(tok)
		if again, _ := shardOf(tok); again != stream {
			t.Fatalf("%s moved from %s to %s", tok, stream, again)
		}
		if !strings.HasSuffix(subj, "."+tok) {
			t.Fatalf("subject %s does not end in the token %s", subj, tok)
		}
		per[stream]++
	}
	if len(per) != queueShards {
		t.Fatalf("%d of %d streams hold a queue: %v", len(per), queueShards, per)
	}
	mean := len(all) / queueShards
	for s, n := range per {
		if n > 2*mean {
			t.Errorf("stream %s holds %d queues, over twice the mean %d", s, n, mean)
		}
	}
}

// TestConsumeIdle checks that Consume of a hub alone with an idle time
// returns ErrIdle once its queue stayed empty, but not while a delivery is
// in hand, and that what was queued meanwhile is delivered.
func TestConsumeIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := open(t, t.TempDir())
	defer q.Close()
	const rcpt = "lg:011002"

	start := time.Now()
	err := q.Consume(ctx, rcpt, 2, 100*time.Millisecond, func(context.Context, *Item) error { return nil })
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("Consume on an empty queue: %v, want ErrIdle", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("idle after %v, before the idle time of 100ms", time.Since(start))
	}

	// A delivery held for longer than the idle time keeps Consume going.
	if _, _, err := q.Enqueue(ctx, rcpt, "ID1", []byte("PRE"), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var delivered []string
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, rcpt, 2, 100*time.Millisecond, func(ctx context.Context, it *Item) error {
			if it.ID == "ID1" {
				<-release
			}
			delivered = append(delivered, it.ID)
			return nil
		})
	}()
	select {
	case err := <-done:
		t.Fatalf("Consume returned %v with a delivery in hand", err)
	case <-time.After(400 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("Consume after the delivery: %v, want ErrIdle", err)
		}
	case <-ctx.Done():
		t.Fatal("Consume did not stop once idle after its delivery")
	}
	if n, _ := q.Backlog(ctx, rcpt); n != 0 || len(delivered) != 1 {
		t.Errorf("delivered %v, backlog %d: want ID1 delivered and acknowledged", delivered, n)
	}
}
