package scan

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// testMarker is a harmless string matched by the custom test signature.
	testMarker = "TAXLINK-TEST-MALWARE-SIGNATURE-7d1e"
	// testSigName is the name given to it in the .ndb database.
	testSigName = "Taxlink.Test.Signature-1"
	// clamd appends ".UNOFFICIAL" to names from unsigned databases.
	testSigReported = testSigName + ".UNOFFICIAL"
)

// findClamd returns the clamd binary, or skips (fails under
// TAXLINK_TEST_STRICT=1) when it is not installed.
func findClamd(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/clamd"); err == nil {
		return "/usr/sbin/clamd"
	}
	const msg = "clamd not found: apt-get install clamav-daemon"
	if os.Getenv("TAXLINK_TEST_STRICT") == "1" {
		t.Fatal(msg + " (TAXLINK_TEST_STRICT=1)")
	}
	t.Skip(msg)
	return ""
}

// startClamd runs a private clamd whose only database is the test
// signature, waits until it answers PING, and kills it at cleanup.
func startClamd(t *testing.T) *Clamd {
	t.Helper()
	bin := findClamd(t)
	dir := socketDir(t)
	dbDir := filepath.Join(dir, "db")
	tmpDir := filepath.Join(dir, "tmp")
	for _, d := range []string{dbDir, tmpDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ndb := fmt.Sprintf("%s:0:*:%s\n", testSigName, hex.EncodeToString([]byte(testMarker)))
	if err := os.WriteFile(filepath.Join(dbDir, "taxlink-test.ndb"), []byte(ndb), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "clamd.ctl")
	logFile := filepath.Join(dir, "clamd.log")
	conf := strings.Join([]string{
		"Foreground yes",
		"LocalSocket " + sock,
		"LocalSocketMode 600",
		"DatabaseDirectory " + dbDir,
		"TemporaryDirectory " + tmpDir,
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"LogFile " + logFile,
		"StreamMaxLength 10M",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+confPath)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start clamd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		out.Close()
	})
	dump := func() string {
		o, _ := os.ReadFile(filepath.Join(dir, "clamd.out"))
		l, _ := os.ReadFile(logFile)
		return fmt.Sprintf("clamd output:\n%s\nclamd log:\n%s", o, l)
	}

	c := newClamd(t, "unix:"+sock)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.Ping(ctx)
			cancel()
			if err == nil {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err // for cleanup
			t.Fatalf("clamd exited before answering PING: %v\n%s", err, dump())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamd did not answer PING within 90s\n%s", dump())
		}
	}
	t.Logf("clamd ready after %v", time.Since(start).Round(time.Millisecond))
	return c
}

func TestRealClamd(t *testing.T) {
	c := startClamd(t)
	ctx := testCtx(t, 60*time.Second)

	ver, err := c.Version(ctx)
	if err != nil || ver == "" || !strings.HasPrefix(ver, "ClamAV ") {
		t.Fatalf("Version = %q, %v", ver, err)
	}
	t.Logf("version %q", ver)

	// 1 MiB, marker straddling the boundary between chunk 8 and 9.
	big := bytes.Repeat([]byte("taxlink notification body 0123456789\n"), (1<<20)/37+1)[:1<<20]
	infected := bytes.Clone(big)
	copy(infected[8*MaxChunkSize-len(testMarker)/2:], testMarker)
	// A near miss: the marker with its last byte changed.
	nearMiss := bytes.Clone(big)
	copy(nearMiss[MaxChunkSize-3:], testMarker[:len(testMarker)-1]+"X")

	tests := []struct {
		name    string
		payload []byte
		want    Verdict
	}{
		{"clean small", []byte("令和8年度 住民税特別徴収税額通知 (clean)"), Verdict{Clean: true, Scanner: ver}},
		{"clean 1MiB", big, Verdict{Clean: true, Scanner: ver}},
		{"near miss", nearMiss, Verdict{Clean: true, Scanner: ver}},
		{"empty", nil, Verdict{Clean: true, Scanner: ver}},
		{"infected across chunks", infected, Verdict{Signature: testSigReported, Scanner: ver}},
		{"infected marker only", []byte(testMarker), Verdict{Signature: testSigReported, Scanner: ver}},
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
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})

	t.Run("ledger", func(t *testing.T) {
		l, err := OpenLedger(filepath.Join(t.TempDir(), "scan.jsonl"))
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
		if st, got, ok := l.State("tenant-1", "rec-1"); st != Quarantined || !ok || got != v {
			t.Fatalf("State = %v, %+v, %v", st, got, ok)
		}
	})
}
