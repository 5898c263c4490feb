package cli

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"taxlink/internal/daemon"
	"taxlink/internal/devnet"
	"taxlink/internal/ledger"
	"taxlink/internal/notekey"
	"taxlink/internal/pki"
	"taxlink/internal/store/sqlite"
)

// TestAuditCommands runs a dev network that sends 30 notifications and
// keeps its tree, then exercises every audit command on it: verify --data
// on the intact tree and on copies tampered with in each way the ledger
// must detect, prove with the hub running and verify --bundle offline
// (with tampered proofs refused), backup and backup-check (with damaged
// copies named), and a small bench.
func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	tree := filepath.Join(t.TempDir(), "net")
	code, out, errw := run(t, ctx, "dev", "--notifications", "30", "--exit", "--keep", tree, "--timeout", "2m")
	if code != 0 {
		t.Fatalf("dev: exit %d\n%s\n%s", code, out, errw)
	}

	t.Run("verify intact tree", func(t *testing.T) {
		code, out, errw := run(t, ctx, "audit", "verify", "--data", tree)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errw)
		}
		m := lastJSON(t, out)
		if m["failed"] != float64(0) || m["ok"] != m["logs"] {
			t.Errorf("summary %v", m)
		}
		// The hub's ledger and audit log, and every node's audit log.
		want := []string{"hub/data/ledger", "hub/data/audit"}
		for _, n := range []string{"nta-hq", "lg-130001", "lg-011002", "corp-8700150012345"} {
			want = append(want, "nodes/"+n+"/data/audit")
		}
		for _, w := range want {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(filepath.FromSlash(w)) + `\s+taxlink/dev/\S+\s+\d+\s+\d+\s+OK`).MatchString(out) {
				t.Errorf("no OK row for %s:\n%s", w, out)
			}
		}
		if n, _ := m["logs"].(float64); n < float64(len(want)) {
			t.Errorf("%v logs, want at least %d", m["logs"], len(want))
		}
		// A single log directory, and a data directory, work as well.
		for _, d := range []string{filepath.Join(tree, "hub", "data", "ledger"), filepath.Join(tree, "nodes", "nta-hq", "data")} {
			if code, out, errw := run(t, ctx, "audit", "verify", "--data", d); code != 0 || lastJSON(t, out)["logs"] != float64(1) {
				t.Errorf("verify --data %s: exit %d\n%s\n%s", d, code, out, errw)
			}
		}
		// With the hub's configuration: its data directory.
		code, out, errw = run(t, ctx, "audit", "verify", "--config", filepath.Join(tree, "hub", "hub.json"))
		if code != 0 || lastJSON(t, out)["logs"] != float64(2) {
			t.Errorf("verify --config hub.json: exit %d\n%s\n%s", code, out, errw)
		}
	})

	proof := filepath.Join(t.TempDir(), "proof.json")
	t.Run("prove", func(t *testing.T) { testProve(t, tree, proof) })
	t.Run("verify bundle", func(t *testing.T) { testVerifyBundle(t, tree, proof) })
	// After prove, the NTA's witness holds the hub's latest checkpoint.
	t.Run("verify tampered trees", func(t *testing.T) { testTamperedTrees(t, tree) })
	t.Run("backup", func(t *testing.T) { testBackup(t, tree) })
	t.Run("bench", func(t *testing.T) {
		code, out, errw := run(t, ctx, "audit", "bench", "--entries", "3000", "--dir", filepath.Join(t.TempDir(), "bench"))
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errw)
		}
		m := lastJSON(t, out)
		if m["entries"] != float64(3000) || m["proof_hashes"].(float64) < 11 || m["appends_per_sec"].(float64) <= 0 || m["bundle_bytes"].(float64) <= 0 {
			t.Errorf("bench summary %v", m)
		}
		if !strings.Contains(out, "entries/s") || !strings.Contains(out, "inclusion") {
			t.Errorf("bench report:\n%s", out)
		}
	})
}

// testProve starts the kept network's hub again and proves the acceptance
// of one of the NTA's envelopes.
func testProve(t *testing.T, tree, proof string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lay, err := devnet.ReadLayout(tree)
	if err != nil {
		t.Fatal(err)
	}
	nta, _ := lay.Node(devnet.NTAID)
	st, err := sqlite.Open(filepath.Join(filepath.Dir(nta.Config), "data", "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	sent, err := st.ListOutgoing(ctx, "", 100)
	st.Close()
	if err != nil || len(sent) < 2 {
		t.Fatalf("outbox: %d envelopes, %v", len(sent), err)
	}
	id := sent[len(sent)/2].ID

	hub, err := daemon.StartHub(ctx, lay.HubConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Stop()

	code, out, errw := run(t, ctx, "audit", "prove", "--config", nta.Config, "--id", id, "--out", proof)
	if code != 0 {
		t.Fatalf("prove: exit %d\n%s\n%s", code, out, errw)
	}
	m := lastJSON(t, out)
	if m["ok"] != true || m["id"] != id || m["out"] != proof || m["proof_hashes"].(float64) < 1 {
		t.Errorf("prove summary %v", m)
	}
	for _, want := range []string{"checkpoint signature", "inclusion proof", "ledger entry", "receipt signature", "node witness", "wrote " + proof} {
		if !strings.Contains(out, want) {
			t.Errorf("prove output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAILED") {
		t.Errorf("prove output:\n%s", out)
	}
	// An envelope the node never sent.
	code, _, errw = run(t, ctx, "audit", "prove", "--config", nta.Config, "--id", "01JNOTSENT0000000000000000", "--out", proof+".x")
	if code == 0 || !strings.Contains(errw, "no envelope 01JNOTSENT0000000000000000 in the outbox of nta:hq") {
		t.Errorf("prove of an unknown envelope: exit %d, %s", code, errw)
	}
	if _, err := os.Stat(proof + ".x"); err == nil {
		t.Errorf("a failed prove wrote its file")
	}
}

// testVerifyBundle checks the proof offline, then tampered versions.
func testVerifyBundle(t *testing.T, tree, proof string) {
	ctx := context.Background()
	dirDoc := filepath.Join(tree, "directory", "directory.json")
	dirKey := filepath.Join(tree, "directory", "directory-key.pem")
	verify := func(file string, extra ...string) (int, string, string) {
		args := []string{"audit", "verify", "--bundle", file, "--directory", dirDoc, "--directory-key", dirKey}
		return run(t, ctx, append(args, extra...)...)
	}
	code, out, errw := verify(proof)
	if code != 0 || lastJSON(t, out)["ok"] != true {
		t.Fatalf("verify --bundle: exit %d\n%s\n%s", code, out, errw)
	}
	if n := strings.Count(out, "OK: "); n != 4 {
		t.Errorf("%d checks OK, want 4:\n%s", n, out)
	}
	// The trust anchors must be given.
	if code, _, errw := run(t, ctx, "audit", "verify", "--bundle", proof); code == 0 || !strings.Contains(errw, "--directory") {
		t.Errorf("verify --bundle without a directory: exit %d, %s", code, errw)
	}

	raw, err := os.ReadFile(proof)
	if err != nil {
		t.Fatal(err)
	}
	rc, b, err := parseProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint the hub signed for another log: its audit log.
	auditCP := lastRecord(t, filepath.Join(tree, "hub", "data", "audit", "checkpoints"))

	type mutation func(p *proofFile, b *ledger.Bundle)
	cases := []struct {
		name string
		mut  mutation
		want []string
	}{
		{"entry edited", func(_ *proofFile, b *ledger.Bundle) { b.Entry[len(b.Entry)-1] ^= 1 },
			[]string{"inclusion proof: ", "bad proof", "ledger entry"}},
		{"index changed", func(_ *proofFile, b *ledger.Bundle) { b.Index++ },
			[]string{"inclusion proof: "}},
		{"proof hash edited", func(_ *proofFile, b *ledger.Bundle) { b.Proof[0][5] ^= 0x80 },
			[]string{"inclusion proof: ", "bad proof"}},
		{"checkpoint forged", func(_ *proofFile, b *ledger.Bundle) {
			lines := strings.SplitN(string(b.Checkpoint), "\n", 3)
			lines[1] = "999999"
			b.Checkpoint = []byte(strings.Join(lines, "\n"))
		}, []string{"checkpoint signature: ", "ledger: bad checkpoint"}},
		{"checkpoint of the hub's audit log", func(_ *proofFile, b *ledger.Bundle) { b.Checkpoint = auditCP },
			[]string{"checkpoint signature: the checkpoint is of the log \"taxlink/dev/hub:kiko/audit\", not of the hub's ledger"}},
		{"receipt seq changed", func(p *proofFile, _ *ledger.Bundle) {
			p.Receipt = []byte(regexp.MustCompile(`"seq":\d+`).ReplaceAllString(string(p.Receipt), `"seq":`+fmt.Sprint(rc.Seq+1)))
		}, []string{"ledger entry: the bundle proves entry", "but the acceptance receipt names ledger index", "FAILED: receipt: bad signature"}},
		{"receipt of another envelope", func(p *proofFile, _ *ledger.Bundle) {
			p.Receipt = []byte(strings.Replace(string(p.Receipt), rc.EnvelopeID, "01JAAAAAAAAAAAAAAAAAAAAAAA", 1))
		}, []string{"ledger entry: the bundle proves entry", "not this accepted receipt of envelope 01JAAAAAAAAAAAAAAAAAAAAAAA", "FAILED: receipt: bad signature"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p proofFile
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			bb := ledger.Bundle{Checkpoint: append([]byte(nil), b.Checkpoint...), Index: b.Index, Entry: append([]byte(nil), b.Entry...), Proof: append(b.Proof[:0:0], b.Proof...)}
			c.mut(&p, &bb)
			bj, err := bb.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			p.Bundle = bj
			j, _ := json.Marshal(p)
			file := filepath.Join(t.TempDir(), "proof.json")
			if err := os.WriteFile(file, j, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errw := verify(file)
			if code == 0 || lastJSON(t, out)["ok"] != false {
				t.Fatalf("tampered proof accepted: exit %d\n%s", code, out)
			}
			if !strings.Contains(errw, file) {
				t.Errorf("stderr does not name the file: %s", errw)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errw, w) {
					t.Errorf("output lacks %q:\n%s\n%s", w, out, errw)
				}
			}
		})
	}

	// Another directory key: the directory itself is refused.
	k, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := pki.MarshalPublicKeyPEM(&k.PublicKey)
	otherKey := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(otherKey, []byte(pemKey), 0o600)
	code, _, errw = run(t, ctx, "audit", "verify", "--bundle", proof, "--directory", dirDoc, "--directory-key", otherKey)
	if code == 0 || !strings.Contains(errw, "signature does not verify") || !strings.Contains(errw, dirDoc) {
		t.Errorf("verify with another directory key: exit %d, %s", code, errw)
	}
	// Not a proof file.
	junk := filepath.Join(t.TempDir(), "junk.json")
	os.WriteFile(junk, []byte(`{"receipt":{},"bundle":{},"extra":1}`), 0o600)
	if code, _, errw := verify(junk); code == 0 || !strings.Contains(errw, junk) {
		t.Errorf("junk proof: exit %d, %s", code, errw)
	}
}

// testTamperedTrees tampers with copies of the tree and checks that
// verify --data fails naming the place.
func testTamperedTrees(t *testing.T, tree string) {
	ctx := context.Background()
	hubLedger := filepath.Join("hub", "data", "ledger")
	entries := filepath.Join(hubLedger, "entries")
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string // in stderr; %d-free substrings; "DIR/" is the copy
	}{
		{"byte edited in an entry", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				b[recs[7][0]+16+10] ^= 0x01
				return b
			})
		}, []string{"DIR/" + entries + " record 7 at offset ", "CRC mismatch"}},
		{"record deleted", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				return append(b[:recs[7][0]:recs[7][0]], b[recs[7][1]:]...)
			})
		}, []string{"DIR/" + entries + " record ", " at offset ", "deleted"}},
		{"records swapped", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				out := append([]byte(nil), b[:recs[7][0]]...)
				out = append(out, b[recs[8][0]:recs[8][1]]...)
				out = append(out, b[recs[7][0]:recs[7][1]]...)
				return append(out, b[recs[8][1]:]...)
			})
		}, []string{"DIR/" + entries + " record 7 at offset ", "reorder"}},
		{"entries truncated", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				return b[:recs[10][0]+5]
			})
		}, []string{"DIR/" + entries, "truncated"}},
		{"checkpoint edited", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, hubLedger, "checkpoints"), func(b []byte, recs [][2]int) []byte {
				b[recs[1][0]+16+20] ^= 0x01
				return b
			})
		}, []string{"DIR/" + filepath.Join(hubLedger, "checkpoints") + " checkpoint 1 at offset ", "CRC mismatch"}},
		{"node audit event edited", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, "nodes", "nta-hq", "data", "audit", "entries"), func(b []byte, recs [][2]int) []byte {
				b[recs[0][0]+16+3] ^= 0x01
				return b
			})
		}, []string{"DIR/" + filepath.Join("nodes", "nta-hq", "data", "audit", "entries") + " record 0 at offset ", "CRC mismatch"}},
		{"hub ledger removed", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, hubLedger)); err != nil {
				t.Fatal(err)
			}
		}, []string{"DIR/" + hubLedger + ": the log is missing"}},
		{"hub ledger rewritten with the hub's own key", func(t *testing.T, dir string) {
			rewriteHubLedger(t, dir, 3)
		}, []string{"DIR/" + entries + ": ", "but the node's witness DIR/" + filepath.Join("nodes"), "holds the hub's signed checkpoint of"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "net")
			copyTree(t, tree, dir)
			c.tamper(t, dir)
			code, out, errw := run(t, ctx, "audit", "verify", "--data", dir)
			if code == 0 {
				t.Fatalf("tampering not detected: exit 0\n%s", out)
			}
			if m := lastJSON(t, out); m["failed"].(float64) < 1 || len(m["problems"].([]any)) < 1 {
				t.Errorf("summary %v", m)
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "DIR/", dir+string(filepath.Separator))
				if !strings.Contains(errw, w) {
					t.Errorf("stderr lacks %q:\n%s\nstdout:\n%s", w, errw, out)
				}
			}
		})
	}
}

// testBackup backs up the hub's logs and checks damaged copies.
func testBackup(t *testing.T, tree string) {
	ctx := context.Background()
	live := filepath.Join(tree, "hub", "data")
	bk := filepath.Join(t.TempDir(), "backup")
	for range 2 { // the second run is incremental: nothing to copy
		code, out, errw := run(t, ctx, "audit", "backup", "--data", live, "--to", bk)
		if code != 0 {
			t.Fatalf("backup: exit %d\n%s\n%s", code, out, errw)
		}
		if m := lastJSON(t, out); m["logs"] != float64(2) || m["ok"] != float64(2) {
			t.Errorf("backup summary %v", m)
		}
	}
	code, out, errw := run(t, ctx, "audit", "backup-check", "--live", live, "--backup", bk)
	if code != 0 {
		t.Fatalf("backup-check: exit %d\n%s\n%s", code, out, errw)
	}
	if m := lastJSON(t, out); m["ok"] != float64(2) {
		t.Errorf("backup-check summary %v", m)
	}
	// One log directory against its copy.
	if code, out, errw := run(t, ctx, "audit", "backup-check", "--live", filepath.Join(live, "ledger"), "--backup", filepath.Join(bk, "ledger")); code != 0 {
		t.Errorf("backup-check of one log: exit %d\n%s\n%s", code, out, errw)
	}

	entries := filepath.Join("ledger", "entries")
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string
	}{
		{"truncated", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte { return b[:recs[len(recs)/2][0]+3] })
		}, []string{"TRUNCATED", "DIR/" + entries}},
		{"edited", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				b[recs[4][0]+16+1] ^= 0x01
				return b
			})
		}, []string{"EDITED", "DIR/" + entries + " record 4 at offset "}},
		{"reordered", func(t *testing.T, dir string) {
			editFile(t, filepath.Join(dir, entries), func(b []byte, recs [][2]int) []byte {
				out := append([]byte(nil), b[:recs[2][0]]...)
				out = append(out, b[recs[3][0]:recs[3][1]]...)
				out = append(out, b[recs[2][0]:recs[2][1]]...)
				return append(out, b[recs[3][1]:]...)
			})
		}, []string{"REORDERED", "DIR/" + entries + " record 2 at offset "}},
		{"foreign", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "ledger"))
			copyTree(t, filepath.Join(dir, "audit"), filepath.Join(dir, "ledger"))
		}, []string{"FOREIGN", "DIR/" + entries, "copy of another log"}},
		{"missing", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "audit"))
		}, []string{"MISSING", "no copy of " + filepath.Join(live, "audit")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backup")
			copyTree(t, bk, dir)
			c.tamper(t, dir)
			code, out, errw := run(t, ctx, "audit", "backup-check", "--live", live, "--backup", dir)
			if code == 0 {
				t.Fatalf("damaged copy accepted:\n%s", out)
			}
			if m := lastJSON(t, out); m["failed"].(float64) < 1 {
				t.Errorf("summary %v", m)
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "DIR/", dir+string(filepath.Separator))
				if !strings.Contains(out+errw, w) {
					t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", w, out, errw)
				}
			}
		})
	}
}

// rewriteHubLedger replaces the hub's ledger in the tree dir by a new log
// of n entries, validly signed with the hub's key: what an administrator
// holding the key could do. Only a checkpoint held outside (a node's
// witness) can tell.
func rewriteHubLedger(t *testing.T, dir string, n int) {
	t.Helper()
	lay, err := devnet.ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	lay.Dir = dir
	key, err := devnet.ReadKey(lay, filepath.Join(dir, "hub", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := notekey.NewSigner(devnet.HubID, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := notekey.NewVerifier(devnet.HubID, pubKey(t, key))
	if err != nil {
		t.Fatal(err)
	}
	ld := filepath.Join(dir, "hub", "data", "ledger")
	if err := os.RemoveAll(ld); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ld, ledger.Options{Origin: "taxlink/dev/" + devnet.HubID + "/ledger", Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range n {
		e := make([]byte, 40)
		rand.Read(e)
		if _, err := l.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ledgerRecords returns the byte ranges of the records of a ledger file
// (docs/ledger.md §3, §4).
func ledgerRecords(t *testing.T, b []byte) [][2]int {
	t.Helper()
	const fixed = 8 + 12 + 4 + 16 + 2
	if len(b) < fixed {
		t.Fatalf("ledger file of %d bytes", len(b))
	}
	p := fixed + int(binary.BigEndian.Uint16(b[fixed-2:fixed])) + 4
	var recs [][2]int
	for p+16 <= len(b) {
		end := p + 16 + int(binary.BigEndian.Uint32(b[p+8:p+12]))
		if end > len(b) {
			break
		}
		recs = append(recs, [2]int{p, end})
		p = end
	}
	return recs
}

// editFile rewrites a ledger file with edit, which gets its bytes and
// record ranges.
func editFile(t *testing.T, path string, edit func(b []byte, recs [][2]int) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := ledgerRecords(t, b)
	if len(recs) < 12 && !strings.Contains(path, "audit") && !strings.Contains(path, "checkpoints") {
		t.Fatalf("%s: only %d records", path, len(recs))
	}
	if err := os.WriteFile(path, edit(b, recs), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lastRecord returns the data of the last record of a ledger file.
func lastRecord(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := ledgerRecords(t, b)
	if len(recs) == 0 {
		t.Fatalf("%s: no records", path)
	}
	r := recs[len(recs)-1]
	return b[r[0]+16 : r[1]]
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o600)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func pubKey(t *testing.T, k crypto.Signer) *ecdsa.PublicKey {
	t.Helper()
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("key of type %T", k.Public())
	}
	return pub
}
