package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFailover moves between replicas as a node does: past a replica that
// does not answer, past one that answers 503, and never for a request to
// another service.
func TestFailover(t *testing.T) {
	var hits [3]int
	status := [3]int{200, 200, 200}
	var servers []*httptest.Server
	for i := range 3 {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i]++
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(status[i])
			_, _ = io.WriteString(w, r.Method)
		}))
		defer s.Close()
		servers = append(servers, s)
	}
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	f, err := NewFailover(servers[0].Client().Transport, []string{servers[0].URL, servers[1].URL, servers[2].URL})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: f}
	get := func() int {
		t.Helper()
		resp, err := c.Get(servers[0].URL + "/x")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }

	if get() != 200 || hits[0] != 1 || f.Current() != host(servers[0]) {
		t.Fatalf("a healthy first replica: hits %v, current %s", hits, f.Current())
	}
	// The first replica is lost: a GET goes on to the second at once.
	servers[0].Close()
	if get() != 200 || hits[1] != 1 || f.Current() != host(servers[1]) {
		t.Fatalf("after losing replica 1: hits %v, current %s", hits, f.Current())
	}
	// The second answers 503: the answer is returned (it says when to
	// retry) and the next request goes to the third.
	status[1] = http.StatusServiceUnavailable
	if got := get(); got != http.StatusServiceUnavailable || f.Current() != host(servers[2]) {
		t.Fatalf("a 503: status %d, current %s", got, f.Current())
	}
	if get() != 200 || hits[2] != 1 {
		t.Fatalf("after the 503: hits %v", hits)
	}
	// A streamed upload to a replica that is lost returns its error (its
	// body cannot be sent twice); the caller's retries move on, one
	// replica each, to the one that answers.
	servers[2].Close()
	status[1] = 200
	post := func() error {
		req, _ := http.NewRequest(http.MethodPost, servers[0].URL+"/x", io.NopCloser(strings.NewReader("envelope")))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if post() == nil {
		t.Fatal("a streamed POST to a lost replica succeeded")
	}
	var err2 error
	for range 2 {
		if err2 = post(); err2 == nil {
			break
		}
	}
	if err2 != nil || hits[1] != 3 {
		t.Fatalf("the retried POST: %v; hits %v", err2, hits)
	}
	// Another service is reached as addressed.
	if resp, err := c.Get(other.URL); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a request to another service: %v", err)
	} else {
		resp.Body.Close()
	}
}

func TestNewFailoverRefuses(t *testing.T) {
	for _, urls := range [][]string{nil, {"http://127.0.0.1:1"}, {"https://"}} {
		if _, err := NewFailover(http.DefaultTransport, urls); err == nil {
			t.Errorf("NewFailover(%q) accepted", urls)
		}
	}
}
