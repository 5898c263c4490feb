package selfcheck

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"taxlink/internal/standard"
	"testing"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/devnet"
	"taxlink/internal/ledger"
	"taxlink/internal/metrics"
	"taxlink/internal/notekey"
	"taxlink/internal/operator"
)

// fixture is a dev network written by devnet.Init (not started).
type fixture struct {
	lay *devnet.Layout
}

func newFixture(t *testing.T, seed bool) *fixture {
	t.Helper()
	lay, err := devnet.Init(filepath.Join(t.TempDir(), "net"), devnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{lay: lay}
	if seed {
		for _, cfg := range f.configs() {
			f.seed(t, cfg, 3, true)
		}
	}
	return f
}

func (f *fixture) configs() []string {
	out := []string{f.lay.HubConfig}
	for _, n := range f.lay.Nodes {
		out = append(out, n.Config)
	}
	return out
}

func (f *fixture) node(id string) string {
	n, ok := f.lay.Node(id)
	if !ok {
		panic("no node " + id)
	}
	return n.Config
}

// hubCfg, sapporo, outsourcer name the configurations cases run on.
func hubCfg(f *fixture) string     { return f.lay.HubConfig }
func sapporo(f *fixture) string    { return f.node(devnet.SapporoID) }
func outsourcer(f *fixture) string { return f.node(devnet.OutsourcerID) }

// seed appends n entries to each log the process of cfg keeps (audit
// events; the hub's ledger too), signs a checkpoint and, with backup,
// copies the logs to backup.dir, as the daemon does.
func (f *fixture) seed(t *testing.T, cfg string, n int, backup bool) {
	t.Helper()
	ctx := context.Background()
	e := mustLoad(t, cfg)
	key, err := devnet.ReadKey(f.lay, strings.TrimPrefix(e.Common.SigningKey, "enc:"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := notekey.NewSigner(e.Common.ID, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := notekey.NewVerifier(e.Common.ID, key.Public().(*ecdsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	r := &runState{env: e}
	for _, kind := range r.backedUp() {
		opts := ledger.Options{Origin: r.origin(kind), Signer: s, Verifier: v}
		dir := filepath.Join(e.Common.DataDir, kind)
		var (
			l     *ledger.Log
			close func() error
		)
		if kind == "audit" {
			al, err := audit.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if _, err := al.Record(ctx, audit.Event{Actor: "system", Action: "start", Object: e.Common.ID, From: "local", Result: audit.ResultOK}); err != nil {
					t.Fatal(err)
				}
			}
			l, close = al.Ledger(), al.Close
		} else {
			l, err = ledger.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if _, err := l.Append(ctx, fmt.Appendf(nil, "entry %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			close = l.Close
		}
		if _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if backup {
			if err := ledger.Backup(ctx, l, filepath.Join(e.Common.Backup.Dir, kind)); err != nil {
				t.Fatal(err)
			}
		}
		if err := close(); err != nil {
			t.Fatal(err)
		}
	}
}

// mustLoad loads cfg for checks of configuration and files only.
func mustLoad(t *testing.T, cfg string) *Env {
	t.Helper()
	e, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.Live.Off = true
	return e
}

// runOne runs one check on e.
func runOne(ctx context.Context, e *Env, name string) finding {
	return safe(ctx, &runState{env: e}, checkFuncs[name])
}

// operators opens the console state of cfg.
func operators(t *testing.T, cfg string) *operator.Store {
	t.Helper()
	e := mustLoad(t, cfg)
	st, err := operator.Open(operator.Config{Path: e.Common.Console.State, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// enrol makes operator id (role) active: the dev administrator is
// activated first (bootstrap), then invites and approves id.
func enrol(t *testing.T, st *operator.Store, id string, role operator.Role, g operator.Grant) {
	t.Helper()
	ctx := context.Background()
	if a, _ := st.Get(ctx, devnet.DevAdmin); a.State != operator.StateActive {
		if err := st.AddCredential(ctx, devnet.DevAdmin, []byte("cred-admin"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := st.Bootstrap(ctx, devnet.DevAdmin); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Invite(ctx, devnet.DevAdmin, operator.Operator{ID: id, Name: "テスト " + id, Role: role, Grant: g}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddCredential(ctx, id, []byte("cred-"+id), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.Approve(ctx, devnet.DevAdmin, id); err != nil {
		t.Fatal(err)
	}
}

// checkCase is one configuration or state and the outcome it must give.
type checkCase struct {
	name  string
	check string
	cfg   func(*fixture) string
	// prep changes the Env (every case) or the files (fresh cases only).
	prep func(t *testing.T, f *fixture, e *Env)
	want bool
	in   string // a part of the reason
}

func runCases(t *testing.T, f *fixture, cases []checkCase, fresh func(t *testing.T) *fixture) {
	for _, tc := range cases {
		t.Run(tc.check+"/"+tc.name, func(t *testing.T) {
			fx := f
			if fresh != nil {
				fx = fresh(t)
			}
			e := mustLoad(t, tc.cfg(fx))
			if tc.prep != nil {
				tc.prep(t, fx, e)
			}
			got := runOne(context.Background(), e, tc.check)
			if got.ok != tc.want || !strings.Contains(got.reason, tc.in) {
				t.Errorf("%s: ok=%v %q; want ok=%v containing %q", tc.check, got.ok, got.reason, tc.want, tc.in)
			}
			if strings.ContainsAny(got.reason, "\n\r") {
				t.Errorf("reason spans lines: %q", got.reason)
			}
			if pass, err := os.ReadFile(filepath.Join(fx.lay.Dir, "pki", "dev-passphrase")); err == nil && strings.Contains(got.reason, string(pass)) {
				t.Errorf("reason holds the passphrase")
			}
		})
	}
}

// TestChecksOnConfiguration runs each automated check on a seeded dev
// network (logs written and backed up, as after a run) with a passing
// and a failing configuration; these cases change only the loaded Env.
func TestChecksOnConfiguration(t *testing.T) {
	f := newFixture(t, true)
	now := time.Now()
	cases := []checkCase{
		{"configured", standard.ChkMonitoring, hubCfg, nil, true, "metrics_listen 127.0.0.1:0 configured"},
		{"no metrics_listen", standard.ChkMonitoring, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.MetricsListen = "" }, false, "not configured"},

		{"offline", standard.ChkTLS13, hubCfg, nil, true, "by construction"},

		{"node holds its keys", standard.ChkSealing, sapporo, nil, true, "every one of 1 tenants"},
		{"outsourcer holds its keys", standard.ChkSealing, outsourcer, nil, true, "every one of 3 tenants"},
		{"hub", standard.ChkSealing, hubCfg, nil, true, "not applicable"},
		{"key missing", standard.ChkSealing, outsourcer, func(t *testing.T, f *fixture, e *Env) { e.Node.SealingKeys = e.Node.SealingKeys[:2] }, false, "does not hold"},
		{"no directory", standard.ChkSealing, sapporo, func(t *testing.T, f *fixture, e *Env) {
			e.Directory, e.DirectoryErr = nil, fmt.Errorf("signature does not verify")
		}, false, "signature does not verify"},

		{"closed", standard.ChkDataPerms, sapporo, nil, true, "data_dir, backup.dir, console.state"},
		{"no data_dir", standard.ChkDataPerms, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.DataDir += "-missing" }, false, "data_dir"},

		{"deny by default", standard.ChkPolicy, hubCfg, nil, true, "3 allow rules, everything else denied"},
		{"node", standard.ChkPolicy, sapporo, nil, true, "verifies"},
		{"not the directory's hub", standard.ChkPolicy, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.ID = "hub:other" }, false, "not hub:other"},
		{"directory refused", standard.ChkPolicy, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Directory, e.DirectoryErr = nil, fmt.Errorf("directory: signature does not verify")
		}, false, "signature"},

		{"explicit", standard.ChkListenAddrs, hubCfg, nil, true, "explicit addresses"},
		{"wildcard service", standard.ChkListenAddrs, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Listen = "0.0.0.0:7443" }, false, "binds every interface"},
		{"wildcard metrics", standard.ChkListenAddrs, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.MetricsListen = ":9100" }, false, "metrics_listen"},
		{"wildcard console v6", standard.ChkListenAddrs, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.Listen = "[::]:8443" }, false, "console.listen"},

		{"offline", standard.ChkStray, hubCfg, nil, true, "not inspected"},

		{"hub", standard.ChkIdentity, hubCfg, nil, true, "taxlink://dev/hub:kiko"},
		{"node", standard.ChkIdentity, outsourcer, nil, true, "only the hub hub:kiko is admitted"},
		{"someone else's certificate", standard.ChkIdentity, sapporo, func(t *testing.T, f *fixture, e *Env) {
			e.Common.TLS.Cert = filepath.Join(filepath.Dir(f.node(devnet.TokyoID)), "tls.pem")
		}, false, "names taxlink://dev/lg:130001"},
		{"certificate of another CA", standard.ChkIdentity, sapporo, func(t *testing.T, f *fixture, e *Env) {
			other := newFixture(t, false)
			e.Common.TLS.Cert = filepath.Join(filepath.Dir(other.node(devnet.SapporoID)), "tls.pem")
		}, false, "does not verify against tls.ca"},
		{"no CRL", standard.ChkIdentity, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.TLS.CRL = nil }, false, "no tls.crl"},
		{"CRL expired", standard.ChkIdentity, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, 0, 31) }, false, "expired"},
		{"wrong hub", standard.ChkIdentity, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Node.HubID = "hub:other" }, false, "hub_id hub:other"},
		{"wrong hub URL", standard.ChkIdentity, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Node.HubURL = "https://127.0.0.1:1" }, false, "hub_url"},

		{"valid", standard.ChkCerts, hubCfg, nil, true, "certificates valid"},
		{"expiring in 30 days", standard.ChkCerts, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, 0, 70) }, true, "warning"},
		{"expiring in 7 days", standard.ChkCerts, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, 0, 85) }, false, "renew it now"},
		{"expired", standard.ChkCerts, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, 0, 100) }, false, "expired"},
		{"not yet valid", standard.ChkCerts, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, 0, -1) }, false, "not valid before"},

		{"configured", standard.ChkConsole, hubCfg, nil, true, "console on 127.0.0.1:"},
		{"none", standard.ChkConsole, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.Console = nil }, false, "no console"},

		{"only an invited admin", standard.ChkTwoPerson, hubCfg, nil, false, "0 active operators"},
		{"no console", standard.ChkTwoPerson, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console = nil }, false, "no console"},

		{"default idle", standard.ChkOperatorAuth, hubCfg, nil, true, "after 15m0s idle"},
		{"10m idle", standard.ChkOperatorAuth, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.Idle = "10m" }, true, "after 10m0s idle"},
		{"30m idle", standard.ChkOperatorAuth, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.Idle = "30m" }, false, "more than 15m0s"},
		{"webauthn only", standard.ChkOperatorAuth, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.ClientCA = "" }, true, "WebAuthn"},
		{"no console", standard.ChkOperatorAuth, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console = nil }, false, "no console"},

		{"default policy", standard.ChkPIN, hubCfg, nil, true, "at least 8 characters"},
		{"6 characters", standard.ChkPIN, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.PIN.MinLength = 6 }, true, "at least 6"},
		{"4 characters", standard.ChkPIN, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.PIN.MinLength = 4 }, false, "shorter than 6"},
		{"no PIN sign-in", standard.ChkPIN, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.ClientCA = "" }, true, "not enabled"},

		{"hub", standard.ChkGrants, hubCfg, nil, true, "not applicable"},
		{"no data users", standard.ChkGrants, outsourcer, nil, true, "0 data users"},

		{"verifies", standard.ChkAudit, sapporo, nil, true, "3 events"},
		{"no directory", standard.ChkAudit, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Directory, e.DirectoryErr = nil, fmt.Errorf("gone") }, false, "gone"},

		{"default 5", standard.ChkLockout, hubCfg, nil, true, "after 5 consecutive"},
		{"10", standard.ChkLockout, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.LockoutAfter = 10 }, true, "after 10"},
		{"11", standard.ChkLockout, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.LockoutAfter = 11 }, false, "lockout_after 11"},
		{"no console", standard.ChkLockout, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console = nil }, false, "no console"},

		{"dev same host", standard.ChkConsoleLine, hubCfg, nil, true, "allowed in dev only"},
		{"production same host", standard.ChkConsoleLine, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Environment = "production" }, false, "service network"},
		{"production admin network", standard.ChkConsoleLine, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.Environment, e.Common.Console.Listen = "production", "10.1.0.5:8443"
		}, true, "own admin listener 10.1.0.5:8443"},
		{"same listener", standard.ChkConsoleLine, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console.Listen = e.Common.Listen }, false, "is the service listener"},
		{"no console", standard.ChkConsoleLine, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Console = nil }, false, "no console"},

		{"encrypted", standard.ChkKeys, outsourcer, nil, true, "6 keys: 6 encrypted"},
		{"hub with directory key", standard.ChkKeys, hubCfg, nil, true, "4 keys: 4 encrypted"},
		{"token", standard.ChkKeys, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.SigningKey = "pkcs11:token=tl;object=signing" }, true, "1 on a PKCS#11 token"},
		{"clear key in production", standard.ChkKeys, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.Environment = "production"
			e.Common.TLS.Key = "file:" + strings.TrimPrefix(e.Common.TLS.Key, "enc:")
		}, false, "in the clear (file:) in environment production"},
		{"clear key in dev", standard.ChkKeys, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.TLS.Key = "file:" + strings.TrimPrefix(e.Common.TLS.Key, "enc:")
		}, true, "allowed in dev only"},

		{"hub", standard.ChkLedger, hubCfg, nil, true, "3 entries"},
		{"node", standard.ChkLedger, sapporo, nil, true, "not applicable"},

		{"current", standard.ChkBackup, hubCfg, nil, true, "ledger: copy holds all 3 entries; audit: copy holds all 3 entries"},
		{"node", standard.ChkBackup, outsourcer, nil, true, "audit: copy holds all 3"},
		{"not configured", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Common.Backup.Dir = "" }, false, "not configured"},

		{"dev same device", standard.ChkBackupMedium, hubCfg, nil, true, "allowed in dev only"},
		{"production same device", standard.ChkBackupMedium, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Environment = "production" }, false, "same device"},
		{"inside data_dir", standard.ChkBackupMedium, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Backup.Dir = filepath.Join(e.Common.DataDir, "copy") }, false, "inside data_dir"},
		{"not configured", standard.ChkBackupMedium, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Backup.Dir = "" }, false, "not configured"},

		{"dev single hub", standard.ChkRedundancy, hubCfg, nil, true, "allowed in dev only"},
		{"production single hub", standard.ChkRedundancy, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.Environment = "production" }, false, "a single hub"},
		{"replica", standard.ChkRedundancy, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.Environment = "production"
			e.Hub.Cluster = &config.HubCluster{Name: "kiko", Server: "hub-2", Listen: "10.0.1.12:6222", Routes: []string{"10.0.1.11:6222", "10.0.1.12:6222", "10.0.1.13:6222"}, Replicas: 3}
		}, true, "replica hub-2 of cluster kiko: every queue and the ledger on 3 replicas"},
		{"external R3", standard.ChkRedundancy, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Hub.JetStream = &config.HubJetStream{URL: "tls://js1:4222", Replicas: 3}
		}, true, "with 3 replicas"},
		{"external R1", standard.ChkRedundancy, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Hub.JetStream = &config.HubJetStream{URL: "tls://js1:4222", Replicas: 1}
		}, false, "keeps 1 copy"},
		{"node", standard.ChkRedundancy, sapporo, nil, true, "not applicable"},

		{"hub", standard.ChkScanner, hubCfg, nil, true, "not applicable"},
		{"none", standard.ChkScanner, sapporo, nil, false, "no scanner"},
		{"configured, offline", standard.ChkScanner, sapporo, func(t *testing.T, f *fixture, e *Env) {
			e.Node.Scanner = &config.Scanner{Clamd: "unix:/run/clamav/clamd.ctl"}
		}, true, "configured"},

		{"hub", standard.ChkRetention, hubCfg, nil, true, "not applicable"},
		{"none", standard.ChkRetention, sapporo, func(t *testing.T, f *fixture, e *Env) { e.Node.Retention = nil }, false, "1 of 1 tenants (lg:011002)"},
		{"every tenant", standard.ChkRetention, sapporo, func(t *testing.T, f *fixture, e *Env) {
			e.Node.Retention = []config.RetentionRule{{Tenant: devnet.SapporoID, Keep: "7y"}}
		}, true, "every one of 1 tenants"},
		{"one tenant of three", standard.ChkRetention, outsourcer, func(t *testing.T, f *fixture, e *Env) {
			e.Node.Retention = []config.RetentionRule{{Tenant: "lg:013030", Type: "income-tax-return", Keep: "7y"}}
		}, false, "2 of 3 tenants (lg:013315, lg:013323)"},

		{"room", standard.ChkDisk, hubCfg, nil, true, "free in data_dir"},
		{"below the minimum", standard.ChkDisk, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Common.MinFreeBytes = 1 << 62 }, false, "below min_free_bytes"},
		{"close to the minimum", standard.ChkDisk, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.MinFreeBytes = int64(metrics.DiskFree(e.Common.DataDir) * 0.6)
		}, true, "warning"},

		{"hub sees every node", standard.ChkCertification, hubCfg, nil, true, "certified outsourcers (certification in force, audited within a year): 1; self-hosted: 3"},
		{"outsourcer", standard.ChkCertification, outsourcer, nil, true, "certified outsourcers (certification in force, audited within a year): 1; self-hosted: 0"},
		{"self-hosted", standard.ChkCertification, sapporo, nil, true, "self-hosted: 1"},
		{"lapsed", standard.ChkCertification, outsourcer, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(1, 0, 2) }, false, "lapsed"},
		{"not yet", standard.ChkCertification, hubCfg, func(t *testing.T, f *fixture, e *Env) { e.Now = now.AddDate(0, -2, 0) }, false, "starts"},
		{"ends within 7 days", standard.ChkCertification, hubCfg, func(t *testing.T, f *fixture, e *Env) { cert(t, e).Until = now.Add(3 * 24 * time.Hour) }, false, "in 3 days"},
		{"ends within 30 days", standard.ChkCertification, hubCfg, func(t *testing.T, f *fixture, e *Env) { cert(t, e).Until = now.AddDate(0, 0, 20) }, true, "warning"},
		{"audit too old", standard.ChkCertification, outsourcer, func(t *testing.T, f *fixture, e *Env) { cert(t, e).LastAudit = now.AddDate(-1, -1, 0) }, false, "more than a year ago"},
		{"no audit", standard.ChkCertification, outsourcer, func(t *testing.T, f *fixture, e *Env) { cert(t, e).LastAudit = time.Time{} }, false, "no audit date"},
		{"company without certification", standard.ChkCertification, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			n, _ := e.Directory.Node(devnet.OutsourcerID)
			n.Operator = ""
		}, false, "names no certified outsourcer"},

		{"in place", standard.ChkAuthMonitoring, hubCfg, nil, true, "audit log"},
		{"no console, no metrics", standard.ChkAuthMonitoring, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			e.Common.Console, e.Common.MetricsListen = nil, ""
		}, false, "no metrics_listen"},
	}
	runCases(t, f, cases, nil)
}

// cert returns the dev outsourcer's certification in e's directory.
func cert(t *testing.T, e *Env) *struct {
	From, Until, LastAudit time.Time
} {
	t.Helper()
	p, err := e.Directory.Participant(devnet.OutsourcerID)
	if err != nil {
		t.Fatal(err)
	}
	return (*struct{ From, Until, LastAudit time.Time })(p.Certification)
}

// TestChecksOnState runs the checks whose failing cases change files: each
// case gets a dev network of its own.
func TestChecksOnState(t *testing.T) {
	chmod := func(path func(e *Env) string, mode os.FileMode) func(t *testing.T, f *fixture, e *Env) {
		return func(t *testing.T, f *fixture, e *Env) {
			if err := os.Chmod(path(e), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	flip := func(path func(e *Env) string) func(t *testing.T, f *fixture, e *Env) {
		return func(t *testing.T, f *fixture, e *Env) {
			p := path(e)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-3] ^= 1 // inside the last record's data
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	auditEntries := func(e *Env) string { return filepath.Join(e.Common.DataDir, "audit", "entries") }
	cases := []checkCase{
		{"data_dir open to others", standard.ChkDataPerms, sapporo, chmod(func(e *Env) string { return e.Common.DataDir }, 0o755), false, "mode 0755"},
		{"backup.dir open to others", standard.ChkDataPerms, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 1, true)
			chmod(func(e *Env) string { return e.Common.Backup.Dir }, 0o750)(t, f, e)
		}, false, "backup.dir"},
		{"console state readable", standard.ChkDataPerms, hubCfg, chmod(func(e *Env) string { return e.Common.Console.State }, 0o640), false, "console.state"},
		{"configuration writable", standard.ChkDataPerms, hubCfg, chmod(func(e *Env) string { return e.ConfigPath }, 0o666), false, "writable by group or others"},

		{"key file readable", standard.ChkKeys, sapporo, chmod(func(e *Env) string { return strings.TrimPrefix(e.Common.SigningKey, "enc:") }, 0o644), false, "group or others have access"},
		{"sealing key readable", standard.ChkKeys, outsourcer, chmod(func(e *Env) string { return strings.TrimPrefix(e.Node.SealingKeys[1].File, "enc:") }, 0o640), false, "sealing_keys[1]"},
		{"passphrase readable", standard.ChkKeys, hubCfg, chmod(func(e *Env) string { return e.Common.Keys.PassphraseFile }, 0o644), false, "keys.passphrase_file"},

		{"two approvers", standard.ChkTwoPerson, sapporo, func(t *testing.T, f *fixture, e *Env) {
			enrol(t, operators(t, e.ConfigPath), "sato", operator.RoleSecurity, operator.Grant{})
		}, true, "2 active operators"},
		{"an approver and an operator", standard.ChkTwoPerson, sapporo, func(t *testing.T, f *fixture, e *Env) {
			enrol(t, operators(t, e.ConfigPath), "suzuki", operator.RoleOperator, operator.Grant{})
		}, false, "1 active operators"},

		{"data user of every tenant", standard.ChkGrants, outsourcer, func(t *testing.T, f *fixture, e *Env) {
			enrol(t, operators(t, e.ConfigPath), "yamada", operator.RoleDataUser, operator.Grant{Tenants: []string{"*"}, Types: []string{"*"}})
		}, false, "1 of 1 data users are granted every tenant"},
		{"data user of one tenant", standard.ChkGrants, outsourcer, func(t *testing.T, f *fixture, e *Env) {
			enrol(t, operators(t, e.ConfigPath), "yamada", operator.RoleDataUser, operator.Grant{Tenants: []string{"lg:013030"}, Types: []string{"*"}})
		}, true, "1 data users"},
		{"every tenant of a single-tenant node", standard.ChkGrants, sapporo, func(t *testing.T, f *fixture, e *Env) {
			enrol(t, operators(t, e.ConfigPath), "yamada", operator.RoleDataUser, operator.Grant{Tenants: []string{"*"}, Types: []string{"*"}})
		}, true, "1 data users"},

		{"never ran", standard.ChkAudit, sapporo, nil, false, "no audit log"},
		{"tampered", standard.ChkAudit, sapporo, func(t *testing.T, f *fixture, e *Env) { f.seed(t, e.ConfigPath, 3, false); flip(auditEntries)(t, f, e) }, false, "does not verify"},
		{"never ran", standard.ChkAuthMonitoring, sapporo, nil, false, "no audit log"},

		{"never ran", standard.ChkLedger, hubCfg, nil, false, "no ledger"},
		{"tampered", standard.ChkLedger, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, false)
			flip(func(e *Env) string { return filepath.Join(e.Common.DataDir, "ledger", "entries") })(t, f, e)
		}, false, "does not verify"},

		{"never ran", standard.ChkBackup, sapporo, nil, false, "no audit log in data_dir"},
		{"no copy yet", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) { f.seed(t, e.ConfigPath, 3, false) }, false, "no copy of the audit log"},
		{"copy lags, written just now", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, true)
			f.seed(t, e.ConfigPath, 2, false)
		}, true, "copy holds 3 of 5 entries"},
		{"copy lags, written long ago", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, true)
			f.seed(t, e.ConfigPath, 2, false)
			old := time.Now().Add(-time.Hour)
			for _, n := range []string{"entries", "hashes", "checkpoints", "head"} {
				if err := os.Chtimes(filepath.Join(e.Common.Backup.Dir, "audit", n), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}, false, "holds 3 of 5 entries and was last written 1h0m0s ago"},
		{"idle copy written long ago", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, true)
			old := time.Now().Add(-time.Hour)
			for _, n := range []string{"entries", "hashes", "checkpoints", "head"} {
				if err := os.Chtimes(filepath.Join(e.Common.Backup.Dir, "audit", n), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}, true, "copy holds all 3 entries"},
		{"copy tampered", standard.ChkBackup, sapporo, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, true)
			flip(func(e *Env) string { return filepath.Join(e.Common.Backup.Dir, "audit", "entries") })(t, f, e)
		}, false, "does not verify against the live log"},
		{"copy of another log", standard.ChkBackup, hubCfg, func(t *testing.T, f *fixture, e *Env) {
			f.seed(t, e.ConfigPath, 3, true)
			if err := os.RemoveAll(filepath.Join(e.Common.Backup.Dir, "audit")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(e.Common.Backup.Dir, "ledger"), filepath.Join(e.Common.Backup.Dir, "audit")); err != nil {
				t.Fatal(err)
			}
		}, false, "no copy of the ledger log"},
	}
	runCases(t, nil, cases, func(t *testing.T) *fixture { return newFixture(t, false) })
}
