// Package drill runs the drills the standard asks for against a network and
// reports what happened: each drill prints a table for people and returns a
// summary for scripts.
//
// The attack drill (第4 3(6) 模擬攻撃) attacks a running dev network through
// its real listeners — foreign and expired certificates, old TLS, spoofed
// senders, tampered envelopes, floods, slow clients, forged and rolled-back
// directories — while legitimate notifications keep flowing, and checks
// that every attack was refused by the defence meant for it and that no
// legitimate notification was lost.
package drill

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"taxlink/internal/acceptance"
	"time"

	"github.com/oklog/ulid/v2"

	"taxlink/internal/api"
	"taxlink/internal/config"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/ledger"
	"taxlink/internal/node"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
)

// Result is the outcome of one attack.
type Result struct {
	Attack  string `json:"attack"`
	Defence string `json:"defence"`
	Blocked bool   `json:"blocked"`
	Detail  string `json:"detail"`
}

// AttackSummary is the last line of `taxlink drill attack`.
type AttackSummary struct {
	Attacks    int   `json:"attacks"`
	Blocked    int   `json:"blocked"`
	NotBlocked int   `json:"not_blocked"`
	LegitSent  int   `json:"legit_sent"`
	LegitDone  int   `json:"legit_recorded"`
	Lost       int   `json:"lost"`
	ElapsedMS  int64 `json:"elapsed_ms"`
	Passed     bool  `json:"passed"`
}

type attack struct {
	name, defence string
	run           func(ctx context.Context, a *attacker) (blocked bool, detail string)
}

// attacker holds what the drill knows of the dev network: everything an
// insider with the dev keys would, which is more than a real attacker.
type attacker struct {
	lay    *devnet.Layout
	roots  *x509.CertPool
	hubURL string
	// accepted is the hub's store of acceptances when the network runs in
	// this process, to check that nothing refused was accepted; nil for a
	// network in other processes, where the refusal codes are what is
	// checked.
	accepted acceptance.Store
	v1       []byte // the directory before the drill changed it
	// dirKey verifies the directory.
	dirKey *ecdsa.PublicKey
	// signed returns the signed directory in force at the hub.
	signed func() []byte
	// publish puts a new signed directory in force at the hub.
	publish func(ctx context.Context, doc []byte) error
	// nta is the NTA node the legitimate traffic comes from.
	nta *daemon.LoadedNode
}

// dir returns the directory in force at the hub, verified.
func (a *attacker) dir() *directory.Directory {
	d, err := directory.Verify(a.signed(), a.dirKey, "")
	if err != nil {
		panic(fmt.Sprintf("drill: the directory in force does not verify: %v", err))
	}
	return d
}

func (a *attacker) nodeDir(id string) string {
	if id == devnet.HubID {
		return filepath.Dir(a.lay.HubConfig)
	}
	n, _ := a.lay.Node(id)
	return filepath.Dir(n.Config)
}

func (a *attacker) cert(id string) tls.Certificate {
	c, err := devnet.TLSCert(a.lay, a.nodeDir(id))
	if err != nil {
		panic(fmt.Sprintf("drill: dev network files: %v", err))
	}
	return c
}

func (a *attacker) signer(id string) crypto.Signer {
	k, err := devnet.ReadKey(a.lay, filepath.Join(a.nodeDir(id), "signing.key"))
	if err != nil {
		panic(fmt.Sprintf("drill: dev network files: %v", err))
	}
	return k
}

// client returns an HTTP client with a plain TLS configuration presenting
// certs, as an attacker's tool would; mod adjusts it.
func (a *attacker) client(certs []tls.Certificate, mod func(*tls.Config)) *http.Client {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: certs, RootCAs: a.roots}
	if mod != nil {
		mod(tc)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// envelope builds a sealed, signed envelope from sender to recipient.
func (a *attacker) envelope(sender, recipient, typ, contentType string, payload []byte, signer crypto.Signer) (*envelope.Header, []byte, []byte, []byte) {
	d := a.dir()
	sealTo := recipient
	if _, err := d.Participant(recipient); err != nil {
		sealTo = devnet.SapporoID
	}
	p, _ := d.Participant(sealTo)
	sk, _ := p.SealingKeyAt(time.Now())
	pub, _ := p.PublicKey(sk)
	h := &envelope.Header{ID: ulid.Make().String(), Type: typ, Sender: sender, Recipient: recipient,
		Created: time.Now().UTC().Truncate(time.Millisecond), ContentType: contentType, KeyID: sk.ID}
	var ct bytes.Buffer
	if err := envelope.Seal(pub, h, bytes.NewReader(payload), &ct); err != nil {
		panic(err)
	}
	hb, err := h.MarshalBinary()
	if err != nil {
		panic(err)
	}
	sig, err := envelope.Sign(signer, hb)
	if err != nil {
		panic(err)
	}
	return h, hb, sig, ct.Bytes()
}

func rawWire(hb, sig, ct []byte) []byte {
	var w bytes.Buffer
	w.WriteString("TLE1")
	w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(hb))))
	w.Write(hb)
	w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(sig))))
	w.Write(sig)
	w.Write(ct)
	return w.Bytes()
}

func rawSign(s crypto.Signer, hb []byte) []byte {
	d := envelope.SignatureDigest(hb)
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	return sig
}

// post sends body and returns the status and refusal code, or the
// transport error.
func post(ctx context.Context, c *http.Client, url string, body []byte) (int, api.Code, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return 200, "", resp.Header, nil
	}
	e := api.ReadError(resp)
	return resp.StatusCode, e.Code, resp.Header, nil
}

// expectCode builds an attack run that submits an envelope as peer and
// expects the refusal code want, with nothing accepted.
func (a *attacker) expectCode(ctx context.Context, peer string, body []byte, id string, want api.Code) (bool, string) {
	status, code, _, err := post(ctx, a.client([]tls.Certificate{a.cert(peer)}, nil), a.hubURL+api.PathSubmit, body)
	if err != nil {
		return false, "transport error instead of a refusal: " + err.Error()
	}
	if id != "" {
		if a.accepted != nil {
			if _, err := a.accepted.Get(ctx, id); !errors.Is(err, acceptance.ErrNotFound) {
				return false, "the envelope was accepted"
			}
		}
	}
	if code != want {
		return false, fmt.Sprintf("HTTP %d %s, want %s", status, code, want)
	}
	return true, fmt.Sprintf("HTTP %d %s", status, code)
}

// expectHandshakeRefused submits a valid envelope with client and expects
// the connection to fail before HTTP.
func (a *attacker) expectHandshakeRefused(ctx context.Context, c *http.Client, url string) (bool, string) {
	_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte("<a/>"), a.signer(devnet.NTAID))
	status, code, _, err := post(ctx, c, url, rawWire(hb, sig, ct))
	if err == nil {
		return false, fmt.Sprintf("reached HTTP: %d %s", status, code)
	}
	return true, "handshake refused: " + shortErr(err)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 80 {
		s = s[i+2:]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// selfSigned makes a certificate for id from a CA the network does not
// know.
func selfSigned(id pki.Identity) tls.Certificate {
	ca, err := pki.NewCA("rogue CA", time.Now().Add(-time.Hour), 24*time.Hour)
	if err != nil {
		panic(err)
	}
	k, _ := pki.NewKey()
	c, err := ca.Issue(pki.IssueRequest{Identity: id, Public: &k.PublicKey, Client: true, NotBefore: time.Now().Add(-time.Minute), Validity: time.Hour})
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func (a *attacker) issue(id pki.Identity, notBefore time.Time, validity time.Duration) tls.Certificate {
	c, err := devnet.IssueCert(a.lay, id, notBefore, validity)
	if err != nil {
		panic(err)
	}
	return c
}

// fakeHub serves doc as the directory with the hub's own certificate: a
// compromised or replaying hub.
func (a *attacker) fakeHub(ctx context.Context, doc []byte) (string, func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathDirectory, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(doc) })
	return a.fakeHubWith(ctx, mux)
}

// fakeHubWith serves mux with the hub's own certificate.
func (a *attacker) fakeHubWith(ctx context.Context, mux *http.ServeMux) (string, func(), error) {
	cfg, err := pki.ServerConfig(a.cert(devnet.HubID), a.roots, devnet.Environment)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { _ = api.Serve(ctx, ln, cfg, mux, slog.New(slog.DiscardHandler)) }()
	return "https://" + ln.Addr().String(), cancel, nil
}

// nodeAgainst loads a copy of the NTA node's configuration that talks to
// hubURL and keeps its own data and directory copy.
func (a *attacker) nodeAgainst(hubURL string) (*daemon.LoadedNode, error) {
	src, _ := a.lay.Node(devnet.NTAID)
	c, err := config.LoadNode(src.Config) // every path made absolute
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "taxlink-drill-node-")
	if err != nil {
		return nil, err
	}
	cur, err := os.ReadFile(c.Directory)
	if err != nil {
		return nil, err
	}
	c.Directory = filepath.Join(dir, "directory.json")
	if err := os.WriteFile(c.Directory, cur, 0o644); err != nil {
		return nil, err
	}
	// The copy starts from the checkpoint the real node holds.
	c.DataDir = filepath.Join(dir, "data")
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, err
	}
	n, _ := a.lay.Node(devnet.NTAID)
	if cp, err := os.ReadFile(filepath.Join(filepath.Dir(n.Config), "data", "hub-checkpoint")); err == nil {
		if err := os.WriteFile(filepath.Join(c.DataDir, "hub-checkpoint"), cp, 0o600); err != nil {
			return nil, err
		}
	}
	c.HubURL = hubURL
	nb, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "node.json")
	if err := os.WriteFile(cfg, nb, 0o644); err != nil {
		return nil, err
	}
	return daemon.LoadNode(cfg, slog.New(slog.DiscardHandler))
}

// nextDirectory returns the hub's directory with a higher version, mutated
// and signed with the dev directory key.
func (a *attacker) nextDirectory(mutate func(d *directory.Directory)) ([]byte, error) {
	var s directory.Signed
	if err := json.Unmarshal(a.signed(), &s); err != nil {
		return nil, err
	}
	var d directory.Directory
	if err := json.Unmarshal(s.Body, &d); err != nil {
		return nil, err
	}
	d.Version++
	mutate(&d)
	key, err := devnet.ReadKey(a.lay, filepath.Join(filepath.Dir(a.lay.HubConfig), "directory-signing.key"))
	if err != nil {
		return nil, err
	}
	return directory.Sign(&d, key)
}

// suspendedTown is suspended during the drill; legitimate traffic avoids it.
const suspendedTown = "lg:013323"

const xmlDoc = `<?xml version="1.0" encoding="UTF-8"?><申告書>drill</申告書>`

func attacks() []attack {
	hubID := pki.Identity{Env: devnet.Environment, ID: devnet.HubID}
	return []attack{
		{"client certificate from a foreign CA", "mTLS: CA pool", func(ctx context.Context, a *attacker) (bool, string) {
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{selfSigned(pki.Identity{Env: devnet.Environment, ID: devnet.NTAID})}, nil), a.hubURL+api.PathSubmit)
		}},
		{"expired client certificate", "mTLS: validity", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.issue(pki.Identity{Env: devnet.Environment, ID: devnet.NTAID}, time.Now().Add(-48*time.Hour), 24*time.Hour)
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{c}, nil), a.hubURL+api.PathSubmit)
		}},
		{"not-yet-valid client certificate", "mTLS: validity", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.issue(pki.Identity{Env: devnet.Environment, ID: devnet.NTAID}, time.Now().Add(24*time.Hour), 24*time.Hour)
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{c}, nil), a.hubURL+api.PathSubmit)
		}},
		{"no client certificate", "mTLS: client certificate required", func(ctx context.Context, a *attacker) (bool, string) {
			return a.expectHandshakeRefused(ctx, a.client(nil, nil), a.hubURL+api.PathSubmit)
		}},
		{"TLS 1.2 only", "TLS 1.3 only", func(ctx context.Context, a *attacker) (bool, string) {
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{a.cert(devnet.NTAID)}, func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			}), a.hubURL+api.PathSubmit)
		}},
		{"weak cipher suites (TLS 1.2 CBC)", "TLS 1.3 only", func(ctx context.Context, a *attacker) (bool, string) {
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{a.cert(devnet.NTAID)}, func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS12
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
			}), a.hubURL+api.PathSubmit)
		}},
		{"certificate of a participant unknown to the directory", "deny by default in the handshake", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.issue(pki.Identity{Env: devnet.Environment, ID: "lg:012025"}, time.Now().Add(-time.Hour), 24*time.Hour)
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{c}, nil), a.hubURL+api.PathSubmit)
		}},
		{"test-environment certificate against dev", "environment separation", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.issue(pki.Identity{Env: "test", ID: devnet.NTAID}, time.Now().Add(-time.Hour), 24*time.Hour)
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{c}, nil), a.hubURL+api.PathSubmit)
		}},
		{"a node delivering straight to another node (hub impersonation)", "node admits only the hub", func(ctx context.Context, a *attacker) (bool, string) {
			return a.expectHandshakeRefused(ctx, a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil), "https://"+a.nodeAddr(devnet.SapporoID)+api.PathDeliver)
		}},
		{"a node's certificate posing as the hub to a node", "client checks the hub's identity", func(ctx context.Context, a *attacker) (bool, string) {
			cfg, err := pki.ServerConfig(a.cert(devnet.TokyoID), a.roots, devnet.Environment)
			if err != nil {
				return false, err.Error()
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return false, err.Error()
			}
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			go func() { _ = api.Serve(sctx, ln, cfg, http.NewServeMux(), slog.New(slog.DiscardHandler)) }()
			cc, err := pki.ClientConfig(a.cert(devnet.NTAID), a.roots, hubID)
			if err != nil {
				return false, err.Error()
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cc}, Timeout: 10 * time.Second}
			resp, err := c.Get("https://" + ln.Addr().String() + api.PathDirectory)
			if err == nil {
				resp.Body.Close()
				return false, "the node talked to an impostor"
			}
			return true, "refused: " + shortErr(err)
		}},
		{"sender spoofing in the header", "peer identity must host the sender", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.TokyoID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeSenderMismatch)
		}},
		{"submitting as a tenant the node does not host", "node submits only as its tenants", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.SapporoID, devnet.NTAID, "local-tax-info", "application/xml", []byte(xmlDoc), a.signer(devnet.OutsourcerID))
			return a.expectCode(ctx, devnet.OutsourcerID, rawWire(hb, sig, ct), h.ID, api.CodeSenderMismatch)
		}},
		{"replay of an accepted envelope", "idempotent acceptance by ID", func(ctx context.Context, a *attacker) (bool, string) {
			_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			c := a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil)
			body := rawWire(hb, sig, ct)
			s1, _, _, err1 := post(ctx, c, a.hubURL+api.PathSubmit, body)
			s2, _, h2, err2 := post(ctx, c, a.hubURL+api.PathSubmit, body)
			if err1 != nil || err2 != nil || s1 != 200 || s2 != 200 {
				return false, fmt.Sprintf("%d %v / %d %v", s1, err1, s2, err2)
			}
			if h2.Get("Tl-Duplicate") != "1" {
				return false, "replay accepted as new"
			}
			return true, "answered with the original receipt, stored once"
		}},
		{"tampered ciphertext", "digest in the signed header", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			ct[len(ct)/2] ^= 1
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeDigestMismatch)
		}},
		{"tampered header (creation time)", "sender's signature", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			// The last byte of Created: every other check still passes.
			at := 4 + 1 + len(h.ID) + 1 + len(h.Type) + 1 + len(h.Sender) + 1 + len(h.Recipient) + 7
			hb[at] ^= 1
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeBadSignature)
		}},
		{"revoked client certificate", "CRL checked and refreshed", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.issue(pki.Identity{Env: devnet.Environment, ID: devnet.NTAID}, time.Now().Add(-time.Hour), 24*time.Hour)
			cl := a.client([]tls.Certificate{c}, nil)
			_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			if status, _, _, err := post(ctx, cl, a.hubURL+api.PathSubmit, rawWire(hb, sig, ct)); err != nil || status != 200 {
				return false, fmt.Sprintf("the certificate did not work before revocation: %v %d", err, status)
			}
			if err := devnet.Revoke(a.lay, time.Now(), c.Leaf); err != nil {
				return false, err.Error()
			}
			// The hub rereads its CRL every few seconds in the dev network.
			for ctx.Err() == nil {
				_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
				if _, _, _, err := post(ctx, a.client([]tls.Certificate{c}, nil), a.hubURL+api.PathSubmit, rawWire(hb, sig, ct)); err != nil {
					return true, "refused after the CRL refresh: " + shortErr(err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			return false, "still accepted a minute after revocation"
		}},
		{"signature by a key not (or no longer) in the directory", "signing keys from the directory", func(ctx context.Context, a *attacker) (bool, string) {
			old, _ := pki.NewKey()
			h, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), old)
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeBadSignature)
		}},
		{"envelope to a suspended recipient", "suspension in the directory", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.NTAID, suspendedTown, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeSuspended)
		}},
		{"wrong check digit in the recipient code", "strict participant IDs", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, _, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			hb = bytes.Replace(hb, []byte("lg:011002"), []byte("lg:011003"), 1)
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, rawSign(a.signer(devnet.NTAID), hb), ct), h.ID, api.CodeBadParticipantID)
		}},
		{"recipient not in the directory", "routing from the directory", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.NTAID, "lg:012025", "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeUnknownRecipient)
		}},
		{"undefined notification type", "types from the directory", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "corporate-tax", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, sig, ct), h.ID, api.CodeUnknownType)
		}},
		{"flow the peer policy does not allow", "peer policy, deny by default", func(ctx context.Context, a *attacker) (bool, string) {
			h, hb, sig, ct := a.envelope(devnet.TokyoID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.TokyoID))
			return a.expectCode(ctx, devnet.TokyoID, rawWire(hb, sig, ct), h.ID, api.CodePolicyDenied)
		}},
		{"oversized header", "size limits before parsing", func(ctx context.Context, a *attacker) (bool, string) {
			body := append([]byte("TLE1\xff\xff"), bytes.Repeat([]byte{'A'}, 70000)...)
			return a.expectCode(ctx, devnet.NTAID, body, "", api.CodeMalformed)
		}},
		{"oversized payload", "per-type size limit", func(ctx context.Context, a *attacker) (bool, string) {
			h, _, _, _ := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			h.PayloadSize = 1 << 30
			h.CiphertextSize, _ = envelope.CiphertextSizeFor(h.PayloadSize, h.ChunkSize)
			hb, _ := h.MarshalBinary()
			return a.expectCode(ctx, devnet.NTAID, rawWire(hb, rawSign(a.signer(devnet.NTAID), hb), nil), h.ID, api.CodeTooLarge)
		}},
		{"path traversal in the envelope ID and type", "strict field syntax", func(ctx context.Context, a *attacker) (bool, string) {
			_, hb, _, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			// Same lengths, so only the syntax check can catch them.
			id := hb[5 : 5+26]
			copy(id, "../../../../../etc/passwd0")
			ok1, d1 := a.expectCode(ctx, devnet.NTAID, rawWire(hb, rawSign(a.signer(devnet.NTAID), hb), ct), "", api.CodeMalformed)
			resp, err := a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil).Get(a.hubURL + "/v1/../../etc/passwd")
			ok2 := err == nil && resp.StatusCode != 200
			if err == nil {
				resp.Body.Close()
			}
			return ok1 && ok2, d1
		}},
		{"malformed encodings (300 mutations of a valid envelope)", "strict decoder (fuzzed)", func(ctx context.Context, a *attacker) (bool, string) {
			_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			valid := rawWire(hb, sig, ct)
			c := a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil)
			r := mrand.New(mrand.NewPCG(1, 2))
			for i := range 300 {
				m := bytes.Clone(valid)
				switch i % 3 {
				case 0:
					m[r.IntN(len(m))] ^= byte(1 + r.IntN(255))
				case 1:
					m = m[:r.IntN(len(m))]
				case 2:
					binary.BigEndian.PutUint16(m[4:], uint16(r.IntN(65536)))
				}
				status, _, _, err := post(ctx, c, a.hubURL+api.PathSubmit, m)
				if err != nil {
					return false, fmt.Sprintf("mutation %d: %v", i, err)
				}
				if status < 400 || status >= 500 {
					return false, fmt.Sprintf("mutation %d answered HTTP %d", i, status)
				}
			}
			return true, "all 300 refused with 4xx"
		}},
		{"malformed encodings from the fuzz corpus", "strict decoder (fuzzed)", func(ctx context.Context, a *attacker) (bool, string) {
			seeds, err := envelope.FuzzSeeds()
			if err != nil {
				return false, err.Error()
			}
			c := a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil)
			for i, seed := range seeds {
				status, code, _, err := post(ctx, c, a.hubURL+api.PathSubmit, seed)
				if err != nil {
					return false, fmt.Sprintf("seed %d: %v", i, err)
				}
				// A seed that is a valid envelope from the fuzz vectors is
				// still refused: its sender's key is not the dev NTA's.
				if status < 400 || status >= 500 {
					return false, fmt.Sprintf("seed %d answered HTTP %d %s", i, status, code)
				}
			}
			return true, fmt.Sprintf("all %d seeds refused with 4xx", len(seeds))
		}},
		{"slow headers (slowloris)", "header timeout", func(ctx context.Context, a *attacker) (bool, string) {
			return a.slow(ctx, "POST "+api.PathSubmit+" HTTP/1.1\r\nHost: hub\r\n", false)
		}},
		{"slow body", "body idle timeout", func(ctx context.Context, a *attacker) (bool, string) {
			return a.slow(ctx, "POST "+api.PathSubmit+" HTTP/1.1\r\nHost: hub\r\nContent-Length: 100000\r\n\r\nTLE1", true)
		}},
		{"connection flood (400 idle connections)", "service stays available", func(ctx context.Context, a *attacker) (bool, string) {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range 400 {
				c, err := net.DialTimeout("tcp", strings.TrimPrefix(a.hubURL, "https://"), 2*time.Second)
				if err != nil {
					break
				}
				conns = append(conns, c)
			}
			start := time.Now()
			_, hb, sig, ct := a.envelope(devnet.NTAID, devnet.SapporoID, "income-tax-return", "application/xml", []byte(xmlDoc), a.signer(devnet.NTAID))
			status, code, _, err := post(ctx, a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil), a.hubURL+api.PathSubmit, rawWire(hb, sig, ct))
			if err != nil || status != 200 {
				return false, fmt.Sprintf("legitimate submission during the flood failed: %v %d %s", err, status, code)
			}
			return true, fmt.Sprintf("%d connections held; a legitimate submission took %s", len(conns), time.Since(start).Round(time.Millisecond))
		}},
		{"directory rollback offered to a node", "monotonic directory versions", func(ctx context.Context, a *attacker) (bool, string) {
			return a.directoryAttack(ctx, func(v1 []byte) []byte { return v1 }, directory.ErrRollback)
		}},
		{"directory with a bad signature", "directory signature", func(ctx context.Context, a *attacker) (bool, string) {
			return a.directoryAttack(ctx, func(v1 []byte) []byte {
				var s directory.Signed
				_ = json.Unmarshal(a.signed(), &s)
				s.Body = bytes.Replace(s.Body, []byte(`"version": `), []byte(`"version": 9`), 1)
				b, _ := json.Marshal(s)
				return b
			}, directory.ErrBadSignature)
		}},
		{"directory of another environment", "environment separation", func(ctx context.Context, a *attacker) (bool, string) {
			return a.directoryAttack(ctx, func([]byte) []byte {
				doc, _ := a.nextDirectory(func(d *directory.Directory) { d.Version += 10; d.Environment = "production" })
				return doc
			}, directory.ErrInvalid)
		}},
		{"hub ledger rolled back (a shorter history)", "node's witness checkpoint", func(ctx context.Context, a *attacker) (bool, string) {
			return a.ledgerAttack(ctx, func(witnessSize int64) int64 { return 1 }, ledger.ErrRollback)
		}},
		{"hub ledger forked (another history, longer)", "consistency proofs against the witness", func(ctx context.Context, a *attacker) (bool, string) {
			return a.ledgerAttack(ctx, func(witnessSize int64) int64 { return witnessSize + 5 }, ledger.ErrFork)
		}},
		{"probing undeclared endpoints and methods", "explicit routes only", func(ctx context.Context, a *attacker) (bool, string) {
			c := a.client([]tls.Certificate{a.cert(devnet.NTAID)}, nil)
			for _, p := range []struct{ method, path string }{{"GET", api.PathSubmit}, {"GET", "/debug/pprof/"}, {"PUT", api.PathDirectory}, {"DELETE", api.PathReceipts}} {
				req, _ := http.NewRequestWithContext(ctx, p.method, a.hubURL+p.path, nil)
				resp, err := c.Do(req)
				if err != nil {
					return false, err.Error()
				}
				resp.Body.Close()
				if resp.StatusCode < 400 {
					return false, fmt.Sprintf("%s %s answered %d", p.method, p.path, resp.StatusCode)
				}
			}
			return true, "404/405 for every probe"
		}},
	}
}

// slow opens a TLS connection with a valid certificate, sends start and
// then nothing, and expects the hub to close the connection (or refuse)
// within its timeout.
func (a *attacker) slow(ctx context.Context, start string, body bool) (bool, string) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{a.cert(devnet.NTAID)}, RootCAs: a.roots, NextProtos: []string{"http/1.1"}, ServerName: "127.0.0.1"}
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(a.hubURL, "https://"))
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	t0 := time.Now()
	if _, err := io.WriteString(conn, start); err != nil {
		return false, err.Error()
	}
	limit := api.ReadHeaderTimeout
	if body {
		limit = api.BodyIdleTimeout
	}
	_ = conn.SetReadDeadline(time.Now().Add(limit + 10*time.Second))
	b := make([]byte, 512)
	for {
		n, err := conn.Read(b)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, fmt.Sprintf("connection still open after %s", time.Since(t0).Round(time.Second))
			}
			return true, fmt.Sprintf("cut off after %s", time.Since(t0).Round(time.Second))
		}
		if n > 0 && bytes.HasPrefix(b, []byte("HTTP/1.1 4")) {
			return true, fmt.Sprintf("refused after %s", time.Since(t0).Round(time.Second))
		}
	}
}

// directoryAttack serves offered (made from the version in force) to a
// copy of the NTA node from a server holding the hub's certificate, and
// expects the node to refuse it with want and keep its directory.
func (a *attacker) directoryAttack(ctx context.Context, offered func(current []byte) []byte, want error) (bool, string) {
	doc := offered(a.v1)
	url, stop, err := a.fakeHub(ctx, doc)
	if err != nil {
		return false, err.Error()
	}
	defer stop()
	ln, err := a.nodeAgainst(url)
	if err != nil {
		return false, err.Error()
	}
	defer func() {
		ln.Close()
		os.RemoveAll(filepath.Dir(ln.Config.DataDir))
	}()
	before := ln.Directory().Version
	_, err = ln.Node.FetchDirectory(ctx)
	if !errors.Is(err, want) {
		return false, fmt.Sprintf("node answered %v, want %v", err, want)
	}
	if ln.Directory().Version != before {
		return false, "the node changed its directory"
	}
	return true, "node refused it and kept version " + fmt.Sprint(before)
}

// Attack runs every attack against nw, a dev network in this process,
// while the NTA node keeps sending legitimate notifications, then waits for
// each of those to be recorded. report is called after each attack.
func Attack(ctx context.Context, nw *devnet.Network, report func(Result)) ([]Result, AttackSummary, error) {
	nta := nw.Nodes[devnet.NTAID]
	a := &attacker{
		lay: nw.Layout, hubURL: "https://" + nw.Hub.Addr, accepted: nw.Hub.Acceptances,
		signed: nw.Hub.Dir.Signed,
		publish: func(_ context.Context, doc []byte) error {
			_, err := nw.Hub.Hub.UpdateDirectory(doc)
			return err
		},
		nta: &daemon.LoadedNode{Node: nta.Node, Store: nta.Store, Dir: nta.Dir},
	}
	return a.run(ctx, report)
}

// AttackRunning attacks a dev network running in other processes from the
// files `taxlink dev --init DIR` wrote, as an insider holding those files
// would: legitimate traffic comes from the NTA node's configuration loaded
// here, the suspension is published through the hub's directory file.
func AttackRunning(ctx context.Context, dir string, report func(Result)) ([]Result, AttackSummary, error) {
	lay, err := devnet.ReadLayout(dir)
	if err != nil {
		return nil, AttackSummary{}, err
	}
	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, AttackSummary{}, err
	}
	defer nta.Close()
	hubCfg, err := config.LoadHub(lay.HubConfig)
	if err != nil {
		return nil, AttackSummary{}, err
	}
	holder := nta.Dir
	a := &attacker{
		lay: lay, hubURL: "https://" + lay.HubListen, nta: nta,
		signed: func() []byte {
			_, _ = nta.Node.FetchDirectory(ctx)
			return holder.Signed()
		},
		publish: func(ctx context.Context, doc []byte) error {
			pem, err := os.ReadFile(hubCfg.DirectoryKey)
			if err != nil {
				return err
			}
			key, err := pki.ParsePublicKeyPEM(string(pem))
			if err != nil {
				return err
			}
			h, err := directory.NewHolder(hubCfg.Directory, key, devnet.Environment)
			if err != nil {
				return err
			}
			if _, err := h.Update(doc); err != nil {
				return err
			}
			// The hub rereads its directory file every few seconds.
			var want directory.Directory
			var s directory.Signed
			_ = json.Unmarshal(doc, &s)
			_ = json.Unmarshal(s.Body, &want)
			for ctx.Err() == nil {
				if _, err := nta.Node.FetchDirectory(ctx); err == nil && holder.Get().Version >= want.Version {
					return nil
				}
				time.Sleep(200 * time.Millisecond)
			}
			return ctx.Err()
		},
	}
	if _, err := nta.Node.FetchDirectory(ctx); err != nil {
		return nil, AttackSummary{}, fmt.Errorf("drill: the hub at %s does not answer: %w", a.hubURL, err)
	}
	return a.run(ctx, report)
}

// nodeAddr returns the address of node id's inbox.
func (a *attacker) nodeAddr(id string) string {
	n, _ := a.lay.Node(id)
	return n.Listen
}

func (a *attacker) run(ctx context.Context, report func(Result)) ([]Result, AttackSummary, error) {
	start := time.Now()
	cas, err := pki.ReadCertFile(filepath.Join(a.lay.Dir, "pki", "ca.pem"))
	if err != nil {
		return nil, AttackSummary{}, err
	}
	a.roots = pki.CertPool(cas...)
	pem, err := os.ReadFile(filepath.Join(a.lay.Dir, "directory", "directory-key.pem"))
	if err != nil {
		return nil, AttackSummary{}, err
	}
	if a.dirKey, err = pki.ParsePublicKeyPEM(string(pem)); err != nil {
		return nil, AttackSummary{}, err
	}
	a.v1 = a.signed()

	// Suspend one town, as an incident would; legitimate traffic avoids it.
	doc, err := a.nextDirectory(func(d *directory.Directory) {
		for i := range d.Participants {
			if d.Participants[i].ID == suspendedTown {
				d.Participants[i].Suspended = true
			}
		}
	})
	if err != nil {
		return nil, AttackSummary{}, err
	}
	if err := a.publish(ctx, doc); err != nil {
		return nil, AttackSummary{}, err
	}

	// Legitimate traffic, all through the drill.
	nta := a.nta
	var legit []string
	var mu sync.Mutex
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		var recipients []string
		for _, r := range a.lay.Recipients {
			if r != suspendedTown {
				recipients = append(recipients, r)
			}
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-trafficCtx.Done():
				return
			case <-t.C:
			}
			id, _, err := nta.Node.Submit(ctx, node.Submission{
				Recipient: recipients[i%len(recipients)], Type: "income-tax-return", ContentType: "application/xml",
				Payload: strings.NewReader(fmt.Sprintf("<申告書 n=\"%d\"/>", i)),
			})
			if id != "" && (err == nil || !errors.Is(err, node.ErrRefused)) {
				mu.Lock()
				legit = append(legit, id)
				mu.Unlock()
			}
		}
	}()

	var results []Result
	for _, at := range attacks() {
		if ctx.Err() != nil {
			break
		}

		blocked, detail := runGuarded(ctx, a, at)
		r := Result{Attack: at.name, Defence: at.defence, Blocked: blocked, Detail: detail}
		results = append(results, r)
		if report != nil {
			report(r)
		}
	}
	stopTraffic()
	<-trafficDone

	// Every legitimate notification must end with both receipts.
	sum := AttackSummary{Attacks: len(results)}
	for _, r := range results {
		if r.Blocked {
			sum.Blocked++
		} else {
			sum.NotBlocked++
		}
	}
	sum.LegitSent = len(legit)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nta.Node.ResubmitPending(ctx)
		_, _ = nta.Node.PollReceipts(ctx, 500*time.Millisecond)
		done := 0
		for _, id := range legit {
			if o, err := nta.Store.GetOutgoing(ctx, id); err == nil {
				if ae, re := node.VerifyBoth(nta.Directory(), devnet.HubID, o); ae == nil && re == nil {
					done++
				}
			}
		}
		sum.LegitDone = done
		if done == len(legit) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
	}
	sum.Lost = sum.LegitSent - sum.LegitDone
	sum.ElapsedMS = time.Since(start).Milliseconds()
	sum.Passed = sum.NotBlocked == 0 && sum.Lost == 0 && sum.Attacks > 0 && sum.LegitSent > 0
	return results, sum, nil
}

// runGuarded runs one attack, turning a panic in the drill's own code into
// a not-blocked result rather than a crash of the drill.
func runGuarded(ctx context.Context, a *attacker, at attack) (blocked bool, detail string) {
	defer func() {
		if r := recover(); r != nil {
			blocked, detail = false, fmt.Sprintf("drill error: %v", r)
		}
	}()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return at.run(actx, a)
}

// ledgerAttack shows a copy of the NTA node a hub ledger rewritten by
// someone holding the hub's key: a log of size(witness) entries of other
// content, with a valid signed checkpoint. The node must refuse it with
// want and keep the checkpoint it holds.
func (a *attacker) ledgerAttack(ctx context.Context, size func(witnessSize int64) int64, want error) (bool, string) {
	if err := a.nta.Node.CheckLedger(ctx); err != nil {
		return false, "the real node could not take a checkpoint first: " + err.Error()
	}
	verifiers, err := notekey.FromDirectory(a.dir())
	if err != nil {
		return false, err.Error()
	}
	// The fake hub answers from the forged log, built once the copy of the
	// node holds its checkpoint (the real node may take newer ones
	// meanwhile: only the copy's is compared).
	var forged *ledger.Log
	var cp ledger.Checkpoint
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathCheckpoint, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(cp.Note) })
	mux.HandleFunc("GET "+api.PathConsistency, func(w http.ResponseWriter, r *http.Request) {
		var oldSize int64
		fmt.Sscan(r.URL.Query().Get("old"), &oldSize)
		proof, err := forged.ConsistencyProof(oldSize, cp.Size)
		if err != nil {
			http.Error(w, "no proof", 404)
			return
		}
		api.WriteJSON(w, proof)
	})
	url, stop, err := a.fakeHubWith(ctx, mux)
	if err != nil {
		return false, err.Error()
	}
	defer stop()
	ln, err := a.nodeAgainst(url)
	if err != nil {
		return false, err.Error()
	}
	defer func() {
		ln.Close()
		os.RemoveAll(filepath.Dir(ln.Config.DataDir))
	}()
	heldPath := filepath.Join(ln.Config.DataDir, "hub-checkpoint")
	cpNote, err := os.ReadFile(heldPath)
	if err != nil {
		return false, err.Error()
	}
	held, err := ledger.ParseCheckpoint(cpNote, verifiers)
	if err != nil {
		return false, err.Error()
	}

	hubKey := a.signer(devnet.HubID)
	s, _ := notekey.NewSigner(devnet.HubID, hubKey)
	v, _ := notekey.NewVerifier(devnet.HubID, hubKey.Public().(*ecdsa.PublicKey))
	dir, err := os.MkdirTemp("", "taxlink-drill-ledger-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	forged, err = ledger.Open(dir, ledger.Options{Origin: held.Origin, Signer: s, Verifier: v})
	if err != nil {
		return false, err.Error()
	}
	defer forged.Close()
	n := size(held.Size)
	for i := range n {
		if _, err := forged.Append(ctx, fmt.Appendf(nil, "forged entry %d", i)); err != nil {
			return false, err.Error()
		}
	}
	if cp, err = forged.Checkpoint(ctx); err != nil {
		return false, err.Error()
	}

	err = ln.Node.CheckLedger(ctx)
	if !errors.Is(err, want) {
		return false, fmt.Sprintf("node answered %v, want %v", err, want)
	}
	after, _ := os.ReadFile(heldPath)
	if !bytes.Equal(after, cpNote) {
		return false, "the node replaced the checkpoint it held"
	}
	return true, fmt.Sprintf("node held size %d and refused a signed checkpoint of size %d", held.Size, cp.Size)
}
