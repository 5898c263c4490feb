package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/audit"
	"taxlink/internal/envelope"
	"taxlink/internal/store"
)

// Paths of the export API.
const (
	// PathRecords lists the next records (GET ?limit=N); PathRecords+"/"+id
	// downloads one record's plaintext (GET).
	PathRecords = "/v1/export/records"
	// PathAck acknowledges the records up to a Seq (POST {"seq": N}).
	PathAck = "/v1/export/ack"
)

// Page sizes of GET [PathRecords].
const (
	// DefaultLimit is the page size when the request names none.
	DefaultLimit = 100
	// MaxLimit is the largest page size a request may ask for.
	MaxLimit = 500
)

// Config configures a [Server]. Clients, Store, Open, Cursors and Audit
// are required.
type Config struct {
	// Clients are the allowed tax systems.
	Clients []Client
	// Store is the node's inbox the records are listed from.
	Store store.Inbox
	// Open opens a record's plaintext; it is called with the actor
	// "export:"+name and the request's remote address.
	Open Opener
	// Cursors keeps each client's acknowledged position.
	Cursors *Cursors
	// Audit records every request, allowed or refused.
	Audit *audit.Log
	// Logger receives operational messages (never payload or personal
	// data); nil discards them.
	Logger *slog.Logger
	// Now is the clock the client certificates' validity is checked
	// against; nil means time.Now.
	Now func() time.Time
}

// Server is the export API for tax systems. It expects to be served over
// TLS with a client certificate: it reads the peer certificate from
// r.TLS.PeerCertificates[0] (which the listener has verified against the
// configured CA, or merely requested with tls.RequireAnyClientCert: the
// fingerprint pins the certificate either way, and the TLS handshake
// proves possession of its key). A request is served only for the client
// whose CertSHA256 is that certificate's fingerprint, within its validity
// period, from an address (r.RemoteAddr) in that client's Networks, and
// only ever for that client's tenant.
//
// Endpoints:
//
//   - GET [PathRecords]?limit=N: a [ListResponse] with the next up to N
//     (1..[MaxLimit], default [DefaultLimit]) records of the tenant after
//     the client's cursor. Listing does not move the cursor.
//   - GET [PathRecords]/{id}: the record's plaintext, with the Content-Type
//     of its header and its Content-Length; opened through the Opener as
//     "export:"+name. An unknown ID, a malformed one and one of another
//     tenant all get the same 404 not-found. Should the plaintext stream
//     fail, the response is cut short (its last byte is held back until
//     the stream has been confirmed), never completed.
//   - POST [PathAck] {"seq": N} ([AckRequest]): moves the cursor to N and
//     answers an [AckResponse]. N equal to the cursor is a no-op; N below
//     it is 409 cursor-backwards; N above it must be the Seq of a record of
//     the tenant, else 400 bad-seq (beyond the last record, or a Seq of no
//     record of the tenant: only the tenant's own records decide).
//
// Every refusal is an api-style JSON error ({"error":{"code","message"}})
// with one of the codes of this package or of package api. Every request
// is audited (actions export.list, export.fetch, export.ack, and
// export.denied for requests refused before reaching one of them); a
// request whose success cannot be audited is refused with 503. Request
// bodies are limited to [MaxBody] bytes.
type Server struct {
	cfg  Config
	byFP map[string]*Client
	log  *slog.Logger
	now  func() time.Time
}

// NewServer checks cfg and returns a Server. It fails with an error
// wrapping [ErrInvalid] when a required field is missing, a client is
// invalid (see [Client]) or two clients share a name or a fingerprint.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case len(cfg.Clients) == 0:
		return nil, fmt.Errorf("%w: no export clients", ErrInvalid)
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: no store", ErrInvalid)
	case cfg.Open == nil:
		return nil, fmt.Errorf("%w: no opener", ErrInvalid)
	case cfg.Cursors == nil:
		return nil, fmt.Errorf("%w: no cursors", ErrInvalid)
	case cfg.Audit == nil:
		return nil, fmt.Errorf("%w: no audit log", ErrInvalid)
	}
	s := &Server{cfg: cfg, byFP: make(map[string]*Client, len(cfg.Clients)), log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	names := make(map[string]bool, len(cfg.Clients))
	s.cfg.Clients = make([]Client, len(cfg.Clients))
	for i, c := range cfg.Clients {
		c, err := c.normalize()
		if err != nil {
			return nil, err
		}
		if names[c.Name] {
			return nil, fmt.Errorf("%w: client name %s is configured twice", ErrInvalid, c.Name)
		}
		if s.byFP[c.CertSHA256] != nil {
			return nil, fmt.Errorf("%w: clients %s and %s share a certificate fingerprint", ErrInvalid, s.byFP[c.CertSHA256].Name, c.Name)
		}
		names[c.Name] = true
		s.cfg.Clients[i] = c
		s.byFP[c.CertSHA256] = &s.cfg.Clients[i]
	}
	return s, nil
}

// Handler returns the HTTP handler of the export API. It serves the full
// paths ([PathRecords], [PathRecords]/{id}, [PathAck]), so it can be
// mounted on a mux under "/v1/export/" without stripping the prefix; any
// other path is 404 not-found (after the client is authenticated).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// RecordInfo describes one record in a [ListResponse]. It carries no
// personal data.
type RecordInfo struct {
	// Seq is the record's position: acknowledge it with POST [PathAck].
	Seq int64 `json:"seq"`
	// ID is the envelope ID (a ULID), for GET [PathRecords]/{id}.
	ID string `json:"id"`
	// Type and Sender are the message type and the sender's participant
	// ID.
	Type   string `json:"type"`
	Sender string `json:"sender"`
	// Created is the envelope's creation time, RecordedAt when this node
	// recorded it (both UTC).
	Created    time.Time `json:"created"`
	RecordedAt time.Time `json:"recorded_at"`
	// Size is the plaintext size in bytes, from the envelope header.
	Size int64 `json:"size"`
	// ContentType is the payload's media type, from the envelope header.
	ContentType string `json:"content_type"`
}

// ListResponse answers GET [PathRecords]: the client's tenant, its
// acknowledged cursor and the next records after it, in increasing Seq
// order (empty, never null, when there is nothing new).
type ListResponse struct {
	Tenant  string       `json:"tenant"`
	Cursor  int64        `json:"cursor"`
	Records []RecordInfo `json:"records"`
}

// AckResponse answers POST [PathAck] with the client's tenant and the
// cursor now in force.
type AckResponse struct {
	Tenant string `json:"tenant"`
	Cursor int64  `json:"cursor"`
}

// request carries what every handler needs about one request.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	client *Client
	actor  string
	from   string // audit-safe remote address
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	q := &request{w: w, r: r, actor: actorAnonymous, from: auditFrom(r.RemoteAddr)}
	if e, detail := s.authenticate(q); e != nil {
		s.refuse(q, actionDenied, q.objectTenant(), detail, e)
		return
	}
	path := r.URL.Path
	switch {
	case path == PathRecords:
		if s.method(q, http.MethodGet) {
			s.list(q)
		}
	case strings.HasPrefix(path, PathRecords+"/"):
		if s.method(q, http.MethodGet) {
			s.fetch(q, strings.TrimPrefix(path, PathRecords+"/"))
		}
	case path == PathAck:
		if s.method(q, http.MethodPost) {
			s.ack(q)
		}
	default:
		s.refuse(q, actionDenied, q.client.Tenant, "no such path",
			api.Errorf(http.StatusNotFound, CodeNotFound, "no such export resource"))
	}
}

func (q *request) objectTenant() string {
	if q.client == nil {
		return ""
	}
	return q.client.Tenant
}

// method refuses q with 405 unless it uses method.
func (s *Server) method(q *request, method string) bool {
	if q.r.Method == method {
		return true
	}
	q.w.Header().Set("Allow", method)
	s.refuse(q, actionDenied, q.client.Tenant, "method not allowed",
		api.Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use %s for this resource", method))
	return false
}

// authenticate finds the client of q's certificate and checks its source
// address. On refusal it returns the error to send and an audit detail.
func (s *Server) authenticate(q *request) (*api.Error, string) {
	r := q.r
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return api.Errorf(http.StatusUnauthorized, CodeUnknownClient, "a client certificate is required"), "no client certificate"
	}
	leaf := r.TLS.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	fp := hex.EncodeToString(sum[:])
	c := s.byFP[fp]
	if c == nil {
		return api.Errorf(http.StatusUnauthorized, CodeUnknownClient, "the client certificate is not allowed"), "unknown certificate sha256:" + fp
	}
	q.client, q.actor = c, Actor(c.Name)
	if now := s.now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return api.Errorf(http.StatusUnauthorized, CodeUnknownClient, "the client certificate is not valid at this time"), "certificate outside its validity period"
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !c.allows(ap.Addr()) {
		return api.Errorf(http.StatusForbidden, CodeAddressNotAllowed, "this client may not connect from this address"), "source address not allowed"
	}
	return nil, ""
}

// refuse audits a refused request (a failure to audit is only logged) and
// sends e. Server-side failures (5xx) are audited as errors, the rest as
// denials.
func (s *Server) refuse(q *request, action, object, detail string, e *api.Error) {
	result := audit.ResultDenied
	if e.Status >= 500 {
		result = audit.ResultError
	}
	_ = recordAudit(q.r.Context(), s.cfg.Audit, s.log, audit.Event{
		Actor: q.actor, Action: action, Object: object, From: q.from, Result: result, Detail: detail,
	})
	s.log.Warn("export: request refused", "actor", q.actor, "action", action, "from", q.from,
		"status", e.Status, "code", string(e.Code))
	api.WriteError(q.w, e)
}

// audited records a successful action; false means it could not be
// recorded and the request has been refused with 503.
func (s *Server) audited(q *request, action, object, detail string) bool {
	err := recordAudit(q.r.Context(), s.cfg.Audit, s.log, audit.Event{
		Actor: q.actor, Action: action, Object: object, From: q.from, Result: audit.ResultOK, Detail: detail,
	})
	if err == nil {
		return true
	}
	e := api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the request cannot be recorded now; try again later")
	e.RetryAfter = 10 * time.Second
	api.WriteError(q.w, e)
	return false
}

// internal logs err and refuses q with a 500 (or a 503 for a closed or
// cancelled store) that does not describe it.
func (s *Server) internal(q *request, action, object, what string, err error) {
	s.log.Error("export: "+what, "actor", q.actor, "action", action, "object", object, "err", err)
	e := api.Errorf(http.StatusInternalServerError, api.CodeInternal, "internal error")
	if errors.Is(err, store.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		e = api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "temporarily unavailable; try again later")
		e.RetryAfter = 10 * time.Second
	}
	s.refuse(q, action, object, what, e)
}

func (s *Server) list(q *request) {
	c := q.client
	limit := DefaultLimit
	if vs, ok := q.r.URL.Query()["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > MaxLimit {
			s.refuse(q, actionList, c.Tenant, "bad limit",
				api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "limit must be one integer in 1..%d", MaxLimit))
			return
		}
		limit = n
	}
	ctx := q.r.Context()
	cursor, err := s.cfg.Cursors.Get(c.Name)
	if err != nil {
		s.internal(q, actionList, c.Tenant, "read cursor", err)
		return
	}
	recs, err := s.cfg.Store.List(ctx, store.Query{Recipient: c.Tenant, AfterSeq: cursor, Limit: limit})
	if err != nil {
		s.internal(q, actionList, c.Tenant, "list records", err)
		return
	}
	resp := ListResponse{Tenant: c.Tenant, Cursor: cursor, Records: make([]RecordInfo, 0, len(recs))}
	for _, rec := range recs {
		info, err := recordInfo(rec, c.Tenant)
		if err != nil {
			s.internal(q, actionList, c.Tenant+" "+rec.ID, "stored record", err)
			return
		}
		resp.Records = append(resp.Records, info)
	}
	detail := fmt.Sprintf("cursor %d, %d records", cursor, len(resp.Records))
	if n := len(resp.Records); n > 0 {
		detail += fmt.Sprintf(", seq %d to %d", resp.Records[0].Seq, resp.Records[n-1].Seq)
	}
	if !s.audited(q, actionList, c.Tenant, detail) {
		return
	}
	q.w.Header().Set("Cache-Control", "no-store")
	api.WriteJSON(q.w, resp)
}

// recordInfo describes rec, a record of tenant, from its stored header.
func recordInfo(rec store.Record, tenant string) (RecordInfo, error) {
	if rec.Recipient != tenant {
		return RecordInfo{}, fmt.Errorf("record %s (seq %d) listed for %s belongs to another tenant", rec.ID, rec.Seq, tenant)
	}
	hdr, err := envelope.ParseHeader(rec.Header)
	if err != nil {
		return RecordInfo{}, fmt.Errorf("record %s (seq %d): stored header: %w", rec.ID, rec.Seq, err)
	}
	if hdr.ID != rec.ID {
		return RecordInfo{}, fmt.Errorf("record %s (seq %d): stored header names %s", rec.ID, rec.Seq, hdr.ID)
	}
	return RecordInfo{
		Seq: rec.Seq, ID: rec.ID, Type: rec.Type, Sender: rec.Sender,
		Created: rec.Created, RecordedAt: rec.RecordedAt,
		Size: int64(hdr.PayloadSize), ContentType: hdr.ContentType,
	}, nil
}

func (s *Server) fetch(q *request, id string) {
	c := q.client
	notFound := api.Errorf(http.StatusNotFound, CodeNotFound, "no such record")
	if envelope.ValidID(id) != nil {
		s.refuse(q, actionFetch, c.Tenant, "malformed record id", notFound)
		return
	}
	object := c.Tenant + " " + id
	ctx := q.r.Context()
	rc, hdr, err := s.cfg.Open(ctx, q.actor, q.from, c.Tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		s.refuse(q, actionFetch, object, "not found", notFound)
		return
	}
	if errors.Is(err, ErrHeld) {
		held := api.Errorf(http.StatusServiceUnavailable, CodeHeld, "the record has not passed the malware check; retry later")
		held.RetryAfter = time.Minute
		s.refuse(q, actionFetch, object, "held by the malware check", held)
		return
	}
	if err != nil {
		s.internal(q, actionFetch, object, "open record", err)
		return
	}
	defer rc.Close()
	if hdr == nil || hdr.ID != id || hdr.Recipient != c.Tenant {
		s.internal(q, actionFetch, object, "open record", errors.New("the opener returned a header of another record"))
		return
	}
	size := int64(hdr.PayloadSize)
	if !s.audited(q, actionFetch, object, fmt.Sprintf("%d bytes", size)) {
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", hdr.ContentType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", "attachment")
	if size == 0 {
		// Nothing to hold back: check the (empty) stream before answering.
		if err := checkEOF(rc); err != nil {
			s.internal(q, actionFetch, object, "read record", err)
			return
		}
		q.w.WriteHeader(http.StatusOK)
		return
	}
	// The last byte is held back until the opener has confirmed the whole
	// stream (io.EOF after its final authentication): if it fails, the
	// response is cut short and the client sees a truncated body, never a
	// complete-looking one.
	q.w.WriteHeader(http.StatusOK)
	last := make([]byte, 1)
	_, err = io.CopyN(q.w, rc, size-1)
	if err == nil {
		_, err = io.ReadFull(rc, last)
	}
	if err == nil {
		err = checkEOF(rc)
	}
	if err == nil {
		_, err = q.w.Write(last)
	}
	if err != nil {
		s.log.Error("export: record download failed", "actor", q.actor, "object", object, "err", err)
		_ = recordAudit(ctx, s.cfg.Audit, s.log, audit.Event{
			Actor: q.actor, Action: actionFetch, Object: object, From: q.from, Result: audit.ResultError, Detail: "download aborted",
		})
		panic(http.ErrAbortHandler)
	}
}

// checkEOF reads r to its end and fails unless it ends cleanly (io.EOF)
// without any more bytes.
func checkEOF(r io.Reader) error {
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n > 0 {
			return errors.New("the plaintext is longer than its header says")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *Server) ack(q *request) {
	c := q.client
	if ct := q.r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.refuse(q, actionAck, c.Tenant, "bad content type",
				api.Errorf(http.StatusUnsupportedMediaType, api.CodeContentType, "the body must be application/json"))
			return
		}
	}
	body, err := io.ReadAll(q.r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.refuse(q, actionAck, c.Tenant, "body too large",
				api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "the body exceeds %d bytes", MaxBody))
			return
		}
		s.refuse(q, actionAck, c.Tenant, "body unreadable",
			api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "the body could not be read"))
		return
	}
	seq, err := parseAck(body)
	if err != nil {
		s.refuse(q, actionAck, c.Tenant, "malformed body",
			api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s", err.Error()))
		return
	}
	cur, err := s.cfg.Cursors.Get(c.Name)
	if err != nil {
		s.internal(q, actionAck, c.Tenant, "read cursor", err)
		return
	}
	backwards := func(cur int64) {
		s.refuse(q, actionAck, c.Tenant, fmt.Sprintf("seq %d below cursor %d", seq, cur),
			api.Errorf(http.StatusConflict, CodeCursorBackwards, "seq %d is below the acknowledged cursor %d", seq, cur))
	}
	if seq < cur {
		backwards(cur)
		return
	}
	if seq > cur {
		// seq must be the Seq of a record of the tenant: the first record
		// at or after seq must be exactly it. Only the tenant's own records
		// decide the answer.
		recs, err := s.cfg.Store.List(q.r.Context(), store.Query{Recipient: c.Tenant, AfterSeq: seq - 1, Limit: 1})
		if err != nil {
			s.internal(q, actionAck, c.Tenant, "list records", err)
			return
		}
		if len(recs) == 0 {
			s.refuse(q, actionAck, c.Tenant, fmt.Sprintf("seq %d beyond the last record", seq),
				api.Errorf(http.StatusBadRequest, CodeBadSeq, "seq %d is beyond the last record", seq))
			return
		}
		if recs[0].Seq != seq {
			s.refuse(q, actionAck, c.Tenant, fmt.Sprintf("seq %d not a record of the tenant", seq),
				api.Errorf(http.StatusBadRequest, CodeBadSeq, "seq %d is not a record of this tenant", seq))
			return
		}
	}
	// Audited before the cursor moves: it never moves unrecorded. Should
	// the move then fail, that is audited too.
	if !s.audited(q, actionAck, c.Tenant, fmt.Sprintf("cursor %d to %d", cur, seq)) {
		return
	}
	if err := s.cfg.Cursors.Set(c.Name, seq); errors.Is(err, ErrCursor) {
		// A concurrent acknowledgement went further.
		now, _ := s.cfg.Cursors.Get(c.Name)
		backwards(now)
		return
	} else if err != nil {
		s.internal(q, actionAck, c.Tenant, "write cursor", err)
		return
	}
	api.WriteJSON(q.w, AckResponse{Tenant: c.Tenant, Cursor: seq})
}
