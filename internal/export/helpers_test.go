package export

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/api"
	"taxlink/internal/audit"
	"taxlink/internal/envelope"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
)

const (
	tenantA = "lg:011002"
	tenantB = "lg:012025"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// testEnv is one node's worth of export dependencies: a real SQLite store,
// a real audit log, a cursor directory, a test CA, and a fake opener that
// scopes through the store and returns plaintext from a map.
type testEnv struct {
	t          *testing.T
	st         *sqlite.Store
	al         *audit.Log
	cursorsDir string
	cursors    *Cursors
	ca         *pki.CA
	sealKey    hpke.PrivateKey
	serverCert tls.Certificate

	mu     sync.Mutex
	plain  map[string][]byte
	opens  map[string]int            // id -> number of successful opens
	actors []string                  // actor of every open call
	hook   func(id string) io.Reader // optional replacement of a plaintext reader
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := notekey.NewSigner(tenantA, key)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := notekey.NewVerifier(tenantA, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, "audit"), ledger.Options{Origin: "taxlink/test/lg:011002/audit", Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })

	cursorsDir := filepath.Join(dir, "cursors")
	cursors, err := OpenCursors(cursorsDir)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("export test CA", time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := envelope.GenerateSealingKey(envelope.KEMDHKEMP256)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{
		t: t, st: st, al: al, cursorsDir: cursorsDir, cursors: cursors, ca: ca, sealKey: sk,
		plain: map[string][]byte{}, opens: map[string]int{},
	}
	e.serverCert, _ = e.leaf("lg:011002", true)
	return e
}

var twelveDigits = regexp.MustCompile(`[0-9]{12}`)

// newID returns a fresh ULID without a run of 12 digits, so that the audit
// log's 個人番号 filter never withholds it in assertions.
func newID() string {
	for {
		id := ulid.Make().String()
		if !twelveDigits.MatchString(id) {
			return id
		}
	}
}

// add seals plaintext for tenant and records it in the store.
func (e *testEnv) add(tenant, contentType string, pt []byte) store.Record {
	e.t.Helper()
	h := &envelope.Header{
		ID: newID(), Type: "resident-tax-notice", Sender: "nta:e-tax", Recipient: tenant,
		Created: time.Now().UTC().Truncate(time.Millisecond), ContentType: contentType, KeyID: "k1",
	}
	var ct bytes.Buffer
	if err := envelope.Seal(e.sealKey.PublicKey(), h, bytes.NewReader(pt), &ct); err != nil {
		e.t.Fatal(err)
	}
	hb, err := h.MarshalBinary()
	if err != nil {
		e.t.Fatal(err)
	}
	rec, _, err := e.st.Record(context.Background(), store.Record{
		ID: h.ID, Type: h.Type, Sender: h.Sender, Recipient: tenant, Created: h.Created,
		Header: hb, Signature: []byte("signature"), CiphertextSize: int64(ct.Len()), Receipt: []byte(`{"receipt":true}`),
	}, &ct)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.plain[h.ID] = append([]byte(nil), pt...)
	e.mu.Unlock()
	return rec
}

// addN records n XML records for tenant and returns them in Seq order.
func (e *testEnv) addN(tenant string, n int) []store.Record {
	var out []store.Record
	for i := range n {
		out = append(out, e.add(tenant, "application/xml", []byte("<notice n=\""+strings.Repeat("x", i)+"\"/>")))
	}
	return out
}

// open is the fake Opener: it scopes the ID through the real store (so a
// record of another tenant is store.ErrNotFound) and returns the plaintext
// kept at add, with the stored header.
func (e *testEnv) open(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
	e.mu.Lock()
	e.actors = append(e.actors, actor)
	e.mu.Unlock()
	rec, err := e.st.Get(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := envelope.ParseHeader(rec.Header)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	pt, ok := e.plain[id]
	if !ok {
		return nil, nil, store.ErrNotFound
	}
	e.opens[id]++
	var r io.Reader = bytes.NewReader(pt)
	if e.hook != nil {
		if hr := e.hook(id); hr != nil {
			r = hr
		}
	}
	return io.NopCloser(r), hdr, nil
}

func (e *testEnv) openCount(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opens[id]
}

// leaf issues a certificate for participant id from the test CA and
// returns it with its fingerprint.
func (e *testEnv) leaf(id string, server bool) (tls.Certificate, string) {
	e.t.Helper()
	return issue(e.t, e.ca, id, server, time.Now().Add(-time.Minute), time.Hour)
}

func issue(t *testing.T, ca *pki.CA, id string, server bool, notBefore time.Time, validity time.Duration) (tls.Certificate, string) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{
		Identity: pki.Identity{Env: pki.EnvTest, ID: id}, Public: &key.PublicKey,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Server: server, Client: !server, NotBefore: notBefore, Validity: validity,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, fingerprint(cert)
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// config returns a server configuration over e with clients.
func (e *testEnv) config(clients ...Client) Config {
	return Config{Clients: clients, Store: e.st, Open: e.open, Cursors: e.cursors, Audit: e.al}
}

// serve starts cfg's server on 127.0.0.1 over TLS 1.3 with clientAuth:
// client certificates are verified against the test CA unless it is
// tls.RequireAnyClientCert.
func (e *testEnv) serve(cfg Config, clientAuth tls.ClientAuthType) *httptest.Server {
	e.t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{e.serverCert},
		ClientAuth:   clientAuth,
	}
	if clientAuth != tls.RequireAnyClientCert {
		// Otherwise the CA list in the certificate request would make a
		// client withhold a certificate of another issuer.
		srv.TLS.ClientCAs = pki.CertPool(e.ca.Cert)
	}
	srv.StartTLS()
	e.t.Cleanup(srv.Close)
	return srv
}

// client returns an HTTPS client trusting the test CA that presents cert
// (none when cert is nil).
func (e *testEnv) client(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pki.CertPool(e.ca.Cert)}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: conf}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// events returns every audit event recorded so far.
func (e *testEnv) events() []audit.Event {
	e.t.Helper()
	ev, err := e.al.Events(0, e.al.Size())
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// hasEvent reports whether an event with these fields was recorded.
func (e *testEnv) hasEvent(actor, action, object, result string) bool {
	for _, ev := range e.events() {
		if ev.Actor == actor && ev.Action == action && ev.Object == object && ev.Result == result {
			return true
		}
	}
	return false
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, method, url, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// apiError decodes an api-style error body, failing the test if r is not
// one with the wanted status and code.
func apiError(t *testing.T, r response, status int, code api.Code) *api.Error {
	t.Helper()
	var body struct {
		Error *api.Error `json:"error"`
	}
	if r.status != status || json.Unmarshal(r.body, &body) != nil || body.Error == nil || body.Error.Code != code {
		t.Fatalf("got HTTP %d %s, want %d with code %s", r.status, r.body, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	return body.Error
}

func list(t *testing.T, c *http.Client, base string, query string) ListResponse {
	t.Helper()
	r := do(t, c, http.MethodGet, base+PathRecords+query, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: HTTP %d %s", r.status, r.body)
	}
	var lr ListResponse
	if err := json.Unmarshal(r.body, &lr); err != nil {
		t.Fatal(err)
	}
	return lr
}

func ack(t *testing.T, c *http.Client, base string, seq int64) response {
	t.Helper()
	b, _ := json.Marshal(AckRequest{Seq: seq})
	return do(t, c, http.MethodPost, base+PathAck, "application/json", b)
}

func seqs(recs []RecordInfo) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func storeSeqs(recs []store.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

var errBroken = errors.New("broken plaintext stream")

// brokenReader yields data and then fails instead of ending.
type brokenReader struct{ data []byte }

func (b *brokenReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, errBroken
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}
