package scan_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/scan"
	"taxlink/internal/scan/scantest"
)

const (
	testMarker      = scantest.Marker
	testSigReported = scantest.SignatureReported
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRealClamd(t *testing.T) {
	c := scantest.Start(t)
	ctx := testCtx(t, 60*time.Second)

	ver, err := c.Version(ctx)
	if err != nil || ver == "" || !strings.HasPrefix(ver, "ClamAV ") {
		t.Fatalf("Version = %q, %v", ver, err)
	}
	t.Logf("version %q", ver)

	// 1 MiB, marker straddling the boundary between chunk 8 and 9.
	big := bytes.Repeat([]byte("taxlink notification body 0123456789\n"), (1<<20)/37+1)[:1<<20]
	infected := bytes.Clone(big)
	copy(infected[8*scan.MaxChunkSize-len(testMarker)/2:], testMarker)
	// A near miss: the marker with its last byte changed.
	nearMiss := bytes.Clone(big)
	copy(nearMiss[scan.MaxChunkSize-3:], testMarker[:len(testMarker)-1]+"X")

	tests := []struct {
		name    string
		payload []byte
		want    scan.Verdict
	}{
		{"clean small", []byte("令和8年度 住民税特別徴収税額通知 (clean)"), scan.Verdict{Clean: true, Scanner: ver}},
		{"clean 1MiB", big, scan.Verdict{Clean: true, Scanner: ver}},
		{"near miss", nearMiss, scan.Verdict{Clean: true, Scanner: ver}},
		{"empty", nil, scan.Verdict{Clean: true, Scanner: ver}},
		{"infected across chunks", infected, scan.Verdict{Signature: testSigReported, Scanner: ver}},
		{"infected marker only", []byte(testMarker), scan.Verdict{Signature: testSigReported, Scanner: ver}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := c.Scan(ctx, bytes.NewReader(tc.payload))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if v != tc.want {
				t.Fatalf("verdict = %+v, want %+v", v, tc.want)
			}
		})
	}

	t.Run("too large", func(t *testing.T) {
		// StreamMaxLength is 10M.
		_, err := c.Scan(ctx, bytes.NewReader(make([]byte, 11<<20)))
		if !errors.Is(err, scan.ErrTooLarge) {
			t.Fatalf("err = %v, want scan.ErrTooLarge", err)
		}
	})

	t.Run("ledger", func(t *testing.T) {
		l, err := scan.OpenLedger(filepath.Join(t.TempDir(), "scan.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		v, err := c.Scan(ctx, bytes.NewReader(infected))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Record("tenant-1", "rec-1", v, time.Now()); err != nil {
			t.Fatal(err)
		}
		if st, got, ok := l.State("tenant-1", "rec-1"); st != scan.Quarantined || !ok || got != v {
			t.Fatalf("State = %v, %+v, %v", st, got, ok)
		}
	})
}
