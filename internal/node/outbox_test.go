package node_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"taxlink/internal/devnet"
	"taxlink/internal/devnet/devtest"
	"taxlink/internal/node"
)

// TestOutboxInlineOrFiles checks where the sender keeps an envelope until
// the hub accepts it: a small one in its outbox entry (one commit, no files
// to sync), a larger one in side files; and that both are submitted
// intact and dropped once accepted.
func TestOutboxInlineOrFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw := devtest.Start(t)
	nta := nw.Nodes[devnet.NTAID]
	prepare := func(size int) string {
		t.Helper()
		id, err := nta.Node.Prepare(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: bytes.NewReader(make([]byte, size))})
		if err != nil {
			t.Fatalf("Prepare(%d bytes): %v", size, err)
		}
		return id
	}
	small, large := prepare(10<<10), prepare(600<<10)

	so, err := nta.Store.GetOutgoing(ctx, small)
	if err != nil || so.Envelope == nil || so.EnvelopePath != "" {
		t.Fatalf("a 10 KiB envelope: inline %d bytes, path %q, %v; want it in the outbox entry", len(so.Envelope), so.EnvelopePath, err)
	}
	lo, err := nta.Store.GetOutgoing(ctx, large)
	if err != nil || lo.Envelope != nil || lo.EnvelopePath == "" {
		t.Fatalf("a 600 KiB envelope: inline %d bytes, path %q, %v; want side files", len(lo.Envelope), lo.EnvelopePath, err)
	}
	outbox := filepath.Dir(lo.EnvelopePath)
	files := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(outbox, "*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got, want := files(), []string{lo.EnvelopePath + ".ct", lo.EnvelopePath + ".pre"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("outbox files %v, want only the large envelope's %v", got, want)
	}

	for _, id := range []string{small, large} {
		if _, err := nta.Node.SubmitPending(ctx, id); err != nil {
			t.Fatalf("SubmitPending(%s): %v", id, err)
		}
		o, err := nta.Store.GetOutgoing(ctx, id)
		if err != nil || o.Accepted == nil || o.Envelope != nil {
			t.Errorf("after acceptance, %s: accepted %t, inline %d bytes, %v; want accepted and the envelope dropped", id, o.Accepted != nil, len(o.Envelope), err)
		}
	}
	if got := files(); len(got) != 0 {
		t.Errorf("outbox files left after acceptance: %v", got)
	}
	if _, err := os.Stat(outbox); err != nil {
		t.Errorf("the outbox directory: %v", err)
	}
}

// TestSweepOutbox checks which outbox files a sweep removes: an old file
// without an entry (an interrupted Prepare) and the files of an accepted
// envelope go; a fresh file without an entry (another process may be
// writing it) and the files of a pending envelope stay.
func TestSweepOutbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw := devtest.Start(t)
	nta := nw.Nodes[devnet.NTAID]
	prepare := func() string {
		t.Helper()
		id, err := nta.Node.Prepare(ctx, node.Submission{Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml", Payload: bytes.NewReader(make([]byte, 600<<10))})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	pending, accepted := prepare(), prepare()
	if _, err := nta.Node.SubmitPending(ctx, accepted); err != nil {
		t.Fatal(err)
	}
	o, err := nta.Store.GetOutgoing(ctx, pending)
	if err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Dir(o.EnvelopePath)
	write := func(name string, age time.Duration) string {
		t.Helper()
		p := filepath.Join(outbox, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldOrphan := write("01M8ORPHANOLD0000000000000.ct", time.Hour)
	freshOrphan := write("01M8ORPHANNEW0000000000000.ct", 0)
	// As if the process stopped between the acceptance and the removal.
	acceptedLeft := write(accepted+".pre", time.Hour)

	if err := nta.Node.SweepOutbox(ctx, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		kept bool
	}{
		{oldOrphan, false}, {acceptedLeft, false}, {freshOrphan, true},
		{o.EnvelopePath + ".ct", true}, {o.EnvelopePath + ".pre", true},
	} {
		_, err := os.Stat(c.path)
		if kept := err == nil; kept != c.kept {
			t.Errorf("%s: kept %t, want %t", filepath.Base(c.path), kept, c.kept)
		}
	}
}
