package selfcheck

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"taxlink/internal/standard"
	"testing"
	"time"
)

// TestRunAndReport runs the whole catalogue on a seeded dev node with one
// attestation, and writes the report files.
func TestRunAndReport(t *testing.T) {
	f := newFixture(t, true)
	e := mustLoad(t, sapporo(f))
	now := time.Now()
	if err := e.Attestations.Add(standard.Attestation{Item: "第2-3-(2)", AttestedBy: "tanaka", Statement: "2026年度 操作・セキュリティ研修 | 受講記録 training/2026.pdf",
		Date: now.Add(-time.Hour), Expires: now.AddDate(1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	// An automated item's attestation is refused by the store; one
	// written into the file by hand is refused when the store is read.
	line := `{"item":"第4-4-(6)","attested_by":"tanaka","statement":"x","date":"2026-01-01T00:00:00Z","expires":"2027-01-01T00:00:00Z"}` + "\n"
	other := filepath.Join(t.TempDir(), standard.AttestationsFile)
	if err := os.WriteFile(other, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := standard.OpenFileAttestations(other); err == nil {
		t.Error("a store attesting an automated item was read")
	}

	rep := Run(context.Background(), e)
	if len(rep.Items) != len(standard.Catalogue()) {
		t.Fatalf("%d results", len(rep.Items))
	}
	var sum Summary
	for i, it := range rep.Items {
		if it.ID != standard.Catalogue()[i].ID || it.Kind != standard.Catalogue()[i].Kind {
			t.Errorf("result %d is %s (%s), want %s", i, it.ID, it.Kind, standard.Catalogue()[i].ID)
		}
		sum.add(it.Status)
		switch it.Kind {
		case standard.Automated:
			if it.Status != StatusPass && it.Status != StatusFail {
				t.Errorf("%s: automated item %s", it.ID, it.Status)
			}
			if len(it.Checks) != len(standard.Catalogue()[i].Checks) {
				t.Errorf("%s: %d check results", it.ID, len(it.Checks))
			}
		case standard.AttestationKind:
			if it.Status != StatusAttested && it.Status != StatusUnattested {
				t.Errorf("%s: attestation item %s", it.ID, it.Status)
			}
		}
		if it.Reason == "" || strings.ContainsAny(it.Reason, "\r\n") {
			t.Errorf("%s: reason %q", it.ID, it.Reason)
		}
	}
	if sum != rep.Summary || sum.Items != 69 || sum.Attested != 1 {
		t.Errorf("summary %+v, counted %+v", rep.Summary, sum)
	}
	byID := map[string]ItemResult{}
	for _, it := range rep.Items {
		byID[it.ID] = it
	}
	for id, want := range map[string]Status{
		"第2-3-(2)":  StatusAttested,
		"第2-3-(1)":  StatusUnattested,
		"第4-4-(6)":  StatusPass,
		"第4-5-(3)":  StatusPass,
		"第4-7-(4)":  StatusFail, // no scanner on the dev nodes
		"第4-8-(1)":  StatusPass, // the dev nodes keep records 7 years
		"第4-4-(1)":  StatusFail, // no second approver
		"第4-10-(1)": StatusPass,
	} {
		if got := byID[id]; got.Status != want {
			t.Errorf("%s: %s (%s), want %s", id, got.Status, got.Reason, want)
		}
	}
	if a := byID["第2-3-(2)"].Attestation; a == nil || a.AttestedBy != "tanaka" {
		t.Errorf("attestation not reported: %+v", byID["第2-3-(2)"])
	}

	dir := filepath.Join(t.TempDir(), "out")
	doc := NewDocument(now, rep)
	md, js, err := doc.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, h := range []string{"# 自己点検結果", "| 項番 | 項目 | 結果 | 根拠 |", "第4-4-(2) | 端末機の操作者の認証 | 適合 (pass)", "未確認 (unattested)"} {
		if !strings.Contains(text, h) {
			t.Errorf("selfcheck.md lacks %q", h)
		}
	}
	if strings.Count(text, "\n| 第") != 69 {
		t.Errorf("selfcheck.md has %d item rows", strings.Count(text, "\n| 第"))
	}
	if !strings.Contains(text, `受講記録 training/2026.pdf`) || !strings.Contains(text, `研修 \| 受講記録`) {
		t.Errorf("a | in a reason is not escaped")
	}
	jb, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(jb, &back); err != nil {
		t.Fatal(err)
	}
	if back.Total != rep.Summary || len(back.Reports) != 1 || len(back.Reports[0].Items) != 69 {
		t.Errorf("selfcheck.json: total %+v, %d reports", back.Total, len(back.Reports))
	}
	var tb strings.Builder
	if err := WriteTable(&tb, rep, 40); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(tb.String(), "\n"); n != 70 {
		t.Errorf("table of %d lines", n)
	}
}

// TestCombine checks how several processes' results add up.
func TestCombine(t *testing.T) {
	mk := func(statuses map[string]Status) *Report {
		r := &Report{}
		for _, it := range standard.Catalogue() {
			st := StatusPass
			if it.Kind == standard.AttestationKind {
				st = StatusAttested
			}
			if s, ok := statuses[it.ID]; ok {
				st = s
			}
			r.Items = append(r.Items, ItemResult{ID: it.ID, Kind: it.Kind, Status: st})
			r.Summary.add(st)
		}
		return r
	}
	a := mk(map[string]Status{"第4-4-(6)": StatusFail})
	b := mk(map[string]Status{"第2-1-(1)": StatusUnattested})
	s := Combine([]*Report{a, b})
	if s.Items != 69 || s.Fail != 1 || s.Unattested != 1 || s.Pass != 21 || s.Attested != 46 {
		t.Errorf("Combine = %+v", s)
	}
	if s := Combine(nil); s.Items != 0 {
		t.Errorf("Combine(nil) = %+v", s)
	}
}

// TestLoad checks what Load refuses and what it leaves to the checks.
func TestLoad(t *testing.T) {
	f := newFixture(t, false)
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("a missing configuration loaded")
	}
	bad := filepath.Join(filepath.Dir(f.lay.HubConfig), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"role":"router"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("role router: %v", err)
	}
	e := mustLoad(t, f.lay.HubConfig)
	if e.Role != "hub" || e.Hub == nil || e.Directory == nil || e.BackupsWritten() {
		t.Errorf("hub: role %s, directory %v (%v), backups %v", e.Role, e.Directory != nil, e.DirectoryErr, e.BackupsWritten())
	}
	f.seed(t, f.lay.HubConfig, 1, true)
	if !e.BackupsWritten() {
		t.Error("backups not seen after a backup")
	}
	// A directory whose signature does not verify: loaded, and every
	// check that needs it fails.
	doc := e.Common.Directory
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var signed map[string]any
	if err := json.Unmarshal(b, &signed); err != nil {
		t.Fatal(err)
	}
	signed["signature"] = "AAAA"
	b, _ = json.Marshal(signed)
	if err := os.WriteFile(doc, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e = mustLoad(t, sapporo(f))
	if e.Directory != nil || e.DirectoryErr == nil {
		t.Fatalf("tampered directory accepted")
	}
	rep := Run(context.Background(), e)
	for _, it := range rep.Items {
		if it.ID == "第4-3-(2)" && (it.Status != StatusFail || !strings.Contains(it.Reason, "directory")) {
			t.Errorf("第4-3-(2) with a tampered directory: %s %s", it.Status, it.Reason)
		}
	}
}
