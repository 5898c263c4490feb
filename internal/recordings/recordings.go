// Package recordings keeps the recording receipts the hub holds for the
// nodes that sent the envelopes, until those nodes read them: each
// receipt gets a sequence number when it is stored, and a node reads its
// own receipts after the last sequence it took (api.PathReceipts).
//
// The hub stores one receipt per delivered envelope and its senders poll
// all the time. DB keeps them in a SQLite file (a hub running alone),
// committing the receipts stored together with one sync; the replicas of
// a cluster share a replicated JetStream stream
// (queue.Queue.Recordings). Both pass recordingstest.Run.
package recordings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"taxlink/internal/envelope"
	"taxlink/internal/pki"
	"taxlink/internal/receipt"
)

// ErrInvalid is wrapped by the error for a receipt, node or read that a
// store refuses; nothing is stored or read then.
var ErrInvalid = errors.New("recordings: invalid request")

// MaxLimit is the most receipts one read returns.
const MaxLimit = 1000

// Stored is a recording receipt waiting for its sender, with its position
// in the store.
type Stored struct {
	// Seq orders the store: every receipt stored later has a higher one,
	// and a sequence is never given twice.
	Seq uint64
	// Receipt is the recording receipt as the recipient's node signed it
	// (JSON).
	Receipt []byte
	// LedgerIndex is the index of the receipt's entry in the hub's ledger.
	LedgerIndex int64
}

// Store holds recording receipts by sender node. Implementations are safe
// for concurrent use.
type Store interface {
	// Put stores receipt rc of envelope id for the node senderNode, with
	// the index of its ledger entry, and returns once it is durable. A
	// receipt of an envelope stored already is not stored again (for the
	// replicas' stream: within its duplicate window, longer than a
	// delivery that would repeat it stays unacknowledged).
	Put(ctx context.Context, senderNode, id string, rc []byte, ledgerIndex int64) error
	// After returns up to limit (1..MaxLimit) receipts for senderNode with
	// a sequence above after, in sequence order, waiting up to wait for
	// the first one to be stored; none (and no error) when wait passes.
	After(ctx context.Context, senderNode string, after uint64, limit int, wait time.Duration) ([]Stored, error)
	// Last returns the highest sequence stored, 0 when nothing is.
	Last(ctx context.Context) (uint64, error)
}

// Wait implements the wait of Store.After: it calls read until it
// returns receipts or fails, and between calls waits on the channel next
// returned before the call (ready once something may have been stored
// since), for up to wait in all; none and no error when wait passes.
func Wait(ctx context.Context, wait time.Duration, next func() <-chan struct{}, read func() ([]Stored, error)) ([]Stored, error) {
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		// Taken before the read, so that a store between the read and the
		// wait wakes the wait.
		woken := next()
		out, err := read()
		if err != nil || len(out) > 0 {
			return out, err
		}
		select {
		case <-woken:
		case <-timeout.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CheckPut validates what Put stores: senderNode a participant ID, id an
// envelope ID, rc a non-empty receipt of at most receipt.MaxJSONSize
// bytes, ledgerIndex not negative. The error wraps ErrInvalid.
func CheckPut(senderNode, id string, rc []byte, ledgerIndex int64) error {
	if err := CheckNode(senderNode); err != nil {
		return err
	}
	if err := envelope.ValidID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(rc) == 0 || len(rc) > receipt.MaxJSONSize {
		return fmt.Errorf("%w: a receipt of %d bytes (1 to %d)", ErrInvalid, len(rc), receipt.MaxJSONSize)
	}
	if ledgerIndex < 0 {
		return fmt.Errorf("%w: ledger index %d", ErrInvalid, ledgerIndex)
	}
	return nil
}

// CheckAfter validates a read: senderNode a participant ID and limit from
// 1 to MaxLimit. The error wraps ErrInvalid.
func CheckAfter(senderNode string, limit int) error {
	if err := CheckNode(senderNode); err != nil {
		return err
	}
	if limit < 1 || limit > MaxLimit {
		return fmt.Errorf("%w: limit %d (1 to %d)", ErrInvalid, limit, MaxLimit)
	}
	return nil
}

// CheckNode validates a sender node's ID; the error wraps ErrInvalid.
func CheckNode(senderNode string) error {
	if err := pki.ValidateParticipantID(senderNode); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
