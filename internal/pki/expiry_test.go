package pki

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestExpiryWarnings(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	ca := mustCA(t, "taxlink test CA", now.Add(-time.Hour)) // valid until now+23h
	id := Identity{Env: EnvTest, ID: "lg:011002"}
	soon := leafValid(t, ca, id, true, true, now.Add(-50*time.Minute), time.Hour).Leaf    // 10 minutes left
	expired := leafValid(t, ca, id, true, true, now.Add(-2*time.Hour), time.Hour).Leaf    // expired an hour ago
	exactly := leafValid(t, ca, id, true, true, now.Add(-30*time.Minute), time.Hour).Leaf // 30 minutes left
	later := leafValid(t, ca, id, true, true, now.Add(-time.Minute), 20*time.Hour).Leaf   // hours left
	expiresNow := leafValid(t, ca, id, true, true, now.Add(-time.Hour), time.Hour).Leaf   // NotAfter == now
	caSubject := "CN=taxlink test CA"

	tests := []struct {
		name  string
		certs []*x509.Certificate
		ahead time.Duration
		want  []Warning
	}{
		{"nothing due", []*x509.Certificate{later, ca.Cert}, time.Hour, nil},
		{"nil certificates skipped", []*x509.Certificate{nil, later}, time.Hour, nil},
		{"empty", nil, time.Hour, nil},
		{"one due soon", []*x509.Certificate{later, soon}, time.Hour, []Warning{
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: soon.NotAfter, Left: 10 * time.Minute},
		}},
		{"horizon is inclusive", []*x509.Certificate{exactly}, 30 * time.Minute, []Warning{
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: exactly.NotAfter, Left: 30 * time.Minute},
		}},
		{"expired, sorted most urgent first", []*x509.Certificate{soon, expired, later}, time.Hour, []Warning{
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: expired.NotAfter, Left: -time.Hour, Expired: true},
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: soon.NotAfter, Left: 10 * time.Minute},
		}},
		{"zero horizon reports only expired or expiring now", []*x509.Certificate{soon, expired, expiresNow}, 0, []Warning{
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: expired.NotAfter, Left: -time.Hour, Expired: true},
			{Kind: WarningCertificate, Subject: "CN=" + id.String(), Identity: id.String(), NotAfter: expiresNow.NotAfter, Left: 0},
		}},
		{"CA certificate has no identity", []*x509.Certificate{ca.Cert}, 24 * time.Hour, []Warning{
			{Kind: WarningCertificate, Subject: caSubject, NotAfter: ca.Cert.NotAfter, Left: 23 * time.Hour},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ExpiryWarnings(tc.certs, now, tc.ahead)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d warnings %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("warning %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestCRLExpiryWarnings(t *testing.T) {
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	ca := mustCA(t, "taxlink test CA", now.Add(-time.Hour))
	crl := func(issued time.Time, next time.Duration) *x509.RevocationList {
		der, err := ca.CRL(nil, issued, next)
		if err != nil {
			t.Fatal(err)
		}
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return rl
	}
	fresh := crl(now, 24*time.Hour)
	due := crl(now.Add(-23*time.Hour), 24*time.Hour) // next update in an hour
	overdue := crl(now.Add(-25*time.Hour), 24*time.Hour)

	got := CRLExpiryWarnings([]*x509.RevocationList{fresh, nil, due, overdue}, now, 2*time.Hour)
	want := []Warning{
		{Kind: WarningCRL, Subject: "CN=taxlink test CA", NotAfter: overdue.NextUpdate, Left: -time.Hour, Expired: true},
		{Kind: WarningCRL, Subject: "CN=taxlink test CA", NotAfter: due.NextUpdate, Left: time.Hour},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("warning %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Through a Revocation, with its clock and within the grace period.
	dir := t.TempDir()
	path := writeCRL(t, dir, "ca.crl", ca, now.Add(-23*time.Hour), 24*time.Hour)
	clock := newTestClock(now)
	rev := mustRevocation(t, clock.Now, 2*time.Hour, []*x509.Certificate{ca.Cert}, path)
	if ws := rev.ExpiryWarnings(30 * time.Minute); ws != nil {
		t.Errorf("warnings %+v an hour before NextUpdate with a 30-minute horizon; want none", ws)
	}
	clock.Set(now.Add(90 * time.Minute))
	ws := rev.ExpiryWarnings(30 * time.Minute)
	if len(ws) != 1 || !ws[0].Expired || ws[0].Left != -30*time.Minute || ws[0].Kind != WarningCRL {
		t.Errorf("warnings %+v within the grace period; want one expired CRL, 30 minutes over", ws)
	}
}
