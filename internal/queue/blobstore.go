package queue

import (
	"context"
	"time"

	"taxlink/internal/blob"
)

// blobStore is a blob.Store the queue can also sweep and measure. A blob's
// name is what blob.Unique made (<recipient token>.<envelope ID>.<random>);
// its reference is what Put returned.
type blobStore interface {
	blob.Store
	// stale returns the names of the blobs last written before before.
	stale(ctx context.Context, before time.Time) ([]string, error)
	// name returns the name of the blob ref refers to.
	name(ref string) string
	// removable returns a reference Remove takes for the blob named name.
	removable(name string) string
	// bytes returns the total size of the blobs held.
	bytes(ctx context.Context) (int64, error)
}

// files is the blob store of a hub running alone: a blob.Dir, whose
// references are the blobs' names.
type files struct{ *blob.Dir }

func (f files) stale(_ context.Context, before time.Time) ([]string, error) {
	return f.Stale(before)
}
func (files) name(ref string) string                 { return ref }
func (files) removable(name string) string           { return name }
func (f files) bytes(context.Context) (int64, error) { return f.Bytes() }
