package store

import (
	"context"
	"fmt"
	"io"
)

// ChunkSource is what a chunked store gives ChunkReader: the chunks of one
// record by index. Errors it returns are already the store's own (wrapped
// sentinels, no internals).
type ChunkSource interface {
	// Live fails with ErrClosed once the store is closed.
	Live() error
	// Chunk returns chunk index, or found=false when it does not exist.
	Chunk(ctx context.Context, index int64) (data []byte, found bool, err error)
	// ChunksFrom counts the chunks with an index of at least index.
	ChunksFrom(ctx context.Context, index int64) (int64, error)
}

// NewChunkReader streams a record's ciphertext of size bytes from src, one
// chunk at a time, holding no store resource between reads. A missing,
// empty, oversized or surplus chunk is ErrCorrupt; reading after Close is
// ErrClosed. who prefixes errors ("sqlite", "postgres").
func NewChunkReader(ctx context.Context, who, id string, size int64, src ChunkSource) io.ReadCloser {
	return &chunkReader{ctx: ctx, who: who, id: id, size: size, src: src}
}

type chunkReader struct {
	ctx     context.Context
	who, id string
	size    int64
	src     ChunkSource
	next    int64  // index of the next chunk to fetch
	fetched int64  // bytes in the chunks fetched so far
	buf     []byte // unread rest of the current chunk
	closed  bool
	err     error // sticky
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.closed {
		return 0, fmt.Errorf("%s: ciphertext of %s: read after Close: %w", c.who, c.id, ErrClosed)
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.buf) == 0 {
		if c.err = c.fetch(); c.err != nil {
			return 0, c.err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// fetch loads the next chunk into c.buf, or returns io.EOF once all size
// bytes were delivered and no further chunk exists.
func (c *chunkReader) fetch() error {
	if err := c.src.Live(); err != nil {
		return err
	}
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("%s: ciphertext of %s: %w", c.who, c.id, err)
	}
	if c.fetched == c.size {
		extra, err := c.src.ChunksFrom(c.ctx, c.next)
		if err != nil {
			return err
		}
		if extra != 0 {
			return fmt.Errorf("%s: ciphertext of %s: %w: %d chunks beyond its %d bytes", c.who, c.id, ErrCorrupt, extra, c.size)
		}
		return io.EOF
	}
	data, found, err := c.src.Chunk(c.ctx, c.next)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s: ciphertext of %s: %w: chunk %d missing after %d of %d bytes", c.who, c.id, ErrCorrupt, c.next, c.fetched, c.size)
	}
	if len(data) == 0 || int64(len(data)) > c.size-c.fetched {
		return fmt.Errorf("%s: ciphertext of %s: %w: chunk %d holds %d bytes, %d of %d remain", c.who, c.id, ErrCorrupt, c.next, len(data), c.size-c.fetched, c.size)
	}
	c.next++
	c.fetched += int64(len(data))
	c.buf = data
	return nil
}

// Close holds no resources; a second Close is a no-op.
func (c *chunkReader) Close() error {
	c.closed = true
	c.buf = nil
	return nil
}
