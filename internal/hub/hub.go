// Package hub is the 機構's hub: it accepts envelopes from nodes over mTLS,
// stores each durably before it answers with a signed acceptance receipt,
// relays it to the node hosting the recipient through that recipient's own
// queue, and hands the node's signed recording receipt back to the sender.
//
// Acceptance checks run in a fixed order, each failure answered with its own
// code (see package api): the envelope parses; the peer certificate's
// participant hosts the header's sender; the recipient and the type exist;
// the policy allows the pair; the sizes, content type and key id fit; the
// signature verifies; the ciphertext matches its digest. A repeated envelope
// ID returns the original receipt. Nothing is stored for a refused envelope.
package hub

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"taxlink/internal/acceptance"
	"taxlink/internal/api"
	"taxlink/internal/audit"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/ledger"
	"taxlink/internal/lgdata"
	"taxlink/internal/metrics"
	"taxlink/internal/pause"
	"taxlink/internal/pki"
	"taxlink/internal/queue"
	"taxlink/internal/receipt"
	"taxlink/internal/recordings"
)

// maxPreamble bounds the bytes before the ciphertext: magic, header and
// signature with their lengths.
const maxPreamble = 4 + 2 + envelope.MaxHeaderSize + 2 + envelope.MaxSignatureSize

// DefaultMaxEnvelope bounds a submitted envelope's ciphertext unless the
// configuration says otherwise.
const DefaultMaxEnvelope = 256 << 20

// Ledger is what the hub needs of its ledger: a *ledger.Log for a single
// hub, a *clusterledger.Log for the replicas of a cluster.
type Ledger interface {
	// Append returns the index of the durable entry data.
	Append(ctx context.Context, data []byte) (int64, error)
	// Checkpoint signs (or returns) the checkpoint of every entry so far.
	Checkpoint(ctx context.Context) (ledger.Checkpoint, error)
	// Bundle proves that entry index is in the latest checkpoint.
	Bundle(index int64) (ledger.Bundle, error)
	// ConsistencyProof proves that the newSize tree extends the oldSize one.
	ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error)
}

// Config holds a hub's dependencies.
type Config struct {
	ID          string // hub:NAME, as in its certificate
	Environment string
	Signer      crypto.Signer // signs acceptance receipts
	Directory   *directory.Holder
	Queue       *queue.Queue
	// Acceptances keeps the acceptance receipt of every envelope accepted,
	// for the sender that submits it again.
	Acceptances acceptance.Store
	// Recordings keeps the recording receipts until their senders' nodes
	// read them.
	Recordings recordings.Store
	// Ledger is the hub's tamper-evident log: every acceptance, recording
	// receipt and directory change is an entry.
	Ledger Ledger
	// Audit records security events (nil: none).
	Audit *audit.Log
	// Metrics counts for monitoring (nil: none).
	Metrics *metrics.Hub
	// TLSCert and Roots are used to reach nodes; each node's identity is
	// checked against the directory.
	TLSCert tls.Certificate
	Roots   *x509.CertPool
	// Mapper maps peer certificates to identities (nil: the taxlink URI
	// SAN); it must be the one given to the TLS configuration.
	Mapper pki.Mapper
	// TLSOptions add checks to the hub's client connections to nodes
	// (revocation, identity mapping).
	TLSOptions  []pki.Option
	MaxEnvelope int64
	// Parallel is how many deliveries run at once for one recipient.
	Parallel int
	// DeliveryIdle, when positive, stops a recipient's delivery loop (and
	// removes its queue consumer) once nothing was queued for it for that
	// long; an acceptance for it starts the loop again, and at start only
	// recipients with something queued get one. The hub's memory then
	// follows the recipients with something to deliver, not the 1,788 of
	// the directory. Zero keeps a loop for every recipient all the time;
	// with a queue shared by hub replicas it is always zero: an acceptance
	// by another replica does not start this one's loop.
	DeliveryIdle time.Duration
	// MaxInFlight bounds the submissions being received at once; beyond
	// it senders get 503 busy at once instead of waiting (default 256).
	MaxInFlight int
	// MinFreeBytes is the disk space below which the hub stops accepting
	// with 503 disk-low, so that what it accepted earlier never meets a
	// full disk (default 512 MiB).
	MinFreeBytes int64
	// RetryBase and RetryMax bound the delivery backoff.
	RetryBase, RetryMax time.Duration
	Logger              *slog.Logger
	Now                 func() time.Time
}

// Hub is a running hub.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]*http.Client
	runCtx  context.Context
	running loopRegistry
	loops   sync.WaitGroup
	// ids serializes the acceptances of one envelope ID.
	ids idLocks

	holidays *lgdata.Holidays
	clock    atomic.Pointer[func() time.Time]
	inFlight atomic.Int64
	maxIn    atomic.Int64
	minFree  atomic.Int64

	// Counters for operators and tests.
	accepted, duplicates, refused, delivered, retries atomic.Int64
	dirNotModified                                    atomic.Int64
	receiptWaits                                      atomic.Int64
	// failures counts failed delivery attempts per recipient
	// (string → *atomic.Int64).
	failures sync.Map
	// wakers hold, per recipient, the wake-up of deliveries sleeping in
	// their backoff (string → *waker).
	wakers sync.Map
}

// New checks cfg and returns a hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Signer == nil || cfg.Directory == nil || cfg.Queue == nil || cfg.Acceptances == nil || cfg.Recordings == nil || cfg.Ledger == nil {
		return nil, errors.New("hub: signer, directory, queue, acceptances, recordings and ledger are required")
	}
	if cfg.MaxEnvelope <= 0 {
		cfg.MaxEnvelope = DefaultMaxEnvelope
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.MinFreeBytes <= 0 {
		cfg.MinFreeBytes = 512 << 20
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Queue.Shared() {
		// Another replica's acceptance does not start this hub's loops.
		cfg.DeliveryIdle = 0
	}
	hol, err := lgdata.LoadHolidays()
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, clients: map[string]*http.Client{}, holidays: hol}
	h.clock.Store(&cfg.Now)
	h.maxIn.Store(int64(cfg.MaxInFlight))
	h.minFree.Store(cfg.MinFreeBytes)
	return h, nil
}

// now reads the hub's clock.
func (h *Hub) now() time.Time { return (*h.clock.Load())() }

// SetClock replaces the hub's clock, for drills and tests of the
// acceptance window and of certification periods.
func (h *Hub) SetClock(now func() time.Time) { h.clock.Store(&now) }

// SetLimits changes MaxInFlight and MinFreeBytes while the hub runs (an
// operator raising a limit, a drill lowering one).
func (h *Hub) SetLimits(maxInFlight int, minFreeBytes int64) {
	h.maxIn.Store(int64(maxInFlight))
	h.minFree.Store(minFreeBytes)
}

// Stats is a snapshot of the hub's counters since start.
type Stats struct {
	Accepted, Duplicates, Refused, Delivered, Retries int64
	// DirectoryNotModified counts the directory fetches answered 304: the
	// node held the directory in force.
	DirectoryNotModified int64
	// DeliveryLoops is how many recipients have a delivery loop now.
	DeliveryLoops int
	// ReceiptWaits is how many nodes' requests wait for recording
	// receipts now.
	ReceiptWaits int64
}

// DeliveryFailures returns the failed delivery attempts per recipient
// since the hub started (recipients without failures are absent).
func (h *Hub) DeliveryFailures() map[string]int64 {
	out := map[string]int64{}
	h.failures.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// InFlight returns how many submissions the hub is receiving now (the
// count that MaxInFlight bounds).
func (h *Hub) InFlight() int { return int(h.inFlight.Load()) }

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{h.accepted.Load(), h.duplicates.Load(), h.refused.Load(), h.delivered.Load(), h.retries.Load(), h.dirNotModified.Load(), h.running.len(), h.receiptWaits.Load()}
}

// Handler returns the hub's service API. It must be served over TLS with
// client certificates verified (pki.ServerConfig).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathSubmit, h.submit)
	mux.HandleFunc("GET "+api.PathReceipts, h.receipts)
	mux.HandleFunc("GET "+api.PathDirectory, h.serveDirectory)
	mux.HandleFunc("GET "+api.PathCheckpoint, h.serveCheckpoint)
	mux.HandleFunc("GET "+api.PathBundle, h.serveBundle)
	mux.HandleFunc("GET "+api.PathConsistency, h.serveConsistency)
	return mux
}

func (h *Hub) refuse(w http.ResponseWriter, e *api.Error) {
	h.refused.Add(1)
	h.cfg.Metrics.Refused(string(e.Code))
	h.log.Info("envelope refused", "code", e.Code, "status", e.Status)
	api.WriteError(w, e)
}

// parseError maps a preamble error to the refusal sent to the peer.
func parseError(err error) *api.Error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return api.Errorf(413, api.CodeTooLarge, "envelope exceeds %d bytes", mbe.Limit)
	case errors.Is(err, envelope.ErrBadParticipantID):
		return api.Errorf(400, api.CodeBadParticipantID, "%v", err)
	case errors.Is(err, envelope.ErrUnsupportedSuite):
		return api.Errorf(400, api.CodeUnsupportedSuite, "%v", err)
	default:
		return api.Errorf(400, api.CodeMalformed, "%v", err)
	}
}

// check runs the acceptance checks that need only the header. It returns
// the sender's node.
func check(dir *directory.Directory, peer string, h *envelope.Header, hb, sig []byte, maxEnvelope int64, now time.Time, hol *lgdata.Holidays) *api.Error {
	if !dir.Hosts(peer, h.Sender) {
		return api.Errorf(403, api.CodeSenderMismatch, "certificate of %s does not speak for sender %s", peer, h.Sender)
	}
	sender, err := dir.Participant(h.Sender)
	if err != nil {
		return api.Errorf(403, api.CodeSenderMismatch, "sender %s is not a participant", h.Sender)
	}
	recipient, err := dir.Participant(h.Recipient)
	if err != nil {
		return api.Errorf(404, api.CodeUnknownRecipient, "recipient %s is not in the directory", h.Recipient)
	}
	if _, err := dir.HostOf(h.Recipient); err != nil {
		return api.Errorf(404, api.CodeUnknownRecipient, "recipient %s is not hosted by any node", h.Recipient)
	}
	if sender.Suspended {
		return api.Errorf(403, api.CodeSuspended, "sender %s is suspended", h.Sender)
	}
	if recipient.Suspended {
		return api.Errorf(403, api.CodeSuspended, "recipient %s is suspended", h.Recipient)
	}
	typ, err := dir.Type(h.Type)
	if err != nil {
		return api.Errorf(400, api.CodeUnknownType, "notification type %q is not defined", h.Type)
	}
	if !dir.Allowed(sender, recipient, h.Type) {
		return api.Errorf(403, api.CodePolicyDenied, "%s (%s) may not send %s to %s (%s)", h.Sender, sender.Kind, h.Type, h.Recipient, recipient.Kind)
	}
	if hold := dir.HeldBy(h.Sender, h.Recipient, h.Type); hold != nil {
		e := api.Errorf(503, api.CodeHeld, "held by the incident measure %s; keep the notification and retry later", hold.ID)
		e.RetryAfter = 5 * time.Minute
		return e
	}
	if open, next := dir.Window.Accepting(now, hol); !open {
		e := api.Errorf(503, api.CodeWindowClosed, "the hub accepts %s; it opens again at %s", dir.Window.String(), next.In(lgdata.JST()).Format("2006-01-02 15:04 JST"))
		if !next.IsZero() {
			e.RetryAfter = next.Sub(now)
		}
		return e
	}
	if h.PayloadSize > uint64(typ.MaxSize) {
		return api.Errorf(413, api.CodeTooLarge, "payload of %d bytes exceeds the %d allowed for %s", h.PayloadSize, typ.MaxSize, h.Type)
	}
	if h.CiphertextSize > uint64(maxEnvelope) {
		return api.Errorf(413, api.CodeTooLarge, "ciphertext of %d bytes exceeds the hub's limit of %d", h.CiphertextSize, maxEnvelope)
	}
	if !slices.Contains(typ.ContentTypes, h.ContentType) {
		return api.Errorf(400, api.CodeContentType, "content type %q is not allowed for %s (allowed: %v)", h.ContentType, h.Type, typ.ContentTypes)
	}
	if !slices.ContainsFunc(recipient.SealingKeys, func(k directory.SealingKey) bool { return k.ID == h.KeyID }) {
		return api.Errorf(400, api.CodeUnknownKey, "recipient %s has no sealing key %q", h.Recipient, h.KeyID)
	}
	node, _ := dir.HostOf(h.Sender)
	if err := envelope.Verify(node.Key(), hb, sig); err != nil {
		return api.Errorf(400, api.CodeBadSignature, "signature does not verify with the key of %s", node.ID)
	}
	return nil
}

func (h *Hub) submit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	start := time.Now()
	// Backpressure: a clear retry-later answer, never a timeout, and
	// nothing accepted earlier put at risk by a full disk.
	if n := h.inFlight.Add(1); n > h.maxIn.Load() {
		h.inFlight.Add(-1)
		h.refuse(w, &api.Error{Status: 503, Code: api.CodeBusy, Message: "the hub is at capacity; retry shortly", RetryAfter: time.Second})
		return
	}
	defer h.inFlight.Add(-1)
	if free := metrics.DiskFree(h.cfg.Queue.Dir()); free >= 0 && free < float64(h.minFree.Load()) {
		h.log.Error("ALERT: disk space below the minimum; acceptance paused", "free_bytes", int64(free))
		h.refuse(w, &api.Error{Status: 503, Code: api.CodeDiskLow, Message: "the hub is short of disk space; retry later", RetryAfter: time.Minute})
		return
	}
	peer, err := pki.PeerIdentityWith(r.TLS, h.cfg.Mapper)
	if err != nil {
		h.refuse(w, api.Errorf(403, api.CodeForbidden, "no verified client certificate"))
		return
	}
	dir := h.cfg.Directory.Get()
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxEnvelope+maxPreamble)
	body := api.IdleTimeoutBody(w, r, api.BodyIdleTimeout)
	hdr, hb, sig, err := envelope.ReadPreamble(body)
	if err != nil {
		h.refuse(w, parseError(err))
		return
	}
	if e := check(dir, peer.ID, hdr, hb, sig, h.cfg.MaxEnvelope, h.now(), h.holidays); e != nil {
		h.refuse(w, e)
		return
	}
	digest := receipt.HeaderDigest(hb)
	unlock, err := h.ids.lock(ctx, hdr.ID)
	if err != nil {
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	defer unlock()
	step := time.Now()
	prev, err := h.cfg.Acceptances.Get(ctx, hdr.ID)
	h.cfg.Metrics.AcceptStep(metrics.StepLookup, time.Since(step))
	if err == nil {
		h.answerEarlier(w, hdr.ID, prev, digest)
		return
	} else if !errors.Is(err, acceptance.ErrNotFound) {
		h.log.Error("acceptance lookup failed", "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}

	var pre bytes.Buffer
	if err := envelope.WritePreamble(&pre, hb, sig); err != nil {
		h.refuse(w, api.Errorf(400, api.CodeMalformed, "%v", err))
		return
	}
	step = time.Now()
	seq, _, err := h.cfg.Queue.Enqueue(ctx, hdr.Recipient, hdr.ID, pre.Bytes(), envelope.VerifyingReader(hdr, body), int64(hdr.CiphertextSize))
	h.cfg.Metrics.AcceptStep(metrics.StepQueue, time.Since(step))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, envelope.ErrDigestMismatch):
			h.refuse(w, api.Errorf(400, api.CodeDigestMismatch, "ciphertext does not match the digest in the header"))
		case errors.Is(err, envelope.ErrSizeMismatch), errors.Is(err, io.ErrUnexpectedEOF):
			h.refuse(w, api.Errorf(400, api.CodeMalformed, "ciphertext length does not match the header (%d bytes expected)", hdr.CiphertextSize))
		case errors.As(err, &mbe):
			h.refuse(w, api.Errorf(413, api.CodeTooLarge, "envelope exceeds %d bytes", mbe.Limit))
		default:
			h.log.Error("enqueue failed", "id", hdr.ID, "err", err)
			// The entry may have landed all the same (its answer lost):
			// a loop must be there to take it.
			h.activate(hdr.Recipient)
			h.refuse(w, api.Errorf(503, api.CodeUnavailable, "could not store the envelope durably; try again later"))
		}
		return
	}
	// Queued: it is delivered whatever happens to the rest of this
	// acceptance.
	h.activate(hdr.Recipient)
	rc := &receipt.Receipt{
		Kind: receipt.Accepted, EnvelopeID: hdr.ID, Type: hdr.Type, Sender: hdr.Sender, Recipient: hdr.Recipient,
		HeaderDigest: digest, Issuer: h.cfg.ID, Time: h.now().UTC().Truncate(time.Millisecond),
	}
	// The acceptance is an entry of the ledger before it is answered; the
	// receipt carries the entry's index.
	entry, err := rc.LedgerEntry()
	if err != nil {
		h.log.Error("ledger entry failed", "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	step = time.Now()
	index, err := h.cfg.Ledger.Append(ctx, entry)
	took := time.Since(step)
	h.cfg.Metrics.LedgerAppend(took)
	h.cfg.Metrics.AcceptStep(metrics.StepLedger, took)
	if err != nil {
		h.log.Error("ledger append failed", "id", hdr.ID, "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	rc.Seq = uint64(index)
	step = time.Now()
	if err := rc.Sign(h.cfg.Signer); err != nil {
		h.log.Error("sign receipt failed", "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	out, err := rc.MarshalJSON()
	var stored []byte
	if err == nil {
		stored, err = h.cfg.Acceptances.Put(ctx, hdr.ID, out)
	}
	h.cfg.Metrics.AcceptStep(metrics.StepReceipt, time.Since(step))
	if err == nil && !bytes.Equal(stored, out) {
		// A submission of the same ID to another replica stored its
		// receipt first (this hub's own are serialized by h.ids): this
		// one is its repeat, or a conflict.
		h.answerEarlier(w, hdr.ID, stored, digest)
		return
	}
	if err != nil {
		// The envelope is queued; a retry by the sender finds it by ID and
		// gets a receipt then.
		h.log.Error("store receipt failed", "id", hdr.ID, "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	h.accepted.Add(1)
	h.cfg.Metrics.Accepted(hdr.Type, time.Since(start))
	h.log.Info("envelope accepted", "id", hdr.ID, "queue_seq", seq, "ledger_index", index, "sender", hdr.Sender, "recipient", hdr.Recipient, "type", hdr.Type, "bytes", hdr.CiphertextSize)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// answerEarlier answers a submission of envelope id whose acceptance
// receipt prev was stored earlier: with prev when the headers are the
// same (a repeat), else with a conflict.
func (h *Hub) answerEarlier(w http.ResponseWriter, id string, prev []byte, digest [32]byte) {
	rc, err := receipt.Parse(prev)
	if err != nil {
		h.log.Error("stored acceptance receipt unreadable", "id", id, "err", err)
		h.refuse(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	if rc.HeaderDigest != digest {
		h.refuse(w, api.Errorf(409, api.CodeIDConflict, "envelope id %s was accepted with a different header", id))
		return
	}
	h.duplicates.Add(1)
	w.Header().Set("Tl-Duplicate", "1")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(prev)
}

func (h *Hub) receipts(w http.ResponseWriter, r *http.Request) {
	peer, err := pki.PeerIdentityWith(r.TLS, h.cfg.Mapper)
	if err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "no verified client certificate"))
		return
	}
	if _, err := h.cfg.Directory.Get().Node(peer.ID); err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "%s is not a node", peer.ID))
		return
	}
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil {
		api.WriteError(w, api.Errorf(400, api.CodeBadRequest, "after: expected a sequence number"))
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if q.Get("limit") == "" {
		limit, err = 256, nil
	}
	if err != nil || limit < 1 || limit > recordings.MaxLimit {
		api.WriteError(w, api.Errorf(400, api.CodeBadRequest, "limit: expected 1 to %d", recordings.MaxLimit))
		return
	}
	waitMS, err := strconv.Atoi(q.Get("wait"))
	if q.Get("wait") == "" {
		waitMS, err = 0, nil
	}
	if err != nil || waitMS < 0 || waitMS > 30000 {
		api.WriteError(w, api.Errorf(400, api.CodeBadRequest, "wait: expected 0 to 30000 milliseconds"))
		return
	}
	wait := max(time.Duration(waitMS)*time.Millisecond, 50*time.Millisecond)
	// A hub that stops ends the wait and answers with what there is: the
	// server's graceful stop waited for every node's wait, up to its 5 s.
	wctx, endWait := context.WithCancel(r.Context())
	defer endWait()
	h.mu.Lock()
	run := h.runCtx
	h.mu.Unlock()
	if run != nil {
		defer context.AfterFunc(run, endWait)()
	}
	h.receiptWaits.Add(1)
	items, err := h.cfg.Recordings.After(wctx, peer.ID, after, limit, wait)
	h.receiptWaits.Add(-1)
	switch {
	case err != nil && r.Context().Err() != nil:
		return // the node stopped waiting (it stops, or its request timed out): nothing failed here
	case err != nil && wctx.Err() != nil:
		items, err = nil, nil // the hub stops: nothing more for this wait
	}
	if err != nil {
		h.log.Error("read receipts failed", "err", err)
		api.WriteError(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	resp := api.ReceiptsResponse{Receipts: []api.ReceiptItem{}}
	if last, err := h.cfg.Recordings.Last(r.Context()); err == nil {
		resp.Last = &last
	}
	for _, it := range items {
		resp.Receipts = append(resp.Receipts, api.ReceiptItem{Seq: it.Seq, Receipt: it.Receipt, LedgerIndex: it.LedgerIndex})
	}
	api.WriteJSON(w, resp)
}

// Run delivers queued envelopes to every recipient in the directory until
// ctx ends. Each recipient has its own loop: all the time, recipients
// added by a new directory getting theirs when it takes effect
// (UpdateDirectory); or, with Config.DeliveryIdle, while it has something
// queued.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.runCtx = ctx
	h.mu.Unlock()
	h.startLoops(ctx)
	h.loops.Go(func() {
		for ctx.Err() == nil {
			n, err := h.cfg.Queue.SweepBlobs(ctx, blobOrphanAge)
			switch {
			case err != nil && ctx.Err() == nil:
				h.log.Warn("sweeping blobs no queue entry names failed; will retry", "err", err)
			case n > 0:
				h.log.Info("blobs no queue entry names removed", "count", n)
			}
			pause.For(ctx, time.Hour)
		}
	})
	// A checkpoint a second at most: nodes and auditors hold them.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
			if _, err := h.cfg.Ledger.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				h.log.Error("ledger checkpoint failed", "err", err)
			}
		}
	}
	h.loops.Wait()
	return nil
}

// blobOrphanAge is how long a blob file no queue entry names is left
// alone: an upload may still be writing it, or its entry not yet published.
const blobOrphanAge = 10 * time.Minute

// record appends e to the audit log, if there is one; a failure is logged
// (it never stops the service it records).
func (h *Hub) record(e audit.Event) {
	if h.cfg.Audit == nil {
		return
	}
	if _, err := h.cfg.Audit.Record(context.Background(), e); err != nil {
		h.log.Error("audit record failed", "action", e.Action, "err", err)
	}
}

// nodePeer returns the calling node's ID, or writes the refusal.
func (h *Hub) nodePeer(w http.ResponseWriter, r *http.Request) (string, bool) {
	peer, err := pki.PeerIdentityWith(r.TLS, h.cfg.Mapper)
	if err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "no verified client certificate"))
		return "", false
	}
	if _, err := h.cfg.Directory.Get().Node(peer.ID); err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "%s is not a node", peer.ID))
		return "", false
	}
	return peer.ID, true
}

func (h *Hub) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.nodePeer(w, r); !ok {
		return
	}
	cp, err := h.cfg.Ledger.Checkpoint(r.Context())
	if err != nil {
		api.WriteError(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(cp.Note)
}

// serveBundle proves that a ledger entry is in the latest checkpoint. A
// node may ask only for entries about its own tenants.
func (h *Hub) serveBundle(w http.ResponseWriter, r *http.Request) {
	peer, ok := h.nodePeer(w, r)
	if !ok {
		return
	}
	index, err := strconv.ParseInt(r.URL.Query().Get("index"), 10, 64)
	if err != nil || index < 0 {
		api.WriteError(w, api.Errorf(400, api.CodeBadRequest, "index: expected a ledger index"))
		return
	}
	if _, err := h.cfg.Ledger.Checkpoint(r.Context()); err != nil {
		api.WriteError(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	b, err := h.cfg.Ledger.Bundle(index)
	if err != nil {
		api.WriteError(w, api.Errorf(404, api.CodeBadRequest, "no ledger entry %d in the latest checkpoint", index))
		return
	}
	d := h.cfg.Directory.Get()
	rc, err := receipt.ParseLedgerEntry(b.Entry)
	if err != nil || !(d.Hosts(peer, rc.Sender) || d.Hosts(peer, rc.Recipient)) {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "ledger entry %d is not about a tenant of %s", index, peer))
		return
	}
	out, err := b.Marshal()
	if err != nil {
		api.WriteError(w, api.Errorf(503, api.CodeUnavailable, "try again later"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func (h *Hub) serveConsistency(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.nodePeer(w, r); !ok {
		return
	}
	q := r.URL.Query()
	oldSize, err1 := strconv.ParseInt(q.Get("old"), 10, 64)
	newSize, err2 := strconv.ParseInt(q.Get("new"), 10, 64)
	if err1 != nil || err2 != nil || oldSize < 0 || newSize < oldSize {
		api.WriteError(w, api.Errorf(400, api.CodeBadRequest, "old and new: expected tree sizes, old <= new"))
		return
	}
	proof, err := h.cfg.Ledger.ConsistencyProof(oldSize, newSize)
	if err != nil {
		api.WriteError(w, api.Errorf(404, api.CodeBadRequest, "no consistency proof from %d to %d", oldSize, newSize))
		return
	}
	api.WriteJSON(w, proof)
}

// UpdateDirectory puts a newer signed directory in force (see
// directory.Holder.Update) and starts delivery to recipients it adds.
func (h *Hub) UpdateDirectory(doc []byte) (bool, error) {
	changed, err := h.cfg.Directory.Update(doc)
	if err != nil {
		h.log.Error("directory update refused", "err", err)
		return false, err
	}
	if changed {
		d := h.cfg.Directory.Get()
		h.log.Info("directory in force", "version", d.Version)
		sum := sha256.Sum256(doc)
		entry := fmt.Appendf([]byte("TLD1"), "directory %s version %d sha256 %x", d.Environment, d.Version, sum)
		if _, err := h.cfg.Ledger.Append(context.Background(), entry); err != nil {
			h.log.Error("ledger append of the directory change failed", "err", err)
		}
		h.record(audit.Event{Actor: "system", Action: "directory.update", Object: fmt.Sprintf("version %d", d.Version), From: "local", Result: audit.ResultOK})
		if h.cfg.DeliveryIdle <= 0 {
			h.startLoops(context.Background())
		}
	}
	return changed, nil
}

func (h *Hub) serveDirectory(w http.ResponseWriter, r *http.Request) {
	peer, err := pki.PeerIdentityWith(r.TLS, h.cfg.Mapper)
	if err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "no verified client certificate"))
		return
	}
	if _, err := h.cfg.Directory.Get().Node(peer.ID); err != nil {
		api.WriteError(w, api.Errorf(403, api.CodeForbidden, "%s is not a node", peer.ID))
		return
	}
	// A node that holds the directory in force gets 304 and no body.
	etag := h.cfg.Directory.ETag()
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		h.dirNotModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.cfg.Directory.Signed())
}

// backoff returns the wait before attempt n (from 1): exponential with
// full jitter, capped.
func (h *Hub) backoff(n int) time.Duration {
	d := h.cfg.RetryBase << min(n-1, 20)
	if d <= 0 || d > h.cfg.RetryMax {
		d = h.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

func (h *Hub) client(node *directory.Node) (*http.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.clients[node.ID]; ok {
		return c, nil
	}
	tc, err := pki.ClientConfigWith(h.cfg.TLSCert, h.cfg.Roots, pki.Identity{Env: h.cfg.Environment, ID: node.ID}, h.cfg.TLSOptions...)
	if err != nil {
		return nil, err
	}
	c := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     tc,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			HTTP2:               api.HTTP2Client(),
		},
		Timeout: 10 * time.Minute,
	}
	h.clients[node.ID] = c
	return c, nil
}

// deliver hands one queued envelope to the node hosting its recipient and
// stores the node's recording receipt for the sender. It retries until it
// succeeds or ctx ends.
func (h *Hub) deliver(ctx context.Context, rcpt string, it *queue.Item) error {
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		err := h.deliverOnce(ctx, it)
		if err == nil {
			h.delivered.Add(1)
			h.waker(rcpt).wake() // the others waiting for this recipient go now
			h.cfg.Metrics.Delivered(time.Since(t0))
			h.log.Info("envelope delivered", "id", it.ID, "attempts", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.retries.Add(1)
		n, _ := h.failures.LoadOrStore(rcpt, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		d := h.backoff(attempt)
		level, reason := slog.LevelWarn, "unreachable"
		if e, ok := api.AsError(err); ok && !e.Retryable() {
			// A refusal will not go away by itself: keep the envelope and
			// make the problem loud rather than drop it.
			level, reason = slog.LevelError, "refused"
		} else if strings.HasPrefix(err.Error(), "held:") {
			reason = "held"
		}
		h.cfg.Metrics.Retry(reason)
		h.log.Log(ctx, level, "delivery failed; will retry", "id", it.ID, "attempt", attempt, "retry_in", d.Round(time.Millisecond).String(), "err", err)
		w := h.waker(rcpt)
		if reason == "unreachable" {
			w.probe(ctx, func(ctx context.Context) bool { return h.reachable(ctx, rcpt) })
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-w.wait():
		}
		t.Stop()
	}
}

// probeEvery is how often an unreachable recipient's node is probed while
// deliveries to it sleep in their backoff.
const probeEvery = time.Second

// waker wakes the deliveries of one recipient that sleep in their backoff,
// as soon as its node answers again: after an outage the backlog drains at
// once instead of when the longest backoff (up to RetryMax) runs out.
type waker struct {
	mu      sync.Mutex
	ch      chan struct{}
	probing bool
}

func (h *Hub) waker(rcpt string) *waker {
	w, _ := h.wakers.LoadOrStore(rcpt, &waker{})
	return w.(*waker)
}

// wait returns a channel closed at the next wake.
func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// wake releases every delivery waiting on w.
func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// probe starts, unless one runs, a prober that calls up every probeEvery
// until it answers true, then wakes the sleepers.
func (w *waker) probe(ctx context.Context, up func(context.Context) bool) {
	w.mu.Lock()
	if w.probing {
		w.mu.Unlock()
		return
	}
	w.probing = true
	w.mu.Unlock()
	go func() {
		defer func() {
			w.mu.Lock()
			w.probing = false
			w.mu.Unlock()
		}()
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if up(ctx) {
				w.wake()
				return
			}
		}
	}()
}

// reachable reports whether the node hosting rcpt answers HTTP over mTLS
// at all (any status: the probe asks nothing of it).
func (h *Hub) reachable(ctx context.Context, rcpt string) bool {
	node, err := h.cfg.Directory.Get().HostOf(rcpt)
	if err != nil {
		return false
	}
	c, err := h.client(node)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node.Endpoint+api.PathDeliver, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func (h *Hub) deliverOnce(ctx context.Context, it *queue.Item) error {
	body, err := it.Body(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	// Parse the preamble from the stored bytes to route; the node parses
	// and verifies everything again.
	var head bytes.Buffer
	hdr, hb, _, err := envelope.ReadPreamble(io.TeeReader(body, &head))
	if err != nil {
		return fmt.Errorf("stored envelope unreadable: %w", err)
	}
	dir := h.cfg.Directory.Get()
	node, err := dir.HostOf(hdr.Recipient)
	if err != nil {
		return err
	}
	senderNode, err := dir.HostOf(hdr.Sender)
	if err != nil {
		return err
	}
	// Held, not dropped: the queue keeps it until the recipient is
	// reinstated or its outsourcer's certification is renewed.
	if p, err := dir.Participant(hdr.Recipient); err == nil && p.Suspended {
		return fmt.Errorf("held: recipient %s is suspended", hdr.Recipient)
	}
	if err := dir.Certified(node, h.now()); err != nil {
		return fmt.Errorf("held: %w", err)
	}
	if hold := dir.HeldBy(hdr.Sender, hdr.Recipient, hdr.Type); hold != nil {
		return fmt.Errorf("held: incident measure %s (%s)", hold.ID, hold.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, node.Endpoint+api.PathDeliver, io.MultiReader(&head, body))
	if err != nil {
		return err
	}
	req.ContentLength = int64(head.Len()) + int64(hdr.CiphertextSize)
	req.Header.Set("Content-Type", "application/octet-stream")
	client, err := h.client(node)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", node.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("deliver to %s: %w", node.ID, api.ReadError(resp))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, receipt.MaxJSONSize+1))
	if err != nil {
		return fmt.Errorf("deliver to %s: read receipt: %w", node.ID, err)
	}
	rc, err := receipt.Parse(raw)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", node.ID, err)
	}
	if err := rc.VerifyFor(receipt.Recorded, hdr, hb, node.ID, node.Key()); err != nil {
		return fmt.Errorf("deliver to %s: %w", node.ID, err)
	}
	entry, err := rc.LedgerEntry()
	if err != nil {
		return err
	}
	index, err := h.cfg.Ledger.Append(ctx, entry)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return h.cfg.Recordings.Put(ctx, senderNode.ID, hdr.ID, raw, index)
}
