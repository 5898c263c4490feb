package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/node"
	"taxlink/internal/store"
	"taxlink/internal/store/postgres"
)

// testPGDSN returns the PostgreSQL server of the tests: TAXLINK_TEST_PG_DSN,
// else a local server.
func testPGDSN() string {
	if v := os.Getenv("TAXLINK_TEST_PG_DSN"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// needPG returns a connection to the test server, closed when t ends; it
// skips t without a server, or fails it when TAXLINK_TEST_STRICT=1.
func needPG(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		const why = "start PostgreSQL on 127.0.0.1:5432 or set TAXLINK_TEST_PG_DSN"
		if os.Getenv("TAXLINK_TEST_STRICT") == "1" {
			t.Fatalf("%s (TAXLINK_TEST_STRICT=1): %v", why, err)
		}
		t.Skipf("%s: %v", why, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestNodeOnPostgres runs 札幌市's node on PostgreSQL, chosen in its
// configuration, sends it a notification from the NTA's node (on SQLite)
// and checks both receipts and that the record is in PostgreSQL.
func TestNodeOnPostgres(t *testing.T) {
	dsn := testPGDSN()
	conn := needPG(t, dsn)
	schema := fmt.Sprintf("taxlink_test_node_%x", mrand.Uint64())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})

	lay, err := devnet.Init(t.TempDir(), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sapporo, ok := lay.Node(devnet.SapporoID)
	if !ok {
		t.Fatalf("the dev network has no node %s", devnet.SapporoID)
	}
	if want := filepath.Join("nodes", "lg-011002", "node.json"); !strings.HasSuffix(sapporo.Config, want) {
		t.Fatalf("札幌市's node configuration is %s, want …/%s", sapporo.Config, want)
	}
	if err := devnet.EditConfig(sapporo.Config, func(cfg map[string]any) {
		cfg["store"] = map[string]any{"kind": "postgres", "dsn": dsn, "schema": schema}
	}); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.DiscardHandler)
	startHub(t, lay)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := daemon.StartNode(context.Background(), sapporo.Config, log)
	if err != nil {
		t.Fatalf("StartNode(%s) on PostgreSQL: %v", devnet.SapporoID, err)
	}
	t.Cleanup(func() { svc.Stop() }) // before the schema is dropped
	if _, ok := svc.Store.(*postgres.Store); !ok {
		t.Fatalf("札幌市's node store is a %T, want a *postgres.Store", svc.Store)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(sapporo.Config), "data", "node.db")); err == nil {
		t.Errorf("札幌市's node created an SQLite store although configured for PostgreSQL")
	}

	n, _ := lay.Node(devnet.NTAID)
	nta, err := daemon.LoadNode(n.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nta.Close()
	id, _, err := nta.Node.Submit(ctx, node.Submission{
		Recipient: devnet.SapporoID, Type: "income-tax-return", ContentType: "application/xml",
		Payload: strings.NewReader("<a/>"),
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	var o store.Outgoing
	for {
		if _, err := nta.Node.PollReceipts(ctx, time.Second); err != nil && ctx.Err() != nil {
			t.Fatalf("waiting for the recording receipt of %s: %v", id, err)
		}
		if o, err = nta.Store.GetOutgoing(ctx, id); err != nil {
			t.Fatal(err)
		}
		if o.Recorded != nil {
			break
		}
	}
	if a, r := node.VerifyBoth(nta.Directory(), devnet.HubID, o); a != nil || r != nil {
		t.Fatalf("receipts of %s: acceptance %v, recording %v; want both valid", id, a, r)
	}

	// The record is in PostgreSQL, in the configured schema.
	var recipient string
	var size int64
	err = conn.QueryRow(ctx, `SELECT recipient, ciphertext_size FROM `+pgx.Identifier{schema, "records"}.Sanitize()+` WHERE id = $1`, id).
		Scan(&recipient, &size)
	if err != nil {
		t.Fatalf("looking up %s in schema %s: %v", id, schema, err)
	}
	if recipient != devnet.SapporoID || size <= 0 {
		t.Errorf("PostgreSQL holds %s for %s with %d bytes of ciphertext; want it for %s", id, recipient, size, devnet.SapporoID)
	}
	if rec, err := svc.Store.Get(ctx, devnet.SapporoID, id); err != nil || rec.Receipt == nil {
		t.Errorf("the node's store: Get(%s) = %+v, %v", id, rec, err)
	}
	if rc, _, err := svc.Node.Open(ctx, devnet.SapporoID, id); err != nil {
		t.Errorf("opening %s on 札幌市's node: %v", id, err)
	} else {
		rc.Close()
	}
}
