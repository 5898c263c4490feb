// Package acceptance keeps the acceptance receipt the hub gave each
// envelope, by envelope ID, so that a sender that submits an envelope again
// (its answer lost, its process restarted) gets the receipt it was given
// instead of a second acceptance.
//
// A Store is written once per accepted envelope and read once per
// submission, for as long as the hub runs: it must hold tens of millions of
// receipts without holding them in memory. DB keeps them in a SQLite file
// (a hub running alone); the replicas of a cluster keep them in a
// replicated JetStream bucket (queue.Queue.Acceptances). Both pass
// acceptancetest.Run.
package acceptance

import (
	"context"
	"errors"
	"fmt"

	"taxlink/internal/envelope"
	"taxlink/internal/receipt"
)

// ErrNotFound is returned by Get for an envelope with no stored receipt.
var ErrNotFound = errors.New("acceptance: no receipt stored for this envelope")

// ErrInvalid is wrapped by the error for an envelope ID or receipt that
// cannot be stored; nothing is stored then.
var ErrInvalid = errors.New("acceptance: invalid record")

// Store holds acceptance receipts by envelope ID. Implementations are safe
// for concurrent use.
type Store interface {
	// Get returns the receipt stored for envelope id, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, id string) ([]byte, error)
	// Put stores rc for envelope id unless a receipt is stored for id
	// already, and returns the receipt stored for id: rc, or the earlier
	// one, which is kept. It returns once the receipt is durable.
	Put(ctx context.Context, id string, rc []byte) ([]byte, error)
}

// Check validates a record before it is stored: id an envelope ID, rc a
// non-empty receipt of at most receipt.MaxJSONSize bytes. The error wraps
// ErrInvalid.
func Check(id string, rc []byte) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if len(rc) == 0 || len(rc) > receipt.MaxJSONSize {
		return fmt.Errorf("%w: a receipt of %d bytes (1 to %d)", ErrInvalid, len(rc), receipt.MaxJSONSize)
	}
	return nil
}

// CheckID validates an envelope ID; the error wraps ErrInvalid.
func CheckID(id string) error {
	if err := envelope.ValidID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
