package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
)

// Failover is an http.RoundTripper for a service run as replicas (the
// hub of a cluster): requests are built for the first replica's URL and
// sent to the replica in use, which stays in use until it fails to answer
// — a transport error, or 503 — and the next one takes over. A request
// without a body, or whose body can be replayed (GetBody), is tried on
// every replica before an error is returned; a streamed upload returns its
// error, and the caller's retry goes to the next replica.
type Failover struct {
	base    http.RoundTripper
	primary string
	hosts   []string
	cur     atomic.Int32
}

// NewFailover returns a Failover over base for the replicas at urls
// (https://HOST:PORT each; requests must name the first).
func NewFailover(base http.RoundTripper, urls []string) (*Failover, error) {
	if len(urls) == 0 {
		return nil, errors.New("api: failover without replicas")
	}
	f := &Failover{base: base}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("api: replica %q: expected https://HOST:PORT", s)
		}
		f.hosts = append(f.hosts, u.Host)
	}
	f.primary = f.hosts[0]
	return f, nil
}

// Current returns the HOST:PORT of the replica in use.
func (f *Failover) Current() string { return f.hosts[f.cur.Load()] }

// RoundTrip sends req to the replica in use, and on to the next ones as
// described on Failover.
func (f *Failover) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != f.primary || len(f.hosts) == 1 {
		return f.base.RoundTrip(req)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var lastErr error
	for range f.hosts {
		i := f.cur.Load()
		r := req.Clone(req.Context())
		r.URL.Host = f.hosts[i]
		r.Host = ""
		if lastErr != nil && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := f.base.RoundTrip(r)
		if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
			return resp, nil
		}
		f.cur.CompareAndSwap(i, (i+1)%int32(len(f.hosts)))
		if err == nil {
			return resp, nil // the 503 itself says when to retry
		}
		lastErr = err
		if !replayable || req.Context().Err() != nil {
			break
		}
	}
	return nil, lastErr
}
