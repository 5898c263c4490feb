package transfer

import (
	"bytes"
	"context"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/envelope"
	"taxlink/internal/pki"
	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
)

const tenant = "lg:013030"

// fixture records n sealed notifications for tenant in an old node's store.
func fixture(t *testing.T, n int) (store.NodeStore, hpke.PrivateKey, map[string][]byte) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if err != nil {
		t.Fatal(err)
	}
	sender, _ := pki.NewKey()
	plain := map[string][]byte{}
	for i := range n {
		id := ulid.Make().String()
		body := bytes.Repeat([]byte(fmt.Sprintf("<DATA>%d</DATA>", i)), 100*(i+1))
		h := &envelope.Header{ID: id, Type: "income-tax-return", Sender: "nta:hq", Recipient: tenant, Created: time.Now().UTC().Truncate(time.Millisecond), ContentType: "application/xml", KeyID: "old-1"}
		var ct bytes.Buffer
		if err := envelope.Seal(key.PublicKey(), h, bytes.NewReader(body), &ct); err != nil {
			t.Fatal(err)
		}
		hb, _ := h.MarshalBinary()
		sig, _ := envelope.Sign(sender, hb)
		if _, _, err := st.Record(context.Background(), store.Record{ID: id, Type: h.Type, Sender: h.Sender, Recipient: tenant, Created: h.Created,
			Header: hb, Signature: sig, CiphertextSize: int64(ct.Len()), Receipt: []byte(`{"kind":"recorded"}`)}, &ct); err != nil {
			t.Fatal(err)
		}
		plain[id] = body
	}
	return st, key, plain
}

func opener(st store.Inbox, key hpke.PrivateKey) Opener {
	return func(ctx context.Context, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
		r, err := st.Get(ctx, tenant, id)
		if err != nil {
			return nil, nil, err
		}
		h, err := envelope.ParseHeader(r.Header)
		if err != nil {
			return nil, nil, err
		}
		ct, err := st.OpenCiphertext(ctx, tenant, id)
		if err != nil {
			return nil, nil, err
		}
		pt, err := envelope.Open(key, h, ct)
		if err != nil {
			ct.Close()
			return nil, nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{pt, ct}, h, nil
	}
}

// TestExportImport moves a tenant's records to a new node's store,
// re-sealed to the new key, and checks every one there; a tampered bundle
// and a wrong key are refused.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	old, oldKey, plain := fixture(t, 5)
	oldSigner, _ := pki.NewKey()
	newSigner, _ := pki.NewKey()
	newKey, _ := envelope.GenerateSealingKey(envelope.DefaultKEM)
	dir := filepath.Join(t.TempDir(), "bundle")
	m, err := Export(ctx, old, opener(old, oldKey), tenant, newKey.PublicKey(), "new-1", "corp:8700150012345", oldSigner, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 5 {
		t.Fatalf("%d entries, want 5", len(m.Entries))
	}
	dst, err := sqlite.Open(filepath.Join(t.TempDir(), "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	other, _ := envelope.GenerateSealingKey(envelope.DefaultKEM)
	if _, _, err := Import(ctx, dir, &oldSigner.PublicKey, tenant, other, dst, "lg:011002", newSigner); !errors.Is(err, ErrMismatch) {
		t.Errorf("import with another key: %v, want ErrMismatch", err)
	}
	if _, _, err := Import(ctx, dir, &newSigner.PublicKey, tenant, newKey, dst, "lg:011002", newSigner); !errors.Is(err, ErrBadSignature) {
		t.Errorf("import trusting the wrong old-node key: %v, want ErrBadSignature", err)
	}

	v, signed, err := Import(ctx, dir, &oldSigner.PublicKey, tenant, newKey, dst, "lg:011002", newSigner)
	if err != nil {
		t.Fatal(err)
	}
	if v.Records != 5 {
		t.Errorf("verified %d records, want 5", v.Records)
	}
	if got, err := VerifyVerification(signed, &newSigner.PublicKey); err != nil || got.Records != 5 {
		t.Errorf("verification: %+v, %v", got, err)
	}
	for id, want := range plain {
		rc, _, err := opener(dst, newKey)(ctx, tenant, id)
		if err != nil {
			t.Fatalf("open %s at the new node: %v", id, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs at the new node", id)
		}
	}
	if _, _, err := Import(ctx, dir, &oldSigner.PublicKey, tenant, newKey, dst, "lg:011002", newSigner); err != nil {
		t.Errorf("importing again (after an interruption): %v", err)
	}

	// A changed ciphertext file is found.
	id := m.Entries[2].ID
	b, _ := os.ReadFile(filepath.Join(dir, id+".ct"))
	b[len(b)/2] ^= 1
	if err := os.WriteFile(filepath.Join(dir, id+".ct"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	dst2, _ := sqlite.Open(filepath.Join(t.TempDir(), "new2.db"))
	defer dst2.Close()
	if _, _, err := Import(ctx, dir, &oldSigner.PublicKey, tenant, newKey, dst2, "lg:011002", newSigner); !errors.Is(err, ErrMismatch) {
		t.Errorf("import of a tampered bundle: %v, want ErrMismatch", err)
	}
}
