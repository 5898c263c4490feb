package export

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/audit"
)

// twoTenants sets up records of A and B interleaved, clients for both,
// and a running server.
type twoTenants struct {
	*testEnv
	base       string
	a, b       []recordWant
	ca, cb     *http.Client
	recsA      []int64
	recsB      []int64
	idsA, idsB []string
}

// recordWant is what a listed record must show.
type recordWant struct {
	seq  int64
	id   string
	size int
}

func setupTwoTenants(t *testing.T) *twoTenants {
	t.Helper()
	e := newTestEnv(t)
	tt := &twoTenants{testEnv: e}
	for i := range 5 {
		pa := []byte(fmt.Sprintf("<notice tenant=\"A\" n=\"%d\"/>", i))
		ra := e.add(tenantA, "application/xml", pa)
		tt.a = append(tt.a, recordWant{ra.Seq, ra.ID, len(pa)})
		tt.recsA, tt.idsA = append(tt.recsA, ra.Seq), append(tt.idsA, ra.ID)
		if i < 3 {
			rb := e.add(tenantB, "application/pdf", []byte("%PDF-B"+strconv.Itoa(i)))
			tt.recsB, tt.idsB = append(tt.recsB, rb.Seq), append(tt.idsB, rb.ID)
		}
	}
	certA, fpA := e.leaf(tenantA, false)
	certB, fpB := e.leaf(tenantB, false)
	srv := e.serve(e.config(
		Client{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: strings.ToUpper(fpA), Networks: loopback},
		Client{Name: "hakodate-zeimu", Tenant: tenantB, CertSHA256: fpB, Networks: loopback},
	), tls.VerifyClientCertIfGiven)
	tt.base = srv.URL
	tt.ca, tt.cb = e.client(&certA), e.client(&certB)
	return tt
}

func TestListFetchAck(t *testing.T) {
	tt := setupTwoTenants(t)
	c, base := tt.ca, tt.base

	// The whole backlog in order, with the header's size and content type.
	lr := list(t, c, base, "")
	if lr.Tenant != tenantA || lr.Cursor != 0 || !slices.Equal(seqs(lr.Records), tt.recsA) {
		t.Fatalf("list = tenant %s cursor %d seqs %v, want %s 0 %v", lr.Tenant, lr.Cursor, seqs(lr.Records), tenantA, tt.recsA)
	}
	for i, r := range lr.Records {
		w := tt.a[i]
		if r.ID != w.id || r.Size != int64(w.size) || r.ContentType != "application/xml" ||
			r.Type != "resident-tax-notice" || r.Sender != "nta:e-tax" || r.Created.IsZero() || r.RecordedAt.IsZero() {
			t.Fatalf("record %d = %+v, want id %s size %d", i, r, w.id, w.size)
		}
	}
	// Pages.
	if lr := list(t, c, base, "?limit=2"); !slices.Equal(seqs(lr.Records), tt.recsA[:2]) {
		t.Fatalf("limit=2 listed %v", seqs(lr.Records))
	}

	// Fetch each record's plaintext.
	for _, w := range tt.a {
		r := do(t, c, http.MethodGet, base+PathRecords+"/"+w.id, "", nil)
		if r.status != http.StatusOK || !bytes.Equal(r.body, tt.plain[w.id]) ||
			r.header.Get("Content-Type") != "application/xml" || r.header.Get("Content-Length") != strconv.Itoa(w.size) {
			t.Fatalf("fetch %s: HTTP %d %q %v", w.id, r.status, r.body, r.header)
		}
	}

	// Acknowledge forward, idempotently, then refuse backwards and beyond.
	if r := ack(t, c, base, tt.recsA[1]); r.status != http.StatusOK {
		t.Fatalf("ack: HTTP %d %s", r.status, r.body)
	}
	lr = list(t, c, base, "")
	if lr.Cursor != tt.recsA[1] || !slices.Equal(seqs(lr.Records), tt.recsA[2:]) {
		t.Fatalf("after ack: cursor %d seqs %v", lr.Cursor, seqs(lr.Records))
	}
	if r := ack(t, c, base, tt.recsA[1]); r.status != http.StatusOK {
		t.Fatalf("repeated ack: HTTP %d %s", r.status, r.body)
	}
	var ar AckResponse
	r := ack(t, c, base, tt.recsA[3])
	if err := json.Unmarshal(r.body, &ar); err != nil || r.status != http.StatusOK || ar != (AckResponse{tenantA, tt.recsA[3]}) {
		t.Fatalf("ack: HTTP %d %s", r.status, r.body)
	}
	last := tt.recsA[len(tt.recsA)-1]
	for _, tc := range []struct {
		name   string
		seq    int64
		status int
		code   api.Code
	}{
		{"backwards", tt.recsA[2], http.StatusConflict, CodeCursorBackwards},
		{"to zero", 0, http.StatusConflict, CodeCursorBackwards},
		{"beyond the last record", last + 1, http.StatusBadRequest, CodeBadSeq},
		{"far beyond", 1 << 62, http.StatusBadRequest, CodeBadSeq},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiError(t, ack(t, c, base, tc.seq), tc.status, tc.code)
		})
	}
	if got, _ := tt.cursors.Get("sapporo-zeimu"); got != tt.recsA[3] {
		t.Fatalf("cursor after refusals = %d, want %d", got, tt.recsA[3])
	}
	if r := ack(t, c, base, last); r.status != http.StatusOK {
		t.Fatalf("ack last: HTTP %d %s", r.status, r.body)
	}
	if lr := list(t, c, base, ""); lr.Cursor != last || len(lr.Records) != 0 || lr.Records == nil {
		t.Fatalf("after acking everything: %+v", lr)
	}
	// The raw body is [] rather than null.
	if r := do(t, c, http.MethodGet, base+PathRecords, "", nil); !bytes.Contains(r.body, []byte(`"records":[]`)) {
		t.Fatalf("empty list body %s", r.body)
	}
	// New records show up after the cursor.
	nr := tt.add(tenantA, "application/xml", []byte("<late/>"))
	if lr := list(t, c, base, ""); !slices.Equal(seqs(lr.Records), []int64{nr.Seq}) {
		t.Fatalf("new record: listed %v, want [%d]", seqs(lr.Records), nr.Seq)
	}
}

func TestBadRequests(t *testing.T) {
	tt := setupTwoTenants(t)
	c, base := tt.ca, tt.base
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		status      int
		code        api.Code
	}{
		{"limit zero", http.MethodGet, PathRecords + "?limit=0", "", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"limit too big", http.MethodGet, PathRecords + "?limit=501", "", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"limit not a number", http.MethodGet, PathRecords + "?limit=ten", "", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"limit repeated", http.MethodGet, PathRecords + "?limit=1&limit=2", "", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"ack malformed", http.MethodPost, PathAck, "application/json", []byte(`{"seq":`), http.StatusBadRequest, api.CodeBadRequest},
		{"ack negative", http.MethodPost, PathAck, "application/json", []byte(`{"seq":-1}`), http.StatusBadRequest, api.CodeBadRequest},
		{"ack unknown member", http.MethodPost, PathAck, "application/json", []byte(`{"seq":1,"all":true}`), http.StatusBadRequest, api.CodeBadRequest},
		{"ack empty", http.MethodPost, PathAck, "", nil, http.StatusBadRequest, api.CodeBadRequest},
		{"ack too large", http.MethodPost, PathAck, "application/json", []byte(`{"seq":1}` + strings.Repeat(" ", MaxBody)), http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		{"ack wrong content type", http.MethodPost, PathAck, "text/plain", []byte(`{"seq":1}`), http.StatusUnsupportedMediaType, api.CodeContentType},
		{"list with POST", http.MethodPost, PathRecords, "", nil, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"fetch with DELETE", http.MethodDelete, PathRecords + "/" + tt.idsA[0], "", nil, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"ack with GET", http.MethodGet, PathAck, "", nil, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"unknown path", http.MethodGet, "/v1/export/everything", "", nil, http.StatusNotFound, CodeNotFound},
		{"root", http.MethodGet, "/", "", nil, http.StatusNotFound, CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiError(t, do(t, c, tc.method, base+tc.path, tc.contentType, tc.body), tc.status, tc.code)
		})
	}
	if got, _ := tt.cursors.Get("sapporo-zeimu"); got != 0 {
		t.Fatalf("cursor moved to %d by refused requests", got)
	}
	if a := tt.al.Size(); a < 15 {
		t.Fatalf("%d audit events for 15 refused requests", a)
	}
}

// TestTenantIsolation: client A can never list, fetch or acknowledge B's
// records, by any ID or Seq, and learns nothing about them from the
// answers.
func TestTenantIsolation(t *testing.T) {
	tt := setupTwoTenants(t)
	c, base := tt.ca, tt.base
	lr := list(t, c, base, "?limit=500")
	for _, r := range lr.Records {
		if slices.Contains(tt.idsB, r.ID) {
			t.Fatalf("A listed B's record %s", r.ID)
		}
	}
	unknown := do(t, c, http.MethodGet, base+PathRecords+"/"+newID(), "", nil)
	apiError(t, unknown, http.StatusNotFound, CodeNotFound)
	for _, id := range append(slices.Clone(tt.idsB), "not-an-id", "..", "01ARZ3NDEKTSV4RRFFQ69G5FAV%2F..", strings.ToLower(tt.idsB[0])) {
		r := do(t, c, http.MethodGet, base+PathRecords+"/"+id, "", nil)
		apiError(t, r, http.StatusNotFound, CodeNotFound)
		if !bytes.Equal(r.body, unknown.body) {
			t.Fatalf("fetch %s answered %s, an unknown ID %s", id, r.body, unknown.body)
		}
	}
	// B's Seqs are not A's records: refused, whatever their position.
	for _, seq := range tt.recsB {
		apiError(t, ack(t, c, base, seq), http.StatusBadRequest, CodeBadSeq)
	}
	for _, name := range []string{"sapporo-zeimu", "hakodate-zeimu"} {
		if got, _ := tt.cursors.Get(name); got != 0 {
			t.Fatalf("cursor %s moved to %d", name, got)
		}
	}
	// B sees exactly its own.
	if lr := list(t, tt.cb, base, ""); !slices.Equal(seqs(lr.Records), tt.recsB) || lr.Tenant != tenantB {
		t.Fatalf("B listed %v, want %v", seqs(lr.Records), tt.recsB)
	}
	// The opener was only ever asked for A's tenant by A's actor.
	for _, id := range tt.idsB {
		if n := tt.openCount(id); n != 0 {
			t.Fatalf("B's record %s opened %d times", id, n)
		}
	}
	if !tt.hasEvent("export:sapporo-zeimu", "export.fetch", tenantA+" "+tt.idsB[0], audit.ResultDenied) {
		t.Fatal("A's attempt at B's record not audited as denied")
	}
}

func TestRefusals(t *testing.T) {
	e := newTestEnv(t)
	recs := e.addN(tenantA, 2)
	known, fpKnown := e.leaf(tenantA, false)
	stranger, _ := e.leaf("lg:999999", false)
	outsider, fpOutsider := e.leaf("lg:012025", false)
	expired, fpExpired := issue(t, e.ca, "lg:013005", false, time.Now().Add(-3*time.Hour), time.Hour)
	srv := e.serve(e.config(
		Client{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: fpKnown, Networks: loopback},
		Client{Name: "remote-zeimu", Tenant: tenantA, CertSHA256: fpOutsider, Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		Client{Name: "old-zeimu", Tenant: tenantA, CertSHA256: fpExpired, Networks: loopback},
	), tls.VerifyClientCertIfGiven)

	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		status int
		code   api.Code
		actor  string
	}{
		{"no certificate", nil, http.StatusUnauthorized, CodeUnknownClient, "anonymous"},
		{"unknown certificate", &stranger, http.StatusUnauthorized, CodeUnknownClient, "anonymous"},
		{"expired certificate", &expired, http.StatusUnauthorized, CodeUnknownClient, "export:old-zeimu"},
		{"address not allowed", &outsider, http.StatusForbidden, CodeAddressNotAllowed, "export:remote-zeimu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "expired certificate" {
				// The CA refuses an expired certificate in the handshake;
				// check the handler's own check with a server that only
				// asks for any certificate.
				s2 := e.serve(e.config(Client{Name: "old-zeimu", Tenant: tenantA, CertSHA256: fpExpired, Networks: loopback}), tls.RequireAnyClientCert)
				apiError(t, do(t, e.client(tc.cert), http.MethodGet, s2.URL+PathRecords, "", nil), tc.status, tc.code)
				return
			}
			c := e.client(tc.cert)
			for _, req := range []struct{ method, path string }{
				{http.MethodGet, PathRecords},
				{http.MethodGet, PathRecords + "/" + recs[0].ID},
				{http.MethodPost, PathAck},
				{http.MethodGet, "/elsewhere"},
			} {
				before := e.al.Size()
				r := do(t, c, req.method, srv.URL+req.path, "application/json", []byte(fmt.Sprintf(`{"seq":%d}`, recs[1].Seq)))
				apiErr := apiError(t, r, tc.status, tc.code)
				if strings.Contains(apiErr.Message, fpKnown) || strings.Contains(string(r.body), recs[0].ID) {
					t.Fatalf("refusal leaks: %s", r.body)
				}
				ev, err := e.al.Events(before, e.al.Size())
				if err != nil || len(ev) != 1 || ev[0].Actor != tc.actor || ev[0].Action != "export.denied" || ev[0].Result != audit.ResultDenied || ev[0].From == "" {
					t.Fatalf("audit events %+v, %v", ev, err)
				}
			}
		})
	}
	if got, _ := e.cursors.Get("remote-zeimu"); got != 0 {
		t.Fatalf("refused client's cursor moved to %d", got)
	}
	if n := e.openCount(recs[0].ID); n != 0 {
		t.Fatalf("record opened %d times by refused clients", n)
	}
	// The allowed client gets through on the same server.
	if lr := list(t, e.client(&known), srv.URL, ""); len(lr.Records) != 2 {
		t.Fatalf("allowed client listed %d records", len(lr.Records))
	}
}

// TestPinnedSelfSignedCertificate: behind a listener that asks for any
// certificate, the fingerprint alone admits a tax system.
func TestPinnedSelfSignedCertificate(t *testing.T) {
	e := newTestEnv(t)
	e.addN(tenantA, 1)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "sapporo-zeimu"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	srv := e.serve(e.config(Client{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: fingerprint(leaf), Networks: loopback}), tls.RequireAnyClientCert)
	if lr := list(t, e.client(&cert), srv.URL, ""); len(lr.Records) != 1 {
		t.Fatalf("listed %d records", len(lr.Records))
	}
}

func TestAuditTrail(t *testing.T) {
	tt := setupTwoTenants(t)
	c, base := tt.ca, tt.base
	list(t, c, base, "")
	do(t, c, http.MethodGet, base+PathRecords+"/"+tt.idsA[0], "", nil)
	ack(t, c, base, tt.recsA[0])
	do(t, c, http.MethodGet, base+PathRecords+"/"+tt.idsB[0], "", nil)
	ack(t, c, base, 0)

	actor := "export:sapporo-zeimu"
	for _, w := range []struct{ action, object, result string }{
		{"export.list", tenantA, audit.ResultOK},
		{"export.fetch", tenantA + " " + tt.idsA[0], audit.ResultOK},
		{"export.ack", tenantA, audit.ResultOK},
		{"export.fetch", tenantA + " " + tt.idsB[0], audit.ResultDenied},
		{"export.ack", tenantA, audit.ResultDenied},
	} {
		if !tt.hasEvent(actor, w.action, w.object, w.result) {
			t.Errorf("no audit event %s %s %q %s", actor, w.action, w.object, w.result)
		}
	}
	// The opener was called as the client's actor, and nothing the audit
	// log holds is payload.
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if len(tt.actors) == 0 || tt.actors[0] != actor {
		t.Fatalf("opener actors %q", tt.actors)
	}
	for _, ev := range tt.events() {
		for _, pt := range tt.plain {
			if strings.Contains(ev.Detail, string(pt)) || strings.Contains(ev.Object, string(pt)) {
				t.Fatalf("audit event %v holds a payload", ev)
			}
		}
	}
}

// TestRestartKeepsCursor: a new server over reopened cursors resumes where
// the client acknowledged.
func TestRestartKeepsCursor(t *testing.T) {
	e := newTestEnv(t)
	recs := e.addN(tenantA, 4)
	cert, fp := e.leaf(tenantA, false)
	clients := []Client{{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: fp, Networks: loopback}}
	srv := e.serve(e.config(clients...), tls.VerifyClientCertIfGiven)
	c := e.client(&cert)
	if r := ack(t, c, srv.URL, recs[2].Seq); r.status != http.StatusOK {
		t.Fatalf("ack: HTTP %d %s", r.status, r.body)
	}
	srv.Close()

	cursors, err := OpenCursors(e.cursorsDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(clients...)
	cfg.Cursors = cursors
	srv2 := e.serve(cfg, tls.VerifyClientCertIfGiven)
	lr := list(t, e.client(&cert), srv2.URL, "")
	if lr.Cursor != recs[2].Seq || !slices.Equal(seqs(lr.Records), []int64{recs[3].Seq}) {
		t.Fatalf("after restart: cursor %d, seqs %v", lr.Cursor, seqs(lr.Records))
	}
}

// TestDownloadCutOnFailure: a plaintext stream that fails at its end,
// after every announced byte, never reaches the client as a complete body.
func TestDownloadCutOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"small (cut before the headers leave)", 25},
		{"large (cut in the body)", 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			pt := bytes.Repeat([]byte("x"), tc.size)
			rec := e.add(tenantA, "application/xml", pt)
			e.hook = func(string) io.Reader { return &brokenReader{data: slices.Clone(pt)} }
			cert, fp := e.leaf(tenantA, false)
			srv := e.serve(e.config(Client{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: fp, Networks: loopback}), tls.VerifyClientCertIfGiven)
			resp, err := e.client(&cert).Get(srv.URL + PathRecords + "/" + rec.ID)
			if err == nil {
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) >= tc.size {
					t.Fatalf("read %d of %d bytes with %v, want a truncated body", len(b), tc.size, err)
				}
			}
			if !e.hasEvent("export:sapporo-zeimu", "export.fetch", tenantA+" "+rec.ID, audit.ResultError) {
				t.Fatal("aborted download not audited")
			}
		})
	}
}

func TestNewServerRefusesBadConfig(t *testing.T) {
	e := newTestEnv(t)
	fp := strings.Repeat("ab", 32)
	good := Client{Name: "sapporo-zeimu", Tenant: tenantA, CertSHA256: fp, Networks: loopback}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"no clients", func(c *Config) { c.Clients = nil }},
		{"no store", func(c *Config) { c.Store = nil }},
		{"no opener", func(c *Config) { c.Open = nil }},
		{"no cursors", func(c *Config) { c.Cursors = nil }},
		{"no audit", func(c *Config) { c.Audit = nil }},
		{"bad name", func(c *Config) { c.Clients[0].Name = "Sapporo Zeimu" }},
		{"dotted name", func(c *Config) { c.Clients[0].Name = "drop.x" }},
		{"bad tenant", func(c *Config) { c.Clients[0].Tenant = "sapporo" }},
		{"short fingerprint", func(c *Config) { c.Clients[0].CertSHA256 = "abcd" }},
		{"non-hex fingerprint", func(c *Config) { c.Clients[0].CertSHA256 = strings.Repeat("zz", 32) }},
		{"no networks", func(c *Config) { c.Clients[0].Networks = nil }},
		{"invalid network", func(c *Config) { c.Clients[0].Networks = []netip.Prefix{{}} }},
		{"duplicate name", func(c *Config) {
			d := good
			d.CertSHA256 = strings.Repeat("cd", 32)
			c.Clients = append(c.Clients, d)
		}},
		{"duplicate fingerprint", func(c *Config) {
			d := good
			d.Name, d.CertSHA256 = "other", strings.ToUpper(fp)
			c.Clients = append(c.Clients, d)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(good)
			tc.mutate(&cfg)
			if _, err := NewServer(cfg); !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewServer = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := NewServer(e.config(good)); err != nil {
		t.Fatal(err)
	}
}
