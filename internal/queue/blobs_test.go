package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"taxlink/internal/blob"
	"taxlink/internal/blob/blobtest"
)

// TestChunksConformance runs the blob suite against the chunks replicas
// keep in JetStream.
func TestChunksConformance(t *testing.T) {
	q := open(t, t.TempDir())
	t.Cleanup(q.Close)
	blobtest.Run(t, func(*testing.T) blob.Store { return q.blobs })
}

// TestBlobsRemovedAndSwept checks, for a hub running alone, that a
// delivered envelope's blob file is removed, that a sweep removes old
// files no entry names (a hub killed between a blob and its entry) and
// keeps those of queued envelopes and recent ones, and that a queue of
// replicas refuses a blob directory.
func TestBlobsRemovedAndSwept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	q := openBlobs(t, dir, "files")
	defer q.Close()
	blobs := filepath.Join(dir, "blobs")
	files := func() []string {
		ents, err := os.ReadDir(blobs)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	big := blobtest.Pattern(3*chunkSize, 9)
	if _, _, err := q.Enqueue(ctx, "lg:011002", "DELIVERED", []byte("PRE"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 1 {
		t.Fatalf("%d blob files after one big enqueue, want 1", n)
	}
	if got := readFirst(t, ctx, q, "lg:011002"); !bytes.Equal(got, append([]byte("PRE"), big...)) {
		t.Fatal("the envelope read back different")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(files()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the delivered envelope's blob is still there: %v", files())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Queued for a recipient nobody consumes: its blob must stay.
	if _, _, err := q.Enqueue(ctx, "lg:130001", "QUEUED", []byte("PRE"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	queued := files()
	orphan, err := q.files.Put(ctx, "lg_130001.ORPHAN", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	other, err := q.files.Put(ctx, "lg_011002.ORPHAN", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	recent, err := q.files.Put(ctx, "lg_130001.RECENT", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, name := range append([]string{orphan, other}, queued...) {
		if err := os.Chtimes(filepath.Join(blobs, name), past, past); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.SweepBlobs(ctx, 10*time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d (%v), want the 2 orphans", n, err)
	}
	left := files()
	want := append(slices.Clone(queued), recent)
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("after the sweep: %v, want the queued envelope's and the recent blob %v", left, want)
	}

	if _, err := Open(ctx, Options{StoreDir: t.TempDir(), BlobDir: t.TempDir(), External: &External{URL: "tls://127.0.0.1:1"}}); err == nil {
		t.Fatal("a queue on a shared JetStream took a blob directory")
	}
}
