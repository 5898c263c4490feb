// Package api defines the HTTP interface between taxlink processes: the
// paths, the error codes every refusal carries, and the error body.
//
// Every refusal is a JSON body {"error":{"code":"…","message":"…"}} with an
// HTTP status that says whether to retry: 4xx means the request will never
// succeed as it is, 503 means try again later. Messages name what was wrong
// with the request and never carry internals, payload bytes or personal data.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths served over mTLS.
const (
	// PathSubmit is where a node submits an envelope to the hub (POST).
	PathSubmit = "/v1/envelopes"
	// PathReceipts is where a node collects recording receipts for what
	// it sent (GET ?after=SEQ&limit=N&wait=MS).
	PathReceipts = "/v1/receipts"
	// PathDeliver is where the hub delivers an envelope to a node (POST).
	PathDeliver = "/v1/deliver"
	// PathDirectory is where a node fetches the signed directory in force
	// (GET).
	PathDirectory = "/v1/directory"
	// PathCheckpoint answers the hub ledger's latest signed checkpoint
	// (GET, a C2SP signed note).
	PathCheckpoint = "/v1/ledger/checkpoint"
	// PathBundle answers an inclusion proof bundle for a ledger entry
	// against the latest checkpoint (GET ?index=N).
	PathBundle = "/v1/ledger/bundle"
	// PathConsistency answers a consistency proof between two tree sizes
	// (GET ?old=A&new=B, JSON list of base64 hashes).
	PathConsistency = "/v1/ledger/consistency"
)

// Code names why a request was refused.
type Code string

// The refusal codes.
const (
	CodeMalformed        Code = "malformed-envelope"
	CodeBadParticipantID Code = "bad-participant-id"
	CodeUnsupportedSuite Code = "unsupported-suite"
	CodeSenderMismatch   Code = "sender-mismatch"
	CodeUnknownRecipient Code = "unknown-recipient"
	CodeUnknownType      Code = "unknown-type"
	CodePolicyDenied     Code = "policy-denied"
	CodeTooLarge         Code = "payload-too-large"
	CodeContentType      Code = "bad-content-type"
	CodeUnknownKey       Code = "unknown-key-id"
	CodeBadSignature     Code = "bad-signature"
	CodeDigestMismatch   Code = "digest-mismatch"
	CodeIDConflict       Code = "id-conflict"
	CodeNotHosted        Code = "not-hosted"
	CodeSuspended        Code = "suspended"
	CodeWindowClosed     Code = "window-closed"
	CodeHeld             Code = "held"
	CodeBusy             Code = "busy"
	CodeDiskLow          Code = "disk-low"
	CodeForbidden        Code = "forbidden"
	CodeBadRequest       Code = "bad-request"
	CodeUnavailable      Code = "unavailable"
	CodeInternal         Code = "internal"
)

// Timeouts that bound what a slow or stalled peer can hold.
const (
	// ReadHeaderTimeout bounds the TLS handshake and the request headers.
	ReadHeaderTimeout = 10 * time.Second
	// BodyIdleTimeout bounds a pause in a request body: a big upload may
	// take minutes, a stalled one is cut off.
	BodyIdleTimeout = 15 * time.Second
)

// IdleTimeoutBody returns r's body with its read deadline renewed before
// each read, so that a peer that stops sending for longer than idle is cut
// off however long the whole upload takes (slow-body attacks).
func IdleTimeoutBody(w http.ResponseWriter, r *http.Request, idle time.Duration) io.Reader {
	rc := http.NewResponseController(w)
	return readerFunc(func(p []byte) (int, error) {
		_ = rc.SetReadDeadline(time.Now().Add(idle))
		return r.Body.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// MaxErrorBody bounds an error body read from a peer.
const MaxErrorBody = 16 << 10

// Error is a refusal as sent on the wire.
type Error struct {
	Status  int    `json:"-"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// RetryAfter, when set on a 503, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Retryable reports whether the same request may succeed later.
func (e *Error) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// HTTP2Client is the HTTP/2 configuration of the hub's and nodes' clients:
// an idle connection is pinged, and one whose peer stops answering (a cut
// or blackholed path) is closed within half a minute instead of holding
// the requests on it until the peer's idle timeout.
func HTTP2Client() *http.HTTP2Config {
	return &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second, WriteByteTimeout: 30 * time.Second}
}

// Errorf builds an Error.
func Errorf(status int, code Code, format string, a ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// WriteError sends e as the response.
func WriteError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())+1))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}

// WriteJSON sends v as a 200 response.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(v)
}

// ReadError turns a non-200 response into an *Error. A body that is not a
// well-formed error is reported as such, with the status.
func ReadError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	var body struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil || body.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: CodeUnavailable, Message: fmt.Sprintf("peer answered HTTP %d without an error body", resp.StatusCode)}
	}
	body.Error.Status = resp.StatusCode
	return body.Error
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// ReceiptsResponse is the body answering PathReceipts.
type ReceiptsResponse struct {
	Receipts []ReceiptItem `json:"receipts"`
	// Last is the newest sequence of the hub's receipt stream. A node
	// whose cursor is beyond it talks to a hub restored from a backup (or
	// replaced): it starts again from the beginning (receipts are
	// idempotent). Absent from older hubs.
	Last *uint64 `json:"last,omitempty"`
}

// ReceiptItem is one recording receipt and its position in the hub's
// receipt stream, the cursor for the next request.
type ReceiptItem struct {
	Seq     uint64          `json:"seq"`
	Receipt json.RawMessage `json:"receipt"`
	// LedgerIndex is the receipt's entry in the hub's ledger.
	LedgerIndex int64 `json:"ledger_index"`
}

// Serve answers the service API on ln with tlsConf until ctx ends.
func Serve(ctx context.Context, ln net.Listener, tlsConf *tls.Config, handler http.Handler, log *slog.Logger) error {
	return ServeWith(ctx, ln, tlsConf, handler, log, nil)
}

// ServeWith is Serve that also reports each failed TLS handshake (a peer
// refused before HTTP: no certificate, a foreign CA, revoked, unknown to
// the directory…) to onTLSError with the peer's address.
func ServeWith(ctx context.Context, ln net.Listener, tlsConf *tls.Config, handler http.Handler, log *slog.Logger, onTLSError func(remote, reason string)) error {
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if onTLSError != nil {
		errLog = stdlog.New(handshakeWatcher{onTLSError, log}, "", 0)
	}
	srv := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// handshakeWatcher receives net/http's error log and picks out failed TLS
// handshakes, whose only trace is that log line.
type handshakeWatcher struct {
	report func(remote, reason string)
	log    *slog.Logger
}

func (h handshakeWatcher) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	const prefix = "http: TLS handshake error from "
	if rest, ok := strings.CutPrefix(line, prefix); ok {
		remote, reason, _ := strings.Cut(rest, ": ")
		h.report(remote, reason)
		return len(p), nil
	}
	h.log.Debug(line)
	return len(p), nil
}
