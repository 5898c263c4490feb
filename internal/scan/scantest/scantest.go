// Package scantest starts a private clamd for tests: its only database is
// a harmless custom signature matching Marker, so no virus database (and no
// network) is needed. It skips the test when clamd is not installed, or
// fails it under TAXLINK_TEST_STRICT=1.
package scantest

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/scan"
)

const (
	// Marker is a harmless string the test signature matches.
	Marker = "TAXLINK-TEST-MALWARE-SIGNATURE-7d1e"
	// SignatureName is the name of the test signature in its database.
	SignatureName = "Taxlink.Test.Signature-1"
	// SignatureReported is the name clamd reports: it appends
	// ".UNOFFICIAL" to names from unsigned databases.
	SignatureReported = SignatureName + ".UNOFFICIAL"
)

// socketDir is a temporary directory short enough for a unix socket path
// (at most 107 bytes).
func socketDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("", "scan")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// findClamd returns the clamd binary, or skips (fails under
// TAXLINK_TEST_STRICT=1) when it is not installed.
func findClamd(t testing.TB) string {
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

// Start runs a private clamd whose only database is the test
// signature, waits until it answers PING, and kills it at cleanup.
func Start(t testing.TB) *scan.Clamd {
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
	ndb := fmt.Sprintf("%s:0:*:%s\n", SignatureName, hex.EncodeToString([]byte(Marker)))
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

	c, err := scan.NewClamd("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
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
