package hub_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"taxlink/internal/api"
	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/directory"
	"taxlink/internal/node"
)

func participant(d *directory.Directory, id string) *directory.Participant {
	for i := range d.Participants {
		if d.Participants[i].ID == id {
			return &d.Participants[i]
		}
	}
	panic("no participant " + id)
}

// TestDirectoryUpdates puts new directory versions in force at the hub and
// checks suspension, certification lapses, node refresh and rollback.
func TestDirectoryUpdates(t *testing.T) {
	nw := devtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := nw.Hub.Hub
	nta := nw.Nodes[devnet.NTAID]
	send := func(to string) (string, error) {
		id, _, err := nta.Node.Submit(ctx, node.Submission{Recipient: to, Type: "income-tax-return", ContentType: "application/xml", Payload: strings.NewReader("<a/>")})
		return id, err
	}
	v1 := nw.Hub.Dir.Signed()

	// Version 2 suspends 札幌市: refused with its own code.
	v2 := devtest.NextDirectory(t, nw, func(d *directory.Directory) { participant(d, devnet.SapporoID).Suspended = true })
	if changed, err := h.UpdateDirectory(v2); !changed || err != nil {
		t.Fatalf("version 2: changed=%v err=%v", changed, err)
	}
	_, err := send(devnet.SapporoID)
	if e, ok := api.AsError(err); !ok || e.Code != api.CodeSuspended || !errors.Is(err, node.ErrRefused) {
		t.Errorf("send to a suspended recipient: %v, want refused with %s", err, api.CodeSuspended)
	}

	// The NTA node fetches version 2 from the hub.
	if changed, err := nta.Node.FetchDirectory(ctx); !changed || err != nil || nta.Directory().Version != 2 {
		t.Errorf("node fetch: changed=%v err=%v version %d", changed, err, nta.Directory().Version)
	}
	// Fetched again, unchanged: the hub answers 304 and sends no document.
	nm := h.Stats().DirectoryNotModified
	if changed, err := nta.Node.FetchDirectory(ctx); changed || err != nil || nta.Directory().Version != 2 {
		t.Errorf("node fetch of the directory it holds: changed=%v err=%v version %d", changed, err, nta.Directory().Version)
	}
	if got := h.Stats().DirectoryNotModified; got != nm+1 {
		t.Errorf("directory fetches answered 304: %d, want %d: the node downloaded the directory it holds", got, nm+1)
	}

	// Rollback to version 1 is refused by the hub and by the node's holder.
	if _, err := h.UpdateDirectory(v1); !errors.Is(err, directory.ErrRollback) {
		t.Errorf("hub took version 1 after 2: %v", err)
	}
	if _, err := nta.Dir.Update(v1); !errors.Is(err, directory.ErrRollback) {
		t.Errorf("node took version 1 after 2: %v", err)
	}

	// Version 3 lets the outsourcer's certification lapse: accepted, held.
	v3 := devtest.NextDirectory(t, nw, func(d *directory.Directory) {
		participant(d, devnet.SapporoID).Suspended = false
		c := participant(d, devnet.OutsourcerID).Certification
		c.Until = time.Now().UTC().Add(-time.Hour)
		c.From = c.Until.AddDate(-1, 0, 0)
	})
	if _, err := h.UpdateDirectory(v3); err != nil {
		t.Fatal(err)
	}
	town := "lg:013030"
	if _, err := send(town); err != nil {
		t.Fatalf("send while certification lapsed: %v", err)
	}
	retries := h.Stats().Retries
	for h.Stats().Retries == retries {
		if ctx.Err() != nil {
			t.Fatal("delivery to a lapsed outsourcer was never held")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := nw.Nodes[devnet.OutsourcerID].Store.Count(ctx, town); n != 0 {
		t.Fatalf("delivered %d to a node whose certification lapsed", n)
	}
	if b, _ := nw.Queue().Backlog(ctx, town); b != 1 {
		t.Errorf("backlog %d, want the notification held", b)
	}

	// Version 4 renews it: the held notification is delivered.
	v4 := devtest.NextDirectory(t, nw, func(d *directory.Directory) {
		c := participant(d, devnet.OutsourcerID).Certification
		c.Until = time.Now().UTC().AddDate(1, 0, 0)
	})
	if _, err := h.UpdateDirectory(v4); err != nil {
		t.Fatal(err)
	}
	for {
		if n, _ := nw.Nodes[devnet.OutsourcerID].Store.Count(ctx, town); n == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the held notification was not delivered after renewal")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Only nodes may fetch the directory.
	c := devtest.Client(t, nw, devnet.NTAID, nw.Hub.Directory().Hub.Identity(devnet.Environment))
	get := func(ifNoneMatch string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+nw.Hub.Addr+api.PathDirectory, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("node fetch over mTLS: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, doc := get(directory.ETag(v1))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(doc, nw.Hub.Dir.Signed()) || resp.Header.Get("ETag") != directory.ETag(doc) {
		t.Errorf("fetch with the tag of an older directory: %d, %d bytes, ETag %q; want 200, the directory in force and its tag", resp.StatusCode, len(doc), resp.Header.Get("ETag"))
	}
	resp, body := get(resp.Header.Get("ETag"))
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("fetch with the tag of the directory in force: %d, %d bytes; want 304 and no body", resp.StatusCode, len(body))
	}
}

// TestDirectoryLastGoodCopy stops the hub and checks that a node keeps the
// directory in force, and starts again from its last good copy.
func TestDirectoryLastGoodCopy(t *testing.T) {
	nw := devtest.Start(t)
	ctx := context.Background()
	v2 := devtest.NextDirectory(t, nw, func(d *directory.Directory) { participant(d, "lg:013030").Suspended = true })
	if _, err := nw.Hub.Hub.UpdateDirectory(v2); err != nil {
		t.Fatal(err)
	}
	nta := nw.Nodes[devnet.NTAID]
	if _, err := nta.Node.FetchDirectory(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nw.Hub.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := nta.Node.FetchDirectory(ctx); err == nil {
		t.Fatal("fetched a directory from a stopped hub")
	}
	if v := nta.Directory().Version; v != 2 {
		t.Errorf("version %d in force while the hub is down, want 2", v)
	}
	n, _ := nw.Layout.Node(devnet.NTAID)
	l, err := daemon.LoadNode(n.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v := l.Directory().Version; v != 2 {
		t.Errorf("restarted with version %d, want the last good copy (2)", v)
	}
}
