package selfcheck

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"taxlink/internal/standard"
)

var t0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// TestAttestationStatus runs the attestation items through Run's status:
// attested while in force, and the reason once it expired.
func TestAttestationStatus(t *testing.T) {
	st, err := standard.OpenFileAttestations(filepath.Join(t.TempDir(), standard.AttestationsFile))
	if err != nil {
		t.Fatal(err)
	}
	a := standard.Attestation{Item: "第4-1-(1)", AttestedBy: "tanaka", Statement: "情報セキュリティ研修を実施（記録: 研修台帳 2026-04）", Date: t0, Expires: t0.AddDate(1, 0, 0)}
	if err := st.Add(a); err != nil {
		t.Fatal(err)
	}
	e := &Env{Attestations: st, Now: t0.AddDate(0, 6, 0)}
	if s, reason, got := attestationStatus(e, "第4-1-(1)"); s != StatusAttested || got == nil || !strings.Contains(reason, "tanaka") {
		t.Errorf("in force: %s %q", s, reason)
	}
	e.Now = t0.AddDate(1, 0, 1)
	if s, reason, _ := attestationStatus(e, "第4-1-(1)"); s != StatusUnattested || !strings.Contains(reason, "expired") {
		t.Errorf("expired: %s %q", s, reason)
	}
	if s, reason, _ := attestationStatus(e, "第4-1-(2)"); s != StatusUnattested || reason != "no attestation recorded" {
		t.Errorf("none: %s %q", s, reason)
	}
}
