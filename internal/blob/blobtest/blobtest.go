// Package blobtest is the conformance suite every blob.Store passes.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"taxlink/internal/blob"
)

// Run runs the suite against the store open returns; each subtest gets a
// store of its own or shares one, as open decides.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s blob.Store)
	}{
		{"RoundTrip", roundTrip},
		{"SameKeyTwice", sameKeyTwice},
		{"FailedPut", failedPut},
		{"BadKeys", badKeys},
		{"BadRefs", badRefs},
		{"Remove", remove},
		{"Concurrent", concurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(t, ctx, open(t))
		})
	}
}

// Pattern returns n bytes that differ from those of another seed and
// another offset, so that a chunk read out of place shows.
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>11) ^ seed
	}
	return b
}

func readAll(ctx context.Context, s blob.Store, ref string) ([]byte, error) {
	r, err := s.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func roundTrip(t *testing.T, ctx context.Context, s blob.Store) {
	for _, n := range []int{0, 1, 4096, 512<<10 - 1, 512 << 10, 3<<20 + 12345} {
		want := Pattern(n, byte(n))
		ref, err := s.Put(ctx, "lg_011002.RT", bytes.NewReader(want))
		if err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		got, err := readAll(ctx, s, ref)
		if err != nil {
			t.Fatalf("read back %d bytes under %q: %v", n, ref, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes put, %d read back, or different bytes", n, len(got))
		}
	}
}

func sameKeyTwice(t *testing.T, ctx context.Context, s blob.Store) {
	a, b := Pattern(700<<10, 1), Pattern(600<<10, 2)
	ra, err := s.Put(ctx, "lg_011002.TWICE", bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := s.Put(ctx, "lg_011002.TWICE", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ra == rb {
		t.Fatalf("two puts of one key share the reference %q", ra)
	}
	if err := s.Remove(ctx, ra); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(ctx, s, rb); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("removing the first put of a key touched the second: %v", err)
	}
}

type failing struct {
	r io.Reader
	n int
}

var errInjected = errors.New("reader failed (injected)")

func (f *failing) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errInjected
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func failedPut(t *testing.T, ctx context.Context, s blob.Store) {
	data := Pattern(2<<20, 3)
	ref, err := s.Put(ctx, "lg_011002.FAIL", &failing{bytes.NewReader(data), 1<<20 + 7})
	if !errors.Is(err, errInjected) {
		t.Fatalf("put from a failing reader: ref %q, err %v; want the reader's error", ref, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, "lg_011002.FAIL", bytes.NewReader(data)); err == nil {
		t.Fatal("put with an ended context succeeded")
	}
	ref, err = s.Put(ctx, "lg_011002.FAIL", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put after failed ones: %v", err)
	}
	if got, err := readAll(ctx, s, ref); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the put after failed ones reads back wrong: %v", err)
	}
}

func badKeys(t *testing.T, ctx context.Context, s blob.Store) {
	for _, k := range []string{"", ".", "a..b", "../x", "a/b", "a b", "a*", "a>", ".a", "a.", string(make([]byte, blob.MaxKey+1))} {
		if ref, err := s.Put(ctx, k, bytes.NewReader([]byte("x"))); err == nil {
			t.Errorf("key %q accepted (ref %q)", k, ref)
		}
	}
}

func badRefs(t *testing.T, ctx context.Context, s blob.Store) {
	for _, ref := range []string{"", "x", "../../etc/passwd", "lg_011002.A.0123456789abcdeg", "lg_011002.A.0123456789ABCDEF", "/tmp/x.0123456789abcdef"} {
		if _, err := s.Open(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("open %q: %v, want ErrBadRef", ref, err)
		}
		if err := s.Remove(ctx, ref); !errors.Is(err, blob.ErrBadRef) {
			t.Errorf("remove %q: %v, want ErrBadRef", ref, err)
		}
	}
}

func remove(t *testing.T, ctx context.Context, s blob.Store) {
	ref, err := s.Put(ctx, "lg_011002.RM", bytes.NewReader(Pattern(900<<10, 4)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Remove(ctx, ref); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	if _, err := readAll(ctx, s, ref); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open after remove: %v, want ErrNotFound", err)
	}
}

func concurrent(t *testing.T, ctx context.Context, s blob.Store) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			want := Pattern(1<<20+i*1000, byte(10+i))
			ref, err := s.Put(ctx, fmt.Sprintf("lg_01100%d.C", i), bytes.NewReader(want))
			if err != nil {
				t.Errorf("put %d: %v", i, err)
				return
			}
			if got, err := readAll(ctx, s, ref); err != nil || !bytes.Equal(got, want) {
				t.Errorf("blob %d reads back wrong: %v", i, err)
			}
		})
	}
	wg.Wait()
}
