package queue

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
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

// TestBlobsRemovedAndSwept checks, for either way of keeping blobs, that a
// delivered envelope's blob is removed, and that a sweep removes the old
// blobs no entry names (a hub killed between a blob and its entry) and
// keeps those of queued envelopes and recent ones.
func TestBlobsRemovedAndSwept(t *testing.T) {
	eachLayout(t, testBlobsRemovedAndSwept)
}

func testBlobsRemovedAndSwept(t *testing.T, open func() *Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := open()
	defer q.Close()
	names := func() []string {
		out, err := q.blobs.stale(ctx, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	big := blobtest.Pattern(3*chunkSize, 9)
	if _, _, err := q.Enqueue(ctx, "lg:011002", "DELIVERED", []byte("PRE"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if n := len(names()); n != 1 {
		t.Fatalf("%d blobs after one big enqueue, want 1", n)
	}
	if got := readFirst(t, ctx, q, "lg:011002"); !bytes.Equal(got, append([]byte("PRE"), big...)) {
		t.Fatal("the envelope read back different")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(names()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the delivered envelope's blob is still there: %v", names())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if n, err := q.BlobBytes(ctx); err != nil || n != 0 {
		t.Fatalf("blob bytes once delivered: %d (%v), want 0", n, err)
	}

	// Queued for a recipient nobody consumes: its blob must stay.
	if _, _, err := q.Enqueue(ctx, "lg:130001", "QUEUED", []byte("PRE"), bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	queued := names()
	if n, err := q.BlobBytes(ctx); err != nil || n < int64(len(big)) {
		t.Fatalf("blob bytes with one queued: %d (%v), want at least %d", n, err, len(big))
	}
	for _, key := range []string{"lg_130001.ORPHAN", "lg_011002.ORPHAN"} {
		if _, err := q.blobs.Put(ctx, key, bytes.NewReader(big)); err != nil {
			t.Fatal(err)
		}
	}
	// File times come from the kernel's coarse clock, up to a tick behind
	// time.Now: the recent blob is written well after the mark.
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	if _, err := q.blobs.Put(ctx, "lg_130001.RECENT", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	before := names()
	n, err := q.sweepBlobs(ctx, mark)
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d (%v), want the 2 orphans", n, err)
	}
	var want []string
	for _, name := range before {
		if !strings.Contains(name, ".ORPHAN.") {
			want = append(want, name)
		}
	}
	if left := names(); !slices.Equal(left, want) || len(left) != len(queued)+1 {
		t.Fatalf("after the sweep: %v, want the queued envelope's %v and the recent blob", left, queued)
	}
}

// TestBlobDirAlone checks that a queue on a shared JetStream refuses a
// blob directory: its replicas could not read each other's files.
func TestBlobDirAlone(t *testing.T) {
	_, err := Open(context.Background(), Options{StoreDir: t.TempDir(), BlobDir: t.TempDir(), External: &External{URL: "tls://127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "blob directory") {
		t.Fatalf("a queue on a shared JetStream took a blob directory: %v", err)
	}
}

// FuzzParseChunkRef checks that a chunk reference is accepted only in the
// one form Put writes: a blob subject, a colon, and canonical sequences.
func FuzzParseChunkRef(f *testing.F) {
	f.Add("b.lg_011002.01JH8Z5V6Q3K4M7N8P9R0S1T2V.0123456789abcdef:1,2,3")
	f.Add("b.lg_011002.X.0123456789abcdef:")
	f.Add("b.lg_011002.X.0123456789abcdef:01")
	f.Add("lg_011002.X.0123456789abcdef")
	f.Fuzz(func(t *testing.T, ref string) {
		subj, seqs, err := parseChunkRef(ref)
		if err != nil {
			return
		}
		list := make([]string, len(seqs))
		for i, s := range seqs {
			if s == 0 {
				t.Fatalf("%q: sequence 0 accepted", ref)
			}
			list[i] = strconv.FormatUint(s, 10)
		}
		if again := subj + ":" + strings.Join(list, ","); again != ref {
			t.Fatalf("%q accepted as %q", ref, again)
		}
		if _, err := blob.Key(subj[2:]); err != nil {
			t.Fatalf("%q: subject %q accepted: %v", ref, subj, err)
		}
	})
}
