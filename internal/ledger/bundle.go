package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Bundle is everything needed to prove offline that an entry is in the
// log: a signed checkpoint, the entry, its index and the inclusion proof
// against that checkpoint. Anyone holding the log's verifier key can check
// it with VerifyBundle, without access to the log.
type Bundle struct {
	Checkpoint []byte      // signed checkpoint note
	Index      int64       // index of Entry in the log
	Entry      []byte      // the entry's bytes
	Proof      []tlog.Hash // inclusion proof of Entry in the checkpoint's tree
}

// MaxBundleSize bounds the JSON encoding of a Bundle accepted by
// ParseBundle.
const MaxBundleSize = 128 << 10

// maxProofHashes bounds an inclusion proof: one hash per tree level.
const maxProofHashes = 63

// bundleJSON fixes the JSON field names and order.
type bundleJSON struct {
	Checkpoint []byte      `json:"checkpoint"`
	Index      int64       `json:"index"`
	Entry      []byte      `json:"entry"`
	Proof      []tlog.Hash `json:"proof"`
}

// Marshal returns the canonical JSON encoding of b:
//
//	{"checkpoint":"<base64>","index":N,"entry":"<base64>","proof":["<base64>",...]}
//
// with standard padded base64, no spaces, and the keys in this order.
func (b Bundle) Marshal() ([]byte, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	proof := b.Proof
	if proof == nil {
		proof = []tlog.Hash{}
	}
	checkpoint, entry := b.Checkpoint, b.Entry
	if entry == nil {
		entry = []byte{}
	}
	out, err := json.Marshal(bundleJSON{Checkpoint: checkpoint, Index: b.Index, Entry: entry, Proof: proof})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	return out, nil
}

// check enforces the limits of a Bundle.
func (b Bundle) check() error {
	switch {
	case len(b.Checkpoint) == 0:
		return fmt.Errorf("%w: no checkpoint", ErrBadBundle)
	case len(b.Checkpoint) > MaxCheckpointSize:
		return fmt.Errorf("%w: checkpoint of %d bytes exceeds %d", ErrBadBundle, len(b.Checkpoint), MaxCheckpointSize)
	case b.Index < 0:
		return fmt.Errorf("%w: negative index %d", ErrBadBundle, b.Index)
	case len(b.Entry) > MaxEntrySize:
		return fmt.Errorf("%w: entry of %d bytes exceeds %d", ErrBadBundle, len(b.Entry), MaxEntrySize)
	case len(b.Proof) > maxProofHashes:
		return fmt.Errorf("%w: proof of %d hashes exceeds %d", ErrBadBundle, len(b.Proof), maxProofHashes)
	}
	return nil
}

// ParseBundle decodes a bundle. It accepts exactly the encoding Marshal
// produces, up to insignificant JSON whitespace: at most MaxBundleSize
// bytes, the four keys once each in Marshal's order with no others,
// canonical base64. Anything else is an error wrapping ErrBadBundle.
// ParseBundle does not verify the bundle; call VerifyBundle.
func ParseBundle(data []byte) (Bundle, error) {
	if len(data) > MaxBundleSize {
		return Bundle{}, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrBadBundle, len(data), MaxBundleSize)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return Bundle{}, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	dec := json.NewDecoder(bytes.NewReader(compact.Bytes()))
	dec.DisallowUnknownFields()
	var j bundleJSON
	if err := dec.Decode(&j); err != nil {
		return Bundle{}, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	b := Bundle{Checkpoint: j.Checkpoint, Index: j.Index, Entry: j.Entry, Proof: j.Proof}
	again, err := b.Marshal()
	if err != nil {
		return Bundle{}, err
	}
	if !bytes.Equal(again, compact.Bytes()) {
		return Bundle{}, fmt.Errorf("%w: not in canonical form (keys, order, base64 or number encoding differ from Marshal's)", ErrBadBundle)
	}
	if b.Entry == nil {
		b.Entry = []byte{}
	}
	if b.Proof == nil {
		b.Proof = []tlog.Hash{}
	}
	return b, nil
}

// VerifyBundle checks b offline: its checkpoint is signed by one of
// verifiers (ParseCheckpoint) and its proof shows Entry at Index in that
// checkpoint's tree (VerifyInclusion). It returns the checkpoint, or an
// error wrapping ErrBadBundle, ErrBadCheckpoint or ErrBadProof.
func VerifyBundle(b Bundle, verifiers note.Verifiers) (Checkpoint, error) {
	if err := b.check(); err != nil {
		return Checkpoint{}, err
	}
	cp, err := ParseCheckpoint(b.Checkpoint, verifiers)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: bundle: %w", err)
	}
	if err := VerifyInclusion(cp, b.Index, b.Entry, b.Proof); err != nil {
		return Checkpoint{}, fmt.Errorf("ledger: bundle: %w", err)
	}
	return cp, nil
}
