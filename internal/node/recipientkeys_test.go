package node

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"taxlink/internal/envelope"
)

// TestRecipientKeys checks the cache of parsed sealing keys: a key comes
// back as parsed, the same key is parsed once, another encoding is another
// key, a bad encoding is refused with ErrBadKey and not kept, and the
// cache starts again when full.
func TestRecipientKeys(t *testing.T) {
	var c recipientKeys
	encode := func() (uint16, string, []byte) {
		t.Helper()
		priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := envelope.MarshalPublicKey(priv.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return envelope.DefaultKEM, base64.StdEncoding.EncodeToString(raw), raw
	}
	kem, a, rawA := encode()
	pa, err := c.get(kem, a)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := envelope.MarshalPublicKey(pa); !bytes.Equal(got, rawA) {
		t.Fatal("the cached key is not the one encoded")
	}
	if again, _ := c.get(kem, a); again != pa {
		t.Error("the same encoding was parsed again")
	}
	_, b, _ := encode()
	if pb, _ := c.get(kem, b); pb == pa {
		t.Error("another key's encoding gave the first key")
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := c.get(kem, bad); !errors.Is(err, envelope.ErrBadKey) {
			t.Errorf("get(%q): %v, want ErrBadKey", bad, err)
		}
	}
	if len(c.m) != 2 {
		t.Errorf("%d keys cached, want 2 (bad ones are not kept)", len(c.m))
	}
	for len(c.m) < maxRecipientKeys {
		c.m[string(rune(len(c.m)))+"x"] = pa
	}
	_, d, _ := encode()
	if _, err := c.get(kem, d); err != nil || len(c.m) != 1 {
		t.Errorf("after filling the cache: %d keys, err %v; want it started again with 1", len(c.m), err)
	}
}
