package hub_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/api"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/envelope"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
	"taxlink/internal/receipt"
)

// builder makes wire envelopes as a node would, with knobs to break them.
type builder struct {
	t      *testing.T
	nw     *devnet.Network
	signer crypto.Signer // the NTA node's signing key
}

func newBuilder(t *testing.T, nw *devnet.Network) *builder {
	n, _ := nw.Layout.Node(devnet.NTAID)
	k, err := devnet.ReadKey(nw.Layout, filepath.Join(filepath.Dir(n.Config), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &builder{t: t, nw: nw, signer: k}
}

// envelope seals payload from the NTA to recipient (sealed to Sapporo's key
// whatever the recipient, so that unknown recipients can be expressed) and
// returns header, header bytes, signature and ciphertext.
func (b *builder) envelope(recipient, typ, contentType string, payload []byte) (*envelope.Header, []byte, []byte, []byte) {
	b.t.Helper()
	p, err := b.nw.Hub.Directory().Participant(devnet.SapporoID)
	if err != nil {
		b.t.Fatal(err)
	}
	sk, _ := p.SealingKeyAt(time.Now())
	raw, _ := base64.StdEncoding.DecodeString(sk.Public)
	pub, err := envelope.ParsePublicKey(sk.KEM, raw)
	if err != nil {
		b.t.Fatal(err)
	}
	h := &envelope.Header{
		ID: ulid.Make().String(), Type: typ, Sender: devnet.NTAID, Recipient: recipient,
		Created: time.Now().UTC().Truncate(time.Millisecond), ContentType: contentType, KeyID: sk.ID,
	}
	var ct bytes.Buffer
	if err := envelope.Seal(pub, h, bytes.NewReader(payload), &ct); err != nil {
		b.t.Fatal(err)
	}
	hb, sig := b.sign(h)
	return h, hb, sig, ct.Bytes()
}

// sign returns h's bytes and the NTA's signature of them.
func (b *builder) sign(h *envelope.Header) ([]byte, []byte) {
	b.t.Helper()
	hb, err := h.MarshalBinary()
	if err != nil {
		b.t.Fatal(err)
	}
	sig, err := envelope.Sign(b.signer, hb)
	if err != nil {
		b.t.Fatal(err)
	}
	return hb, sig
}

// otherHeader returns the header bytes and signature of h's ID with other
// content (created a second later): an ID reused.
func (b *builder) otherHeader(h *envelope.Header) ([]byte, []byte) {
	b.t.Helper()
	h2 := *h
	h2.Created = h.Created.Add(time.Second)
	return b.sign(&h2)
}

func wire(t *testing.T, hb, sig, ct []byte) []byte {
	var w bytes.Buffer
	if err := envelope.WritePreamble(&w, hb, sig); err != nil {
		t.Fatal(err)
	}
	w.Write(ct)
	return w.Bytes()
}

func post(t *testing.T, c *http.Client, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func errorCode(t *testing.T, body []byte) api.Code {
	var e struct {
		Error api.Error `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

const xml = `<?xml version="1.0" encoding="UTF-8"?><doc>テスト</doc>`

// TestRefusals submits broken envelopes and checks that each is refused
// with its own code and that nothing is stored.
func TestRefusals(t *testing.T) {
	nw := devtest.Start(t)
	b := newBuilder(t, nw)
	hubID := pki.Identity{Env: devnet.Environment, ID: devnet.HubID}
	nta := devtest.Client(t, nw, devnet.NTAID, hubID)
	tokyo := devtest.Client(t, nw, devnet.TokyoID, hubID)
	url := "https://" + nw.Hub.Addr + api.PathSubmit

	valid := func() []byte {
		_, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
		return wire(t, hb, sig, ct)
	}
	withHeader := func(mutate func(hb []byte) []byte) []byte {
		_, hb, _, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
		hb = mutate(bytes.Clone(hb))
		// envelope.Sign refuses a non-canonical header: sign the digest
		// directly, as a broken sender would.
		d := envelope.SignatureDigest(hb)
		sig, err := b.signer.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		var w bytes.Buffer
		w.WriteString("TLE1")
		w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(hb))))
		w.Write(hb)
		w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(sig))))
		w.Write(sig)
		w.Write(ct)
		return w.Bytes()
	}
	otherKey, _ := pki.NewKey()

	cases := []struct {
		name   string
		client *http.Client
		body   func() []byte
		status int
		code   api.Code
	}{
		{"malformed bytes", nta, func() []byte { return []byte("this is not an envelope") }, 400, api.CodeMalformed},
		{"empty body", nta, func() []byte { return nil }, 400, api.CodeMalformed},
		{"wrong check digit", nta, func() []byte {
			return withHeader(func(hb []byte) []byte { return bytes.Replace(hb, []byte("lg:011002"), []byte("lg:011003"), 1) })
		}, 400, api.CodeBadParticipantID},
		{"unknown recipient", nta, func() []byte {
			_, hb, sig, ct := b.envelope("lg:012025", "income-tax-return", "application/xml", []byte(xml))
			return wire(t, hb, sig, ct)
		}, 404, api.CodeUnknownRecipient},
		{"unknown type", nta, func() []byte {
			_, hb, sig, ct := b.envelope(devnet.SapporoID, "corporate-tax", "application/xml", []byte(xml))
			return wire(t, hb, sig, ct)
		}, 400, api.CodeUnknownType},
		{"bad signature", nta, func() []byte {
			_, hb, _, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
			sig, _ := envelope.Sign(otherKey, hb)
			return wire(t, hb, sig, ct)
		}, 400, api.CodeBadSignature},
		{"sender mismatch", tokyo, valid, 403, api.CodeSenderMismatch},
		{"policy denied", nta, func() []byte {
			_, hb, sig, ct := b.envelope(devnet.SapporoID, "local-tax-info", "application/xml", []byte(xml))
			return wire(t, hb, sig, ct)
		}, 403, api.CodePolicyDenied},
		{"content type not allowed", nta, func() []byte {
			_, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/pdf", []byte(xml))
			return wire(t, hb, sig, ct)
		}, 400, api.CodeContentType},
		{"oversized payload", nta, func() []byte {
			h, _, _, _ := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
			h.PayloadSize = 17 << 20 // the type allows 16 MiB
			size, err := envelope.CiphertextSizeFor(h.PayloadSize, h.ChunkSize)
			if err != nil {
				t.Fatal(err)
			}
			h.CiphertextSize = size
			hb, err := h.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := envelope.Sign(b.signer, hb)
			return wire(t, hb, sig, nil)
		}, 413, api.CodeTooLarge},
		{"tampered ciphertext", nta, func() []byte {
			w := valid()
			w[len(w)-5] ^= 0x40
			return w
		}, 400, api.CodeDigestMismatch},
		{"truncated ciphertext", nta, func() []byte {
			w := valid()
			return w[:len(w)-7]
		}, 400, api.CodeMalformed},
		{"trailing bytes", nta, func() []byte { return append(valid(), "extra"...) }, 400, api.CodeMalformed},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := nw.Queue().Total(ctx)
			if err != nil {
				t.Fatal(err)
			}
			acc := nw.Hub.Hub.Stats().Accepted
			resp, body := post(t, tc.client, url, tc.body())
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if code := errorCode(t, body); code != tc.code {
				t.Errorf("code %q, want %q (body %s)", code, tc.code, body)
			}
			after, _ := nw.Queue().Total(ctx)
			if after != before || nw.Hub.Hub.Stats().Accepted != acc {
				t.Errorf("refused envelope changed the hub: queue %d → %d, accepted %d → %d", before, after, acc, nw.Hub.Hub.Stats().Accepted)
			}
		})
	}
}

// TestDuplicateAndConflict checks that a repeated envelope gets the original
// receipt and that reusing an ID for another header is refused.
func TestDuplicateAndConflict(t *testing.T) {
	nw := devtest.Start(t)
	b := newBuilder(t, nw)
	nta := devtest.Client(t, nw, devnet.NTAID, pki.Identity{Env: devnet.Environment, ID: devnet.HubID})
	url := "https://" + nw.Hub.Addr + api.PathSubmit

	h, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
	body := wire(t, hb, sig, ct)
	resp1, r1 := post(t, nta, url, body)
	resp2, r2 := post(t, nta, url, body)
	if resp1.StatusCode != 200 || resp2.StatusCode != 200 {
		t.Fatalf("statuses %d %d, want 200 200: %s %s", resp1.StatusCode, resp2.StatusCode, r1, r2)
	}
	if !bytes.Equal(r1, r2) {
		t.Errorf("a repeated submission got another receipt:\n%s\n%s", r1, r2)
	}
	if resp2.Header.Get("Tl-Duplicate") != "1" {
		t.Errorf("repeat not marked as a duplicate")
	}
	rc, err := receipt.Parse(r1)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Verify(nw.Hub.Directory().HubKey()); err != nil {
		t.Errorf("acceptance receipt does not verify: %v", err)
	}
	if rc.HeaderDigest != sha256.Sum256(hb) || rc.EnvelopeID != h.ID || rc.Kind != receipt.Accepted {
		t.Errorf("acceptance receipt names another envelope: %+v", rc)
	}

	// Same ID, other content.
	hb2, sig2 := b.otherHeader(h)
	resp3, r3 := post(t, nta, url, wire(t, hb2, sig2, ct))
	if resp3.StatusCode != 409 || errorCode(t, r3) != api.CodeIDConflict {
		t.Errorf("id reuse: status %d body %s, want 409 %s", resp3.StatusCode, r3, api.CodeIDConflict)
	}
}

// TestConcurrentRepeats submits envelopes twice at the same moment: both
// attempts get the one receipt stored, an ID submitted at once with two
// different headers is accepted for one of them only, and the ledger holds
// one acceptance entry per ID (the attempt that lost the race appended
// none).
func TestConcurrentRepeats(t *testing.T) {
	nw := devtest.Start(t)
	b := newBuilder(t, nw)
	nta := devtest.Client(t, nw, devnet.NTAID, pki.Identity{Env: devnet.Environment, ID: devnet.HubID})
	url := "https://" + nw.Hub.Addr + api.PathSubmit
	both := func(x, y []byte) (sx, sy int, bx, by []byte) {
		var wg sync.WaitGroup
		wg.Go(func() {
			resp, body := post(t, nta, url, x)
			sx, bx = resp.StatusCode, body
		})
		wg.Go(func() {
			resp, body := post(t, nta, url, y)
			sy, by = resp.StatusCode, body
		})
		wg.Wait()
		return
	}
	var ids []string
	var last uint64 // the highest ledger index of a receipt given
	given := func(raw []byte) {
		t.Helper()
		rc, err := receipt.Parse(raw)
		if err != nil {
			t.Fatalf("receipt: %v", err)
		}
		ids, last = append(ids, rc.EnvelopeID), max(last, rc.Seq)
	}
	for i := range 8 {
		_, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
		body := wire(t, hb, sig, ct)
		s1, s2, r1, r2 := both(body, body)
		if s1 != 200 || s2 != 200 || !bytes.Equal(r1, r2) {
			t.Fatalf("repeat %d at once: %d %d, receipts equal %v; want 200 200 and one receipt:\n%s\n%s", i, s1, s2, bytes.Equal(r1, r2), r1, r2)
		}
		given(r1)

		h, hb, sig, ct := b.envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
		hb2, sig2 := b.otherHeader(h)
		s1, s2, r1, r2 = both(wire(t, hb, sig, ct), wire(t, hb2, sig2, ct))
		if (s1 == 200) == (s2 == 200) || s1+s2 != 200+409 {
			t.Fatalf("one ID, two headers at once: %d %d (%s %s); want one 200 and one 409", s1, s2, r1, r2)
		}
		if s1 == 200 {
			given(r1)
		} else {
			given(r2)
		}
	}

	// Each ID is one acceptance in the ledger: the attempt that lost the
	// race waited for the other instead of appending its own entry.
	bundle := func(index uint64) (*ledger.Bundle, bool) {
		t.Helper()
		resp, err := nta.Get(fmt.Sprintf("https://%s%s?index=%d", nw.Hub.Addr, api.PathBundle, index))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil, false // not an entry about the NTA's tenants
		}
		bd, err := ledger.ParseBundle(raw)
		if err != nil {
			t.Fatalf("bundle %d: %v", index, err)
		}
		return &bd, true
	}
	verifiers, err := notekey.FromDirectory(nw.Hub.Directory())
	if err != nil {
		t.Fatal(err)
	}
	lastBundle, ok := bundle(last)
	if !ok {
		t.Fatalf("no bundle for ledger entry %d", last)
	}
	cp, err := ledger.VerifyBundle(*lastBundle, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]int{}
	for i := range uint64(cp.Size) {
		if bd, ok := bundle(i); ok {
			if e, err := receipt.ParseLedgerEntry(bd.Entry); err == nil && e.Kind == receipt.Accepted {
				accepted[e.EnvelopeID]++
			}
		}
	}
	for _, id := range ids {
		if accepted[id] != 1 {
			t.Errorf("envelope %s: %d acceptance entries in the ledger, want 1", id, accepted[id])
		}
	}
}

// TestHandshakeAdmission checks that who may connect at all is decided in
// the TLS handshake: only the hub reaches a node's inbox, only nodes in the
// directory reach the hub; expired, not-yet-valid and other-environment
// certificates from the right CA fail too.
func TestHandshakeAdmission(t *testing.T) {
	nw := devtest.Start(t)
	now := time.Now()
	sapporo := nw.Nodes[devnet.SapporoID]
	sapporoID := pki.Identity{Env: devnet.Environment, ID: devnet.SapporoID}
	cases := []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"NTA's node delivering straight to a node", devtest.Client(t, nw, devnet.NTAID, sapporoID), "https://" + sapporo.Addr + api.PathDeliver},
		{"unknown participant at the hub", devtest.ClientWith(t, nw, devtest.IssueCert(t, nw, pki.Identity{Env: devnet.Environment, ID: "lg:012025"}, now.Add(-time.Hour), 24*time.Hour)), "https://" + nw.Hub.Addr + api.PathSubmit},
		{"expired certificate", devtest.ClientWith(t, nw, devtest.IssueCert(t, nw, pki.Identity{Env: devnet.Environment, ID: devnet.NTAID}, now.Add(-48*time.Hour), 24*time.Hour)), "https://" + nw.Hub.Addr + api.PathSubmit},
		{"not yet valid certificate", devtest.ClientWith(t, nw, devtest.IssueCert(t, nw, pki.Identity{Env: devnet.Environment, ID: devnet.NTAID}, now.Add(24*time.Hour), 24*time.Hour)), "https://" + nw.Hub.Addr + api.PathSubmit},
		{"test-environment certificate", devtest.ClientWith(t, nw, devtest.IssueCert(t, nw, pki.Identity{Env: "test", ID: devnet.NTAID}, now.Add(-time.Hour), 24*time.Hour)), "https://" + nw.Hub.Addr + api.PathSubmit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, hb, sig, ct := newBuilder(t, nw).envelope(devnet.SapporoID, "income-tax-return", "application/xml", []byte(xml))
			refused := nw.Hub.Hub.Stats().Refused
			resp, err := tc.client.Post(tc.url, "application/octet-stream", bytes.NewReader(wire(t, hb, sig, ct)))
			// In TLS 1.3 the client learns of the refusal of its
			// certificate after its Finished, as an alert or a broken pipe.
			if err == nil {
				resp.Body.Close()
				t.Fatalf("handshake succeeded (HTTP %d); want it refused", resp.StatusCode)
			}
			if nw.Hub.Hub.Stats().Refused != refused {
				t.Errorf("the request reached HTTP; want it stopped in the handshake (%v)", err)
			}
		})
	}
	if n, _ := sapporo.Store.Count(context.Background(), ""); n != 0 {
		t.Errorf("the node stored %d records from non-hub peers", n)
	}
}
