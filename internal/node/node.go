// Package node is a participant's server: an inbox that records what the hub
// delivers for the tenants it hosts, and an outbox that seals, signs and
// submits notifications and collects both signed receipts.
//
// The inbox accepts deliveries only from the hub's certificate. It verifies
// the sender's signature against the directory, checks that it hosts the
// recipient and holds the sealing key named in the header, and stores the
// ciphertext (never opened) and a signed recording receipt in one committed
// transaction before it answers; a repeated delivery returns the stored
// receipt. The outbox writes every envelope to disk (fsync'd) before it
// submits it, so a notification handed to Submit survives a crash and is
// submitted again until the hub accepts or refuses it.
package node

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hpke"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/mod/sumdb/tlog"

	"taxlink/internal/api"
	"taxlink/internal/audit"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/fsutil"
	"taxlink/internal/ledger"
	"taxlink/internal/metrics"
	"taxlink/internal/notekey"
	"taxlink/internal/pause"
	"taxlink/internal/pki"
	"taxlink/internal/receipt"
	"taxlink/internal/store"
)

// SealingKey is a tenant's private key for opening what was sealed to it.
type SealingKey struct {
	Tenant, KeyID string
	Key           hpke.PrivateKey
}

// key returns the tenant's sealing key with that ID.
func (n *Node) key(tenant, id string) (hpke.PrivateKey, bool) {
	n.keysMu.RLock()
	defer n.keysMu.RUnlock()
	k, ok := n.keys[tenant+"\x00"+id]
	return k, ok
}

// AddSealingKey puts a new sealing key of a hosted tenant in use at once
// (a key rotation): envelopes sealed to it open from now on; the older
// keys stay for what was sealed to them. Adding a key ID twice is an error.
func (n *Node) AddSealingKey(k SealingKey) error {
	if !n.cfg.Directory.Get().Hosts(n.cfg.ID, k.Tenant) {
		return fmt.Errorf("node: sealing key for %s, which this node does not host", k.Tenant)
	}
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if _, ok := n.keys[k.Tenant+"\x00"+k.KeyID]; ok {
		return fmt.Errorf("node: %s already has a sealing key %q", k.Tenant, k.KeyID)
	}
	n.keys[k.Tenant+"\x00"+k.KeyID] = k.Key
	return nil
}

// RemoveTenantKeys takes every sealing key of tenant out of use (a
// decommission) and returns their IDs; envelopes sealed to them no longer
// open, and deliveries to the tenant are refused.
func (n *Node) RemoveTenantKeys(tenant string) []string {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	var ids []string
	for k := range n.keys {
		if t, id, _ := strings.Cut(k, "\x00"); t == tenant {
			ids = append(ids, id)
			delete(n.keys, k)
		}
	}
	slices.Sort(ids)
	return ids
}

// Secret returns the key's serialization (envelope.MarshalPrivateKey), from
// which keys bound to the tenant's key are derived (the search index's).
// The caller clears it after use.
func (k SealingKey) Secret() ([]byte, error) { return envelope.MarshalPrivateKey(k.Key) }

// Config holds a node's dependencies.
type Config struct {
	ID          string // the participant ID in the node's certificate
	Environment string
	Signer      crypto.Signer // signs envelopes and recording receipts
	Directory   *directory.Holder
	Store       store.NodeStore
	SealingKeys []SealingKey
	OutboxDir   string // side files of envelopes not yet accepted
	HubID       string
	HubURL      string
	// HubURLs are the other replicas of a clustered hub: a hub that does
	// not answer is left for the next (api.Failover).
	HubURLs []string
	TLSCert tls.Certificate
	Roots   *x509.CertPool
	// Mapper maps peer certificates to identities (nil: the taxlink URI
	// SAN); it must be the one given to the TLS configuration.
	Mapper pki.Mapper
	// TLSOptions add checks to the connection to the hub (revocation,
	// identity mapping).
	TLSOptions []pki.Option
	Logger     *slog.Logger
	Now        func() time.Time
	// ChunkSize is the plaintext size of a sealed chunk (0: the envelope
	// package's default).
	ChunkSize uint32
	// DirectoryRefresh is how often the node fetches the directory from
	// the hub and checks the hub's ledger (default 30s).
	DirectoryRefresh time.Duration
	// Witness keeps the last hub checkpoint this node saw (nil: the node
	// does not check the hub's ledger).
	Witness *ledger.Witness
	// Audit records security events (nil: none).
	Audit *audit.Log
	// Metrics counts for monitoring (nil: none).
	Metrics *metrics.Node
}

// Node is a running node.
type Node struct {
	cfg    Config
	keysMu sync.RWMutex
	keys   map[string]hpke.PrivateKey // tenant + "\x00" + key id
	hub    *http.Client
	log    *slog.Logger

	recorded, duplicates, refused atomic.Int64
	// unaccepted holds the IDs of envelopes recorded at their recipient
	// whose acceptance receipt never came back (string → struct{}).
	unaccepted sync.Map
	minFree    atomic.Int64
}

// New checks cfg and returns a node.
func New(cfg Config) (*Node, error) {
	if cfg.Signer == nil || cfg.Directory == nil || cfg.Store == nil {
		return nil, errors.New("node: signer, directory and store are required")
	}
	if _, err := cfg.Directory.Get().Node(cfg.ID); err != nil {
		return nil, fmt.Errorf("node: %s is not a node in the directory: %w", cfg.ID, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DirectoryRefresh <= 0 {
		cfg.DirectoryRefresh = 30 * time.Second
	}
	if err := os.MkdirAll(cfg.OutboxDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: outbox: %w", err)
	}
	n := &Node{cfg: cfg, keys: map[string]hpke.PrivateKey{}, log: cfg.Logger}
	n.minFree.Store(defaultMinFree)
	for _, k := range cfg.SealingKeys {
		if !cfg.Directory.Get().Hosts(cfg.ID, k.Tenant) {
			return nil, fmt.Errorf("node: sealing key for %s, which this node does not host", k.Tenant)
		}
		n.keys[k.Tenant+"\x00"+k.KeyID] = k.Key
	}
	tc, err := pki.ClientConfigWith(cfg.TLSCert, cfg.Roots, pki.Identity{Env: cfg.Environment, ID: cfg.HubID}, cfg.TLSOptions...)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	var rt http.RoundTripper = &http.Transport{
		TLSClientConfig:     tc,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		TLSHandshakeTimeout: 10 * time.Second,
		HTTP2:               api.HTTP2Client(),
	}
	if len(cfg.HubURLs) > 0 {
		if rt, err = api.NewFailover(rt, append([]string{cfg.HubURL}, cfg.HubURLs...)); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	n.hub = &http.Client{Transport: rt, Timeout: 10 * time.Minute}
	return n, nil
}

// defaultMinFree is the disk space below which the inbox refuses
// deliveries with 503 disk-low (the hub keeps them and retries).
const defaultMinFree = 512 << 20

// SetMinFreeBytes changes the disk space below which deliveries are
// refused (an operator, or a drill).
func (n *Node) SetMinFreeBytes(b int64) { n.minFree.Store(b) }

// SetAudit makes the node record security events in al. Call it before
// serving.
func (n *Node) SetAudit(al *audit.Log) { n.cfg.Audit = al }

// SetMetrics makes the node count for monitoring in m. Call it before
// serving.
func (n *Node) SetMetrics(m *metrics.Node) { n.cfg.Metrics = m }

// Stats is a snapshot of the inbox counters since start.
type Stats struct{ Recorded, Duplicates, Refused int64 }

// Stats returns the inbox counters.
func (n *Node) Stats() Stats {
	return Stats{n.recorded.Load(), n.duplicates.Load(), n.refused.Load()}
}

// Handler returns the node's inbox API, to be served over TLS with client
// certificates verified (pki.ServerConfig).
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathDeliver, n.deliver)
	return mux
}

func (n *Node) refuse(w http.ResponseWriter, e *api.Error) {
	n.refused.Add(1)
	n.cfg.Metrics.Refused(string(e.Code))
	n.log.Warn("delivery refused", "code", e.Code, "status", e.Status)
	api.WriteError(w, e)
}

func (n *Node) deliver(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	peer, err := pki.PeerIdentityWith(r.TLS, n.cfg.Mapper)
	if err != nil || peer.ID != n.cfg.HubID {
		n.refuse(w, api.Errorf(403, api.CodeForbidden, "only the hub delivers to this node"))
		return
	}
	if free := metrics.DiskFree(n.cfg.OutboxDir); free >= 0 && free < float64(n.minFree.Load()) {
		n.log.Error("ALERT: disk space below the minimum; deliveries refused", "free_bytes", int64(free))
		n.refuse(w, &api.Error{Status: 503, Code: api.CodeDiskLow, Message: "the node is short of disk space; retry later", RetryAfter: time.Minute})
		return
	}
	dir := n.cfg.Directory.Get()
	body := api.IdleTimeoutBody(w, r, api.BodyIdleTimeout)
	hdr, hb, sig, err := envelope.ReadPreamble(body)
	if err != nil {
		n.refuse(w, api.Errorf(400, api.CodeMalformed, "%v", err))
		return
	}
	if !dir.Hosts(n.cfg.ID, hdr.Recipient) {
		n.refuse(w, api.Errorf(404, api.CodeNotHosted, "this node does not host %s", hdr.Recipient))
		return
	}
	if _, ok := n.key(hdr.Recipient, hdr.KeyID); !ok {
		n.refuse(w, api.Errorf(400, api.CodeUnknownKey, "no sealing key %q for %s", hdr.KeyID, hdr.Recipient))
		return
	}
	senderNode, err := dir.HostOf(hdr.Sender)
	if err != nil {
		n.refuse(w, api.Errorf(403, api.CodeSenderMismatch, "sender %s is not hosted by any node", hdr.Sender))
		return
	}
	if err := envelope.Verify(senderNode.Key(), hb, sig); err != nil {
		n.refuse(w, api.Errorf(400, api.CodeBadSignature, "signature does not verify with the key of %s", senderNode.ID))
		return
	}
	now := n.cfg.Now().UTC().Truncate(time.Millisecond)
	rc := &receipt.Receipt{
		Kind: receipt.Recorded, EnvelopeID: hdr.ID, Type: hdr.Type, Sender: hdr.Sender, Recipient: hdr.Recipient,
		HeaderDigest: receipt.HeaderDigest(hb), Issuer: n.cfg.ID, Time: now,
	}
	if err := rc.Sign(n.cfg.Signer); err != nil {
		n.log.Error("sign receipt failed", "err", err)
		n.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	rj, err := rc.MarshalJSON()
	if err != nil {
		n.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	stored, existed, err := n.cfg.Store.Record(r.Context(), store.Record{
		ID: hdr.ID, Type: hdr.Type, Sender: hdr.Sender, Recipient: hdr.Recipient,
		Created: hdr.Created, RecordedAt: now, Header: hb, Signature: sig,
		CiphertextSize: int64(hdr.CiphertextSize), Receipt: rj,
	}, envelope.VerifyingReader(hdr, body))
	switch {
	case err == nil:
	case errors.Is(err, envelope.ErrDigestMismatch):
		n.refuse(w, api.Errorf(400, api.CodeDigestMismatch, "ciphertext does not match the digest in the header"))
		return
	case errors.Is(err, store.ErrSizeMismatch), errors.Is(err, envelope.ErrSizeMismatch):
		n.refuse(w, api.Errorf(400, api.CodeMalformed, "ciphertext length does not match the header"))
		return
	case errors.Is(err, store.ErrInvalid):
		n.refuse(w, api.Errorf(400, api.CodeMalformed, "envelope cannot be recorded: %v", err))
		return
	case errors.Is(err, store.ErrConflict):
		n.refuse(w, api.Errorf(409, api.CodeIDConflict, "envelope id %s was recorded with a different header", hdr.ID))
		return
	default:
		n.log.Error("record failed", "id", hdr.ID, "err", err)
		n.refuse(w, api.Errorf(503, api.CodeUnavailable, "could not record durably; try again later"))
		return
	}
	if existed {
		n.duplicates.Add(1)
		n.cfg.Metrics.Duplicate()
		n.log.Info("repeated delivery answered with the stored receipt", "id", hdr.ID, "recipient", hdr.Recipient)
	} else {
		n.recorded.Add(1)
		n.cfg.Metrics.Recorded(hdr.Type, time.Since(start))
		n.log.Info("envelope recorded", "id", hdr.ID, "recipient", hdr.Recipient, "sender", hdr.Sender, "type", hdr.Type, "bytes", hdr.CiphertextSize)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(stored.Receipt)
}

// Open returns the plaintext of a recorded envelope for tenant, opened with
// the tenant's sealing key, for a local caller. The caller must be
// authorised for that tenant.
func (n *Node) Open(ctx context.Context, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
	return n.OpenAs(ctx, "local", "local", tenant, id)
}

// OpenAs is Open on behalf of actor (an operator ID) connected from from:
// the audit log records who opened which record from where. An empty actor
// is the node's own indexer, which the audit log does not record as a view.
func (n *Node) OpenAs(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
	rec, err := n.cfg.Store.Get(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	hdr, err := envelope.ParseHeader(rec.Header)
	if err != nil {
		return nil, nil, fmt.Errorf("node: stored header: %w", err)
	}
	key, ok := n.key(tenant, hdr.KeyID)
	if !ok {
		return nil, nil, fmt.Errorf("node: no sealing key %q for %s", hdr.KeyID, tenant)
	}
	ct, err := n.cfg.Store.OpenCiphertext(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	if actor != "" {
		n.record(audit.Event{Actor: actor, Action: "record.open", Object: tenant + " " + id, From: from, Result: audit.ResultOK})
	}
	pt, err := envelope.Open(key, hdr, ct)
	if err != nil {
		ct.Close()
		return nil, nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{pt, ct}, hdr, nil
}

// Submission is a notification handed to the outbox.
type Submission struct {
	Sender      string // a tenant of this node; "" when the node hosts one
	Recipient   string
	Type        string
	ContentType string
	Payload     io.Reader
}

// ErrRefused wraps a hub's refusal of a submission: it will not be retried.
var ErrRefused = errors.New("node: refused by the hub")

// Submit seals and signs s, writes the envelope to the outbox durably and
// submits it to the hub. It returns the envelope ID and, when the hub
// accepted it, the verified acceptance receipt. When the hub cannot be
// reached the envelope stays in the outbox and Run submits it later; the
// error says so.
func (n *Node) Submit(ctx context.Context, s Submission) (string, *receipt.Receipt, error) {
	id, err := n.Prepare(ctx, s)
	if err != nil {
		return "", nil, err
	}
	rc, err := n.submitID(ctx, id)
	return id, rc, err
}

// Prepare seals, signs and durably enqueues s in the outbox without
// submitting it, and returns the envelope ID.
func (n *Node) Prepare(ctx context.Context, s Submission) (string, error) {
	dir := n.cfg.Directory.Get()
	if s.Sender == "" {
		node, _ := dir.Node(n.cfg.ID)
		if len(node.Tenants) != 1 {
			return "", errors.New("node: this node hosts several tenants: name the sender")
		}
		s.Sender = node.Tenants[0]
	}
	if !dir.Hosts(n.cfg.ID, s.Sender) {
		return "", fmt.Errorf("node: this node does not host sender %s", s.Sender)
	}
	if err := envelope.ValidParticipantID(s.Recipient); err != nil {
		return "", fmt.Errorf("node: recipient: %w", err)
	}
	rp, err := dir.Participant(s.Recipient)
	if err != nil {
		return "", fmt.Errorf("node: recipient: %w", err)
	}
	now := n.cfg.Now().UTC().Truncate(time.Millisecond)
	sk, err := rp.SealingKeyAt(now)
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	pub, err := rp.PublicKey(sk)
	if err != nil {
		return "", fmt.Errorf("node: sealing key of %s: %w", s.Recipient, err)
	}
	id := ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	hdr := &envelope.Header{
		ID: id, Type: s.Type, Sender: s.Sender, Recipient: s.Recipient, Created: now,
		ContentType: s.ContentType, KeyID: sk.ID, ChunkSize: n.cfg.ChunkSize,
	}
	base := filepath.Join(n.cfg.OutboxDir, id)
	ctPath, prePath := base+".ct", base+".pre"
	ct := &spill{limit: inlineCiphertext, path: ctPath}
	if err := ct.fill(func(w io.Writer) error { return envelope.Seal(pub, hdr, s.Payload, w) }); err != nil {
		return "", fmt.Errorf("node: seal: %w", err)
	}
	hb, err := hdr.MarshalBinary()
	if err != nil {
		ct.remove()
		return "", fmt.Errorf("node: %w", err)
	}
	sig, err := envelope.Sign(n.cfg.Signer, hb)
	if err != nil {
		ct.remove()
		return "", fmt.Errorf("node: sign: %w", err)
	}
	o := store.Outgoing{ID: id, Type: s.Type, Sender: s.Sender, Recipient: s.Recipient, Created: now}
	if ct.f == nil {
		// A small envelope is committed with its outbox entry, with the
		// entries of concurrent submissions: no files of its own to sync.
		var env bytes.Buffer
		if err := envelope.WritePreamble(&env, hb, sig); err != nil {
			return "", fmt.Errorf("node: %w", err)
		}
		env.Write(ct.buf.Bytes())
		o.Envelope = env.Bytes()
	} else {
		if err := fsutil.CreateSynced(prePath, 0o600, func(w io.Writer) error { return envelope.WritePreamble(w, hb, sig) }); err != nil {
			ct.remove()
			return "", fmt.Errorf("node: %w", err)
		}
		if err := fsutil.SyncDir(n.cfg.OutboxDir); err != nil {
			return "", err
		}
		o.EnvelopePath = base
	}
	if err := n.cfg.Store.Enqueue(ctx, o); err != nil {
		return "", fmt.Errorf("node: outbox: %w", err)
	}
	return id, nil
}

// inlineCiphertext is the largest ciphertext kept in the outbox entry
// itself; a larger one goes to a side file. It leaves room for the
// preamble within store.MaxInlineEnvelope.
const inlineCiphertext = 512 << 10

// spill receives a ciphertext of unknown length: in memory up to limit
// bytes, then, once it grows beyond, in the file at path (synced by fill).
type spill struct {
	limit int
	path  string
	buf   bytes.Buffer
	f     *os.File
}

func (s *spill) Write(p []byte) (int, error) {
	if s.f == nil && s.buf.Len()+len(p) <= s.limit {
		return s.buf.Write(p)
	}
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return 0, err
		}
		s.f = f
		if _, err := s.f.Write(s.buf.Bytes()); err != nil {
			return 0, err
		}
		s.buf = bytes.Buffer{}
	}
	return s.f.Write(p)
}

// fill writes with write and, if the ciphertext went to the file, syncs
// and closes it; on failure nothing is left behind.
func (s *spill) fill(write func(io.Writer) error) error {
	err := write(s)
	if s.f == nil {
		return err
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.path)
	}
	return err
}

// remove deletes the file the ciphertext went to, if any.
func (s *spill) remove() {
	if s.f != nil {
		os.Remove(s.path)
	}
}

// SubmitPending submits id from the outbox; see Submit.
func (n *Node) SubmitPending(ctx context.Context, id string) (*receipt.Receipt, error) {
	return n.submitID(ctx, id)
}

func (n *Node) submitID(ctx context.Context, id string) (*receipt.Receipt, error) {
	o, err := n.cfg.Store.GetOutgoing(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Accepted != nil {
		return receipt.Parse(o.Accepted)
	}
	pre := o.Envelope
	if pre == nil {
		if pre, err = os.ReadFile(o.EnvelopePath + ".pre"); err != nil {
			return nil, fmt.Errorf("node: outbox %s: %w", id, err)
		}
	}
	pr := bytes.NewReader(pre)
	hdr, hb, _, err := envelope.ReadPreamble(pr)
	if err != nil {
		return nil, fmt.Errorf("node: outbox %s: %w", id, err)
	}
	// Inline, the ciphertext follows the preamble in the same bytes.
	var body io.Reader = bytes.NewReader(o.Envelope)
	if o.Envelope == nil {
		ct, err := os.Open(o.EnvelopePath + ".ct")
		if err != nil {
			return nil, fmt.Errorf("node: outbox %s: %w", id, err)
		}
		defer ct.Close()
		body = io.MultiReader(bytes.NewReader(pre), ct)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.HubURL+api.PathSubmit, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(pre)-pr.Len()) + int64(hdr.CiphertextSize)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := n.hub.Do(req)
	if err != nil {
		n.cfg.Metrics.Submitted("retry")
		_ = n.cfg.Store.SetLastError(ctx, id, "unreachable")
		return nil, fmt.Errorf("node: submit %s: hub unreachable, kept in the outbox: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := api.ReadError(resp)
		if e.Retryable() {
			n.cfg.Metrics.Submitted("retry")
			_ = n.cfg.Store.SetLastError(ctx, id, string(e.Code))
			return nil, fmt.Errorf("node: submit %s: kept in the outbox: %w", id, e)
		}
		n.cfg.Metrics.Submitted("refused")
		_ = n.cfg.Store.SetLastError(ctx, id, refusedPrefix+string(e.Code))
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, id, e)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, receipt.MaxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("node: submit %s: read receipt: %w", id, err)
	}
	rc, err := receipt.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("node: submit %s: %w", id, err)
	}
	if err := rc.VerifyFor(receipt.Accepted, hdr, hb, n.cfg.HubID, n.cfg.Directory.Get().HubKey()); err != nil {
		n.cfg.Metrics.Receipt("accepted", "invalid")
		return nil, fmt.Errorf("node: submit %s: acceptance receipt: %w", id, err)
	}
	n.cfg.Metrics.Submitted("accepted")
	n.cfg.Metrics.Receipt("accepted", "verified")
	if err := n.cfg.Store.MarkAccepted(ctx, id, raw, rc.Time); err != nil {
		return nil, fmt.Errorf("node: submit %s: %w", id, err)
	}
	// The hub holds the envelope durably now (MarkAccepted dropped an
	// inline one).
	if o.EnvelopePath != "" {
		os.Remove(o.EnvelopePath + ".ct")
		os.Remove(o.EnvelopePath + ".pre")
	}
	return rc, nil
}

const refusedPrefix = "refused:"

// VerifyBoth checks an outbox entry's two receipts against the directory:
// the hub's acceptance and the recipient node's recording, both for the same
// header digest.
func VerifyBoth(dir *directory.Directory, hubID string, o store.Outgoing) (accepted, recorded error) {
	var acc *receipt.Receipt
	if o.Accepted == nil {
		accepted = errors.New("no acceptance receipt")
	} else if acc, accepted = receipt.Parse(o.Accepted); accepted == nil {
		switch {
		case acc.Kind != receipt.Accepted || acc.EnvelopeID != o.ID || acc.Recipient != o.Recipient || acc.Sender != o.Sender:
			accepted = errors.New("acceptance receipt names another envelope")
		case acc.Issuer != hubID:
			accepted = fmt.Errorf("acceptance receipt issued by %s", acc.Issuer)
		default:
			accepted = acc.Verify(dir.HubKey())
		}
	}
	return accepted, verifyRecorded(dir, o, acc)
}

// verifyRecorded checks o's recording receipt against the directory and,
// when acc is not nil, against the header digest of the acceptance acc.
func verifyRecorded(dir *directory.Directory, o store.Outgoing, acc *receipt.Receipt) error {
	if o.Recorded == nil {
		return errors.New("no recording receipt")
	}
	rec, err := receipt.Parse(o.Recorded)
	if err != nil {
		return err
	}
	return checkRecorded(dir, o, rec, acc)
}

// checkRecorded is verifyRecorded for the recording receipt rec, parsed
// from o.Recorded already.
func checkRecorded(dir *directory.Directory, o store.Outgoing, rec, acc *receipt.Receipt) error {
	host, err := dir.HostOf(o.Recipient)
	switch {
	case err != nil:
		return err
	case rec.Kind != receipt.Recorded || rec.EnvelopeID != o.ID || rec.Recipient != o.Recipient || rec.Sender != o.Sender:
		return errors.New("recording receipt names another envelope")
	case acc != nil && rec.HeaderDigest != acc.HeaderDigest:
		return errors.New("recording receipt carries another header digest than the acceptance")
	case rec.Issuer != host.ID:
		return fmt.Errorf("recording receipt issued by %s, expected %s", rec.Issuer, host.ID)
	}
	return rec.Verify(host.Key())
}

// PollReceipts fetches recording receipts from the hub once, waiting up to
// wait for the first, verifies and stores them, and returns how many were
// new.
func (n *Node) PollReceipts(ctx context.Context, wait time.Duration) (int, error) {
	const cursor = "hub-receipts"
	after, err := n.cfg.Store.Cursor(ctx, cursor)
	if err != nil {
		return 0, err
	}
	u := n.cfg.HubURL + api.PathReceipts + "?" + url.Values{
		"after": {strconv.FormatUint(after, 10)}, "limit": {"500"}, "wait": {strconv.Itoa(int(wait.Milliseconds()))},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := n.hub.Do(req)
	if err != nil {
		return 0, fmt.Errorf("node: receipts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("node: receipts: %w", api.ReadError(resp))
	}
	var body api.ReceiptsResponse
	if err := strictJSON(io.LimitReader(resp.Body, 16<<20), &body); err != nil {
		return 0, fmt.Errorf("node: receipts: %w", err)
	}
	if body.Last != nil && *body.Last < after {
		// The hub's receipt stream is shorter than what this node has
		// read: the hub was restored from a backup or replaced. Start
		// again from the beginning; receipts already taken are skipped.
		n.log.Error("ALERT: the hub's receipt stream is behind this node's cursor (a restored hub?); reading it again from the start", "cursor", after, "hub_last", *body.Last)
		n.record(audit.Event{Actor: n.cfg.HubID, Action: "receipts.rewind", From: "hub", Result: audit.ResultOK, Detail: fmt.Sprintf("cursor %d beyond the hub's last receipt %d", after, *body.Last)})
		return 0, n.cfg.Store.SetCursor(ctx, cursor, 0)
	}
	dir := n.cfg.Directory.Get()
	// The receipts of a batch are taken concurrently, so that the store
	// commits their writes together (group commit): one at a time, each
	// waited for its own commits, and a backlog of receipts drained at the
	// disk's serial rate. The cursor moves only once all are taken.
	var got atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, receiptWorkers)
	for _, it := range body.Receipts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.takeReceipt(ctx, dir, it.Receipt, it.LedgerIndex); err != nil {
				// A receipt that does not verify is not stored; the entry
				// stays without its recording receipt, visibly.
				n.log.Error("recording receipt rejected", "seq", it.Seq, "err", err)
				return
			}
			got.Add(1)
		})
	}
	wg.Wait()
	if len(body.Receipts) > 0 {
		if err := n.cfg.Store.SetCursor(ctx, cursor, body.Receipts[len(body.Receipts)-1].Seq); err != nil {
			return int(got.Load()), err
		}
	}
	return int(got.Load()), nil
}

// receiptWorkers is how many receipts of a batch are taken at once.
const receiptWorkers = 32

func (n *Node) takeReceipt(ctx context.Context, dir *directory.Directory, raw []byte, ledgerIndex int64) error {
	rc, err := receipt.Parse(raw)
	if err != nil {
		return err
	}
	o, err := n.cfg.Store.GetOutgoing(ctx, rc.EnvelopeID)
	if err != nil {
		return fmt.Errorf("receipt for unknown envelope %s: %w", rc.EnvelopeID, err)
	}
	if o.Recorded != nil {
		if o.RecordedIndex < 0 {
			return n.cfg.Store.SetRecordedIndex(ctx, rc.EnvelopeID, ledgerIndex)
		}
		return nil
	}
	o.Recorded = raw
	// The acceptance was verified before it was stored (submitID): it
	// serves here for its header digest only.
	var acc *receipt.Receipt
	if o.Accepted != nil {
		acc, _ = receipt.Parse(o.Accepted)
	}
	if err := checkRecorded(dir, o, rc, acc); err != nil {
		n.cfg.Metrics.Receipt("recorded", "invalid")
		return err
	}
	n.cfg.Metrics.Receipt("recorded", "verified")
	if err := n.cfg.Store.MarkRecorded(ctx, rc.EnvelopeID, raw, rc.Time, ledgerIndex); err != nil {
		return err
	}
	if o.Accepted == nil {
		// The hub's answer to the submission was lost (or the hub stopped
		// before answering) and the recording came back first: the
		// outbox no longer lists the envelope as pending, so ask for the
		// acceptance receipt now. Submitting again is idempotent: the hub
		// answers with the receipt it holds, or completes the acceptance.
		n.unaccepted.Store(rc.EnvelopeID, struct{}{})
		if _, err := n.submitID(ctx, rc.EnvelopeID); err != nil {
			n.log.Warn("fetching the acceptance receipt of a recorded envelope failed; the outbox loop retries", "id", rc.EnvelopeID, "err", err)
		} else {
			n.unaccepted.Delete(rc.EnvelopeID)
		}
	}
	return nil
}

// Run submits what is pending in the outbox, collects receipts and keeps
// the directory current until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	go func() {
		for ctx.Err() == nil {
			if err := n.CheckLedger(ctx); err != nil && ctx.Err() == nil {
				if errors.Is(err, ledger.ErrRollback) || errors.Is(err, ledger.ErrFork) {
					n.log.Error("ALERT: the hub's ledger does not extend the checkpoint this node holds", "err", err)
					n.record(audit.Event{Actor: n.cfg.HubID, Action: "ledger.inconsistent", From: "hub", Result: audit.ResultDenied, Detail: trim(err.Error())})
				} else {
					n.log.Warn("checking the hub's ledger failed", "err", err)
				}
			}
			if _, err := n.FetchDirectory(ctx); err != nil && ctx.Err() == nil {
				if errors.Is(err, directory.ErrRollback) || errors.Is(err, directory.ErrBadSignature) || errors.Is(err, directory.ErrInvalid) {
					n.log.Error("ALERT: the hub offered a directory this node refuses; keeping the one in force", "err", err)
				} else {
					n.log.Warn("fetching the directory failed; keeping the one in force", "err", err)
				}
			}
			pause.For(ctx, n.cfg.DirectoryRefresh)
		}
	}()
	go func() {
		for ctx.Err() == nil {
			if _, err := n.PollReceipts(ctx, 5*time.Second); err != nil && ctx.Err() == nil {
				n.log.Warn("collecting receipts failed; will retry", "err", err)
				pause.For(ctx, 2*time.Second)
			}
		}
	}()
	go func() {
		for ctx.Err() == nil {
			if err := n.SweepOutbox(ctx, orphanAge); err != nil && ctx.Err() == nil {
				n.log.Warn("sweeping the outbox directory failed; will retry", "err", err)
			}
			pause.For(ctx, time.Hour)
		}
	}()
	n.findUnaccepted(ctx)
	for ctx.Err() == nil {
		n.ResubmitPending(ctx)
		pause.For(ctx, 5*time.Second)
	}
	return nil
}

// orphanAge is how long an outbox file without an outbox entry is left
// alone: another process sharing the node's outbox (`taxlink send`) may be
// writing it, its entry not committed yet.
const orphanAge = 10 * time.Minute

// SweepOutbox removes the outbox files that nothing will read again: those
// of an envelope the hub accepted (a process stopped between the
// acceptance and their removal), and those older than minAge without an
// outbox entry (a process stopped while Prepare wrote them, before the
// entry was committed: Prepare never returned their ID).
func (n *Node) SweepOutbox(ctx context.Context, minAge time.Duration) error {
	ents, err := os.ReadDir(n.cfg.OutboxDir)
	if err != nil {
		return fmt.Errorf("node: outbox: %w", err)
	}
	for _, e := range ents {
		id, ext, ok := strings.Cut(e.Name(), ".")
		if !ok || (ext != "ct" && ext != "pre") || e.IsDir() {
			continue
		}
		o, err := n.cfg.Store.GetOutgoing(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid):
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < minAge {
				continue
			}
		case err != nil:
			return fmt.Errorf("node: outbox: %w", err)
		case o.Accepted == nil:
			continue
		}
		if err := os.Remove(filepath.Join(n.cfg.OutboxDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("node: outbox: %w", err)
		}
		n.log.Info("outbox file removed", "file", e.Name())
	}
	return nil
}

// findUnaccepted looks through the outbox once for envelopes recorded
// without an acceptance receipt (left by an earlier run), for
// ResubmitPending to complete.
func (n *Node) findUnaccepted(ctx context.Context) {
	after := ""
	for ctx.Err() == nil {
		page, err := n.cfg.Store.ListOutgoing(ctx, after, store.MaxListLimit)
		if err != nil {
			n.log.Warn("reading the outbox failed", "err", err)
			return
		}
		if len(page) == 0 {
			return
		}
		for _, o := range page {
			if o.Recorded != nil && o.Accepted == nil {
				n.unaccepted.Store(o.ID, struct{}{})
			}
		}
		after = page[len(page)-1].ID
	}
}

// ResubmitPending submits every outbox entry the hub has not yet accepted
// and has not refused, and asks again for the acceptance receipts of
// envelopes recorded without one.
func (n *Node) ResubmitPending(ctx context.Context) {
	n.unaccepted.Range(func(k, _ any) bool {
		id := k.(string)
		if _, err := n.submitID(ctx, id); err != nil {
			n.log.Warn("fetching an acceptance receipt failed; will retry", "id", id, "err", err)
			return false
		}
		n.unaccepted.Delete(id)
		return true
	})
	pending, err := n.cfg.Store.Pending(ctx, 1000)
	if err != nil {
		n.log.Warn("reading the outbox failed", "err", err)
		return
	}
	for _, o := range pending {
		if strings.HasPrefix(o.LastError, refusedPrefix) || ctx.Err() != nil {
			continue
		}
		if _, err := n.submitID(ctx, o.ID); err != nil {
			n.log.Warn("resubmission failed", "id", o.ID, "err", err)
			if !errors.Is(err, ErrRefused) {
				return // the hub is not taking envelopes now; try later
			}
		}
	}
}

// FetchDirectory fetches the signed directory from the hub and puts it in
// force if it verifies and is newer (see directory.Holder.Update). An older
// or foreign directory is refused and the one in force is kept.
func (n *Node) FetchDirectory(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.cfg.HubURL+api.PathDirectory, nil)
	if err != nil {
		return false, err
	}
	// The directory of 1,788 local governments is megabytes: fetched every
	// DirectoryRefresh by every node, it is sent only when it changed.
	req.Header.Set("If-None-Match", n.cfg.Directory.ETag())
	resp, err := n.hub.Do(req)
	if err != nil {
		return false, fmt.Errorf("node: directory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("node: directory: %w", api.ReadError(resp))
	}
	doc, err := io.ReadAll(io.LimitReader(resp.Body, directory.MaxSize+1))
	if err != nil {
		return false, fmt.Errorf("node: directory: %w", err)
	}
	changed, err := n.cfg.Directory.Update(doc)
	if err != nil {
		n.record(audit.Event{Actor: n.cfg.HubID, Action: "directory.refuse", From: "hub", Result: audit.ResultDenied, Detail: trim(err.Error())})
		return false, fmt.Errorf("node: directory from the hub: %w", err)
	}
	if changed {
		v := n.cfg.Directory.Get().Version
		n.log.Info("directory in force", "version", v)
		n.record(audit.Event{Actor: n.cfg.HubID, Action: "directory.update", Object: fmt.Sprintf("version %d", v), From: "hub", Result: audit.ResultOK})
	}
	return changed, nil
}

// CheckLedger fetches the hub ledger's latest checkpoint and, with a
// consistency proof from the last one this node saw, checks that the hub's
// history only grew: a rollback or a fork is ledger.ErrRollback or
// ledger.ErrFork, and the checkpoint held is kept.
func (n *Node) CheckLedger(ctx context.Context) error {
	if n.cfg.Witness == nil {
		return nil
	}
	note, err := n.get(ctx, api.PathCheckpoint, 4096)
	if err != nil {
		return err
	}
	verifiers, err := notekey.FromDirectory(n.cfg.Directory.Get())
	if err != nil {
		return err
	}
	cp, err := ledger.ParseCheckpoint(note, verifiers)
	if err != nil {
		return fmt.Errorf("node: hub checkpoint: %w", err)
	}
	var proof tlog.TreeProof
	if last, ok := n.cfg.Witness.Latest(); ok {
		if cp.Size < last.Size {
			return fmt.Errorf("%w: the hub shows a ledger of %d entries, this node saw %d", ledger.ErrRollback, cp.Size, last.Size)
		}
		if cp.Size > last.Size {
			b, err := n.get(ctx, api.PathConsistency+"?old="+strconv.FormatInt(last.Size, 10)+"&new="+strconv.FormatInt(cp.Size, 10), 1<<16)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &proof); err != nil {
				return fmt.Errorf("node: consistency proof: %w", err)
			}
		}
	}
	return n.cfg.Witness.Observe(cp, proof)
}

// get fetches path from the hub, at most limit bytes.
func (n *Node) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.cfg.HubURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.hub.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node: %s: %w", path, api.ReadError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("node: %s: answer larger than %d bytes", path, limit)
	}
	return b, nil
}

// Bundle fetches from the hub the proof that ledger entry index is in its
// latest checkpoint, for offline verification (taxlink audit prove).
func (n *Node) Bundle(ctx context.Context, index int64) ([]byte, error) {
	return n.get(ctx, api.PathBundle+"?index="+strconv.FormatInt(index, 10), 1<<17)
}

// record appends e to the audit log, if there is one.
func (n *Node) record(e audit.Event) {
	if n.cfg.Audit == nil {
		return
	}
	if _, err := n.cfg.Audit.Record(context.Background(), e); err != nil {
		n.log.Error("audit record failed", "action", e.Action, "err", err)
	}
}

func trim(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}

func strictJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
