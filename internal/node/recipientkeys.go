package node

import (
	"crypto/hpke"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"

	"taxlink/internal/envelope"
)

// maxRecipientKeys bounds recipientKeys: every local government's current
// and next key, with room to spare.
const maxRecipientKeys = 8192

// recipientKeys holds the recipients' sealing public keys parsed from
// their directory encoding: decoding and parsing an ML-KEM key for every
// notification was 3 % of a sending node's CPU. An entry is keyed by the
// KEM and the encoding itself, so a rotated key is a new entry, never a
// stale one. It is safe for concurrent use.
type recipientKeys struct {
	mu sync.Mutex
	m  map[string]hpke.PublicKey
}

// get returns the public key of KEM kem whose base64 encoding is b64.
func (c *recipientKeys) get(kem uint16, b64 string) (hpke.PublicKey, error) {
	k := strconv.Itoa(int(kem)) + "\x00" + b64
	c.mu.Lock()
	pub, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", envelope.ErrBadKey, err)
	}
	if pub, err = envelope.ParsePublicKey(kem, raw); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxRecipientKeys {
		c.m = make(map[string]hpke.PublicKey) // rotated keys pile up: start again
	}
	c.m[k] = pub
	return pub, nil
}
