package selfcheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"taxlink/internal/standard"
	"time"

	"golang.org/x/mod/sumdb/note"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/directory"
	"taxlink/internal/keystore"
	"taxlink/internal/ledger"
	"taxlink/internal/metrics"
	"taxlink/internal/notekey"
	"taxlink/internal/operator"
	"taxlink/internal/pki"
	"taxlink/internal/scan"
)

// Thresholds of the checks (see the package documentation).
const (
	// CertFailWithin: a certificate expiring sooner fails.
	CertFailWithin = 7 * 24 * time.Hour
	// CertWarnWithin: a certificate expiring sooner passes with a warning.
	CertWarnWithin = 30 * 24 * time.Hour
	// MaxIdle is the longest idle time before re-authentication.
	MaxIdle = 15 * time.Minute
	// MaxLockoutAfter is the most consecutive failures before lockout.
	MaxLockoutAfter = 10
	// MinPINLength is the shortest PIN policy accepted.
	MinPINLength = 6
	// MaxAuditAge is the longest time since an outsourcer's last audit.
	MaxAuditAge = 366 * 24 * time.Hour
	// defaultMinFree is the daemon's default of min_free_bytes.
	defaultMinFree = 512 << 20
	// defaultIdle and defaultLockout are the console's defaults.
	defaultIdle    = 15 * time.Minute
	defaultLockout = operator.DefaultLockoutAfter
)

// finding is the outcome of one check: pass or fail, and why, on one line.
type finding struct {
	ok     bool
	reason string
}

func pass(format string, a ...any) finding { return finding{true, fmt.Sprintf(format, a...)} }
func fail(format string, a ...any) finding { return finding{false, fmt.Sprintf(format, a...)} }

// checkFunc is one check. It may use the run's shared state (r) for what
// several checks need (whether the process runs, the directory).
type checkFunc func(ctx context.Context, r *runState) finding

// checkFuncs maps the names the catalogue uses to the checks.
var checkFuncs = map[string]checkFunc{
	standard.ChkMonitoring:     checkMonitoring,
	standard.ChkTLS13:          checkTLS13,
	standard.ChkSealing:        checkSealing,
	standard.ChkDataPerms:      checkDataPerms,
	standard.ChkPolicy:         checkPolicy,
	standard.ChkListenAddrs:    checkListenAddrs,
	standard.ChkStray:          checkStray,
	standard.ChkIdentity:       checkIdentity,
	standard.ChkCerts:          checkCerts,
	standard.ChkConsole:        checkConsole,
	standard.ChkTwoPerson:      checkTwoPerson,
	standard.ChkOperatorAuth:   checkOperatorAuth,
	standard.ChkPIN:            checkPIN,
	standard.ChkGrants:         checkGrants,
	standard.ChkAudit:          checkAudit,
	standard.ChkLockout:        checkLockout,
	standard.ChkConsoleLine:    checkConsoleLine,
	standard.ChkKeys:           checkKeys,
	standard.ChkLedger:         checkLedger,
	standard.ChkBackup:         checkBackup,
	standard.ChkBackupMedium:   checkBackupMedium,
	standard.ChkScanner:        checkScanner,
	standard.ChkRetention:      checkRetention,
	standard.ChkDisk:           checkDisk,
	standard.ChkCertification:  checkCertification,
	standard.ChkAuthMonitoring: checkIntrusionDetection,
	standard.ChkRedundancy:     checkRedundancy,
}

// CheckNames returns the names of every check, sorted.
func CheckNames() []string {
	var out []string
	for n := range checkFuncs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// notRunning is the reason given when a live probe was not made.
func (r *runState) notRunning() string {
	if r.env.Live.Off {
		return "live probes off"
	}
	return "process not running (service listener does not answer)"
}

// ---------------------------------------------------------------------------
// Monitoring and the running process.

func checkMonitoring(ctx context.Context, r *runState) finding {
	c := r.env.Common
	if c.MetricsListen == "" {
		return fail("metrics_listen not configured: no /metrics, /healthz or /readyz to watch")
	}
	addr := firstNonEmpty(r.env.Live.Metrics, c.MetricsListen)
	if !r.running(ctx) {
		return pass("metrics_listen %s configured; %s, not probed", c.MetricsListen, r.notRunning())
	}
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return pass("metrics_listen %s configured (port chosen at start, unknown here), not probed", c.MetricsListen)
	}
	if err := probeHealth(ctx, addr, r.env.Live.timeout()); err != nil {
		return fail("metrics endpoint %s does not answer /healthz while the service runs: %v", addr, err)
	}
	return pass("metrics endpoint %s answers /healthz", addr)
}

func checkIntrusionDetection(ctx context.Context, r *runState) finding {
	c := r.env.Common
	var missing []string
	if !isLogDir(filepath.Join(c.DataDir, "audit")) {
		missing = append(missing, "no audit log (refused handshakes and sign-in failures are recorded there)")
	}
	if c.MetricsListen == "" {
		missing = append(missing, "no metrics_listen (taxlink_auth_failures_total feeds the alert rules)")
	}
	if c.Console == nil {
		missing = append(missing, "no console (security alerts are raised there)")
	}
	if len(missing) > 0 {
		return fail("%s", strings.Join(missing, "; "))
	}
	return pass("refused handshakes and sign-in failures go to the audit log, the metrics (%s) and the console's alerts", c.MetricsListen)
}

func checkDisk(ctx context.Context, r *runState) finding {
	c := r.env.Common
	min := c.MinFreeBytes
	if min == 0 {
		min = defaultMinFree
	}
	free := metrics.DiskFree(c.DataDir)
	if free < 0 {
		return fail("free space of data_dir %s unknown (does it exist?)", c.DataDir)
	}
	if free < float64(min) {
		return fail("%s free in data_dir, below min_free_bytes %s: the process refuses new data (disk-low)", bytesText(free), bytesText(float64(min)))
	}
	if free < 2*float64(min) {
		return pass("warning: only %s free in data_dir, less than twice min_free_bytes %s", bytesText(free), bytesText(float64(min)))
	}
	return pass("%s free in data_dir (minimum %s)", bytesText(free), bytesText(float64(min)))
}

// ---------------------------------------------------------------------------
// Transport: TLS, identity, certificates.

func checkTLS13(ctx context.Context, r *runState) finding {
	if !r.running(ctx) {
		return pass("%s: not probed; taxlink's listeners are TLS 1.3 only by construction (pki server configuration)", r.notRunning())
	}
	c := r.env.Common
	roots, err := certPool(c.TLS.CA)
	if err != nil {
		return fail("tls.ca: %v", err)
	}
	var notes []string
	svc := r.serviceAddr()
	if err := probeNoTLS12(ctx, svc, roots, r.env.Live.timeout()); err != nil {
		return fail("service listener %s: %v", svc, err)
	}
	notes = append(notes, "service listener "+svc+" refuses TLS 1.2")
	if c.Console != nil {
		ca := r.consoleAddr()
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if cas, err := pki.ReadCertFile(c.TLS.CA); err == nil {
			for _, ct := range cas {
				pool.AddCert(ct)
			}
		}
		err := probeNoTLS12(ctx, ca, pool, r.env.Live.timeout())
		switch {
		case errors.Is(err, errNotListening):
			notes = append(notes, "console "+ca+" not answering, not probed")
		case err != nil:
			return fail("console listener %s: %v", ca, err)
		default:
			notes = append(notes, "console "+ca+" refuses TLS 1.2")
		}
	}
	return pass("%s", strings.Join(notes, "; "))
}

func checkIdentity(ctx context.Context, r *runState) finding {
	e := r.env
	c := e.Common
	chain, err := pki.ReadCertFile(c.TLS.Cert)
	if err != nil {
		return fail("tls.cert: %v", err)
	}
	cas, err := pki.ReadCertFile(c.TLS.CA)
	if err != nil {
		return fail("tls.ca: %v", err)
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, ct := range chain[1:] {
		inter.AddCert(ct)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pki.CertPool(cas...), Intermediates: inter, CurrentTime: e.Now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fail("tls.cert does not verify against tls.ca: %v", err)
	}
	var notes []string
	if c.TLS.IdentityMapping == "" {
		id, err := pki.IdentityFromCert(leaf)
		if err != nil {
			return fail("tls.cert: %v", err)
		}
		if want := (pki.Identity{Env: c.Environment, ID: c.ID}); id != want {
			return fail("tls.cert names %s, but the configuration is %s", id, want)
		}
		notes = append(notes, "certificate names "+id.String())
	} else {
		notes = append(notes, "certificate identity mapped by tls.identity_mapping")
	}
	if len(c.TLS.CRL) == 0 {
		return fail("no tls.crl configured: revoked peer certificates would be accepted")
	}
	for i, p := range c.TLS.CRL {
		crl, err := pki.ReadCRLFile(p)
		if err != nil {
			return fail("tls.crl[%d]: %v", i, err)
		}
		signed := false
		for _, ca := range cas {
			if crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return fail("tls.crl[%d] is not signed by a CA of tls.ca", i)
		}
		if !crl.NextUpdate.IsZero() && e.Now.After(crl.NextUpdate) {
			return fail("tls.crl[%d] expired %s: every certificate of its CA is refused", i, crl.NextUpdate.UTC().Format(time.DateOnly))
		}
	}
	notes = append(notes, fmt.Sprintf("CRLs signed by tls.ca and current: %d", len(c.TLS.CRL)))
	d := e.Directory
	if d == nil {
		return fail("directory: %v", e.DirectoryErr)
	}
	switch e.Role {
	case "hub":
		if d.Hub.ID != c.ID {
			return fail("the directory's hub is %s, not %s", d.Hub.ID, c.ID)
		}
		notes = append(notes, "peers admitted only when they are nodes of the directory")
	case "node":
		if _, err := d.Node(c.ID); err != nil {
			return fail("%s is not a node of directory version %d", c.ID, d.Version)
		}
		if e.Node.HubID != d.Hub.ID {
			return fail("hub_id %s, but the directory's hub is %s", e.Node.HubID, d.Hub.ID)
		}
		if !sameEndpoint(e.Node.HubURL, d.Hub.Endpoint) {
			return fail("hub_url %s differs from the directory's hub endpoint %s", e.Node.HubURL, d.Hub.Endpoint)
		}
		notes = append(notes, "only the hub "+d.Hub.ID+" is admitted")
	}
	return pass("%s", strings.Join(notes, "; "))
}

// namedCert is a certificate and where it comes from.
type namedCert struct {
	what string
	cert *x509.Certificate
}

func checkCerts(ctx context.Context, r *runState) finding {
	c := r.env.Common
	var certs []namedCert
	add := func(what, path string, leafOnly bool) error {
		cs, err := pki.ReadCertFile(path)
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if leafOnly {
			cs = cs[:1]
		}
		for _, ct := range cs {
			certs = append(certs, namedCert{what, ct})
		}
		return nil
	}
	if err := add("tls.cert", c.TLS.Cert, false); err != nil {
		return fail("%v", err)
	}
	if err := add("tls.ca", c.TLS.CA, false); err != nil {
		return fail("%v", err)
	}
	if c.Console != nil {
		if err := add("console.cert", c.Console.Cert, false); err != nil {
			return fail("%v", err)
		}
		if c.Console.ClientCA != "" {
			if err := add("console.client_ca", c.Console.ClientCA, false); err != nil {
				return fail("%v", err)
			}
		}
	}
	return certValidity(certs, r.env.Now)
}

// certValidity fails when a certificate is not yet valid, expired or
// expires within CertFailWithin, and warns within CertWarnWithin.
func certValidity(certs []namedCert, now time.Time) finding {
	var warn []string
	var earliest namedCert
	for _, nc := range certs {
		ct := nc.cert
		left := ct.NotAfter.Sub(now)
		switch {
		case now.Before(ct.NotBefore):
			return fail("%s: certificate serial %s is not valid before %s", nc.what, ct.SerialNumber.Text(16), ct.NotBefore.UTC().Format(time.RFC3339))
		case left <= 0:
			return fail("%s: certificate serial %s expired %s", nc.what, ct.SerialNumber.Text(16), ct.NotAfter.UTC().Format(time.DateOnly))
		case left < CertFailWithin:
			return fail("%s: certificate serial %s expires in %s (%s): renew it now", nc.what, ct.SerialNumber.Text(16), daysText(left), ct.NotAfter.UTC().Format(time.DateOnly))
		case left < CertWarnWithin:
			warn = append(warn, fmt.Sprintf("%s expires in %s", nc.what, daysText(left)))
		}
		if earliest.cert == nil || ct.NotAfter.Before(earliest.cert.NotAfter) {
			earliest = nc
		}
	}
	if len(certs) == 0 {
		return fail("no certificate found")
	}
	s := fmt.Sprintf("%d certificates valid; the first to expire is %s's, in %s (%s)", len(certs), earliest.what,
		daysText(earliest.cert.NotAfter.Sub(now)), earliest.cert.NotAfter.UTC().Format(time.DateOnly))
	if len(warn) > 0 {
		s = "warning: " + strings.Join(warn, ", ") + "; " + s
	}
	return pass("%s", s)
}

func checkSealing(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Role == "hub" {
		return pass("not applicable: the hub never opens a payload (sealed end to end between nodes)")
	}
	d := e.Directory
	if d == nil {
		return fail("directory: %v", e.DirectoryErr)
	}
	n, err := d.Node(e.Common.ID)
	if err != nil {
		return fail("%s is not a node of directory version %d", e.Common.ID, d.Version)
	}
	held := map[string]bool{} // tenant + "\x00" + key ID
	for _, k := range e.Node.SealingKeys {
		held[k.Tenant+"\x00"+k.KeyID] = true
	}
	rot, err := readRotated(e.Common.DataDir)
	if err != nil {
		return fail("%v", err)
	}
	for _, k := range rot {
		held[k.Tenant+"\x00"+k.KeyID] = true
	}
	for _, t := range n.Tenants {
		p, err := d.Participant(t)
		if err != nil {
			return fail("tenant %s: %v", t, err)
		}
		k, err := p.SealingKeyAt(e.Now)
		if err != nil {
			return fail("tenant %s has no sealing key in force in the directory: senders cannot seal to it", t)
		}
		if !held[t+"\x00"+k.ID] {
			return fail("tenant %s: senders seal to key %s, which this node does not hold", t, k.ID)
		}
	}
	return pass("every one of %d tenants has a sealing key in force that this node holds (HPKE, end to end)", len(n.Tenants))
}

// ---------------------------------------------------------------------------
// Communication control and listeners.

func checkPolicy(ctx context.Context, r *runState) finding {
	e := r.env
	d := e.Directory
	if d == nil {
		return fail("directory: %v", e.DirectoryErr)
	}
	switch e.Role {
	case "hub":
		if d.Hub.ID != e.Common.ID {
			return fail("the directory's hub is %s, not %s", d.Hub.ID, e.Common.ID)
		}
	case "node":
		if _, err := d.Node(e.Common.ID); err != nil {
			return fail("%s is not a node of directory version %d", e.Common.ID, d.Version)
		}
	}
	return pass("signed directory version %d (%s) verifies; peer policy of %d allow rules, everything else denied; mTLS with certificates of tls.ca only",
		d.Version, d.Environment, len(d.Policy))
}

// listener is a configured listener.
type listener struct{ key, addr string }

func (r *runState) listeners() []listener {
	c := r.env.Common
	ls := []listener{{"listen", c.Listen}}
	if c.Console != nil {
		ls = append(ls, listener{"console.listen", c.Console.Listen})
	}
	if c.MetricsListen != "" {
		ls = append(ls, listener{"metrics_listen", c.MetricsListen})
	}
	return ls
}

func checkListenAddrs(ctx context.Context, r *runState) finding {
	var names []string
	for _, l := range r.listeners() {
		host, _, err := net.SplitHostPort(l.addr)
		if err != nil {
			return fail("%s %q: %v", l.key, l.addr, err)
		}
		if unspecifiedHost(host) {
			return fail("%s %s binds every interface: give the address of the network it serves", l.key, l.addr)
		}
		names = append(names, l.key+" "+l.addr)
	}
	return pass("explicit addresses: %s", strings.Join(names, ", "))
}

func checkConsoleLine(ctx context.Context, r *runState) finding {
	c := r.env.Common
	if c.Console == nil {
		return fail("no console configured: no admin listener for the operators' terminals")
	}
	ch, cp, err := net.SplitHostPort(c.Console.Listen)
	if err != nil {
		return fail("console.listen %q: %v", c.Console.Listen, err)
	}
	sh, sp, _ := net.SplitHostPort(c.Listen)
	if unspecifiedHost(ch) {
		return fail("console.listen %s binds every interface, the service network's too", c.Console.Listen)
	}
	if ch == sh && cp == sp {
		return fail("console.listen is the service listener %s", c.Listen)
	}
	if ch == sh {
		if r.env.dev() {
			return pass("console on its own listener %s; same host as the service (allowed in dev only)", c.Console.Listen)
		}
		return fail("console.listen %s is on the service listener's host %s: terminals would be reachable from the service network; use the admin network's address", c.Console.Listen, sh)
	}
	return pass("console on its own admin listener %s, service on %s", c.Console.Listen, c.Listen)
}

func checkStray(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Live.Off {
		return pass("live probes off: listeners not inspected")
	}
	if !procAvailable() {
		return pass("no /proc on this system: listeners not inspected")
	}
	pid := e.Live.PID
	if pid == 0 {
		if !r.running(ctx) {
			return pass("%s: listeners not inspected", r.notRunning())
		}
		p, ok := ownerOf(ctx, r.serviceAddr())
		if !ok {
			return pass("the process that owns the service listener %s is not visible to this user: listeners not inspected", r.serviceAddr())
		}
		pid = p
	}
	socks, err := listeningSockets(pid)
	if err != nil {
		return fail("listeners of process %d: %v", pid, err)
	}
	// The addresses the process was seen to listen on replace the
	// configured ones (which may leave the port to the system).
	actual := map[string]string{"listen": e.Live.Service, "console.listen": e.Live.Console, "metrics_listen": e.Live.Metrics}
	var allowed []string
	anyPort := ""
	for _, l := range r.listeners() {
		a := firstNonEmpty(actual[l.key], l.addr)
		if _, port, _ := net.SplitHostPort(a); port == "0" {
			anyPort = fmt.Sprintf("; %s %s allows any port of its host", l.key, a)
		}
		allowed = append(allowed, a)
	}
	allowed = append(allowed, e.Live.Shared...)
	match, err := allowMatcher(ctx, allowed)
	if err != nil {
		return fail("%v", err)
	}
	var stray []string
	for _, s := range socks {
		if !match(s) {
			stray = append(stray, s.String())
		}
	}
	if len(stray) > 0 {
		slices.Sort(stray)
		return fail("process %d listens on %s, outside the admin and service addresses", pid, strings.Join(slices.Compact(stray), ", "))
	}
	return pass("process %d listens on %d sockets, all on configured addresses%s", pid, len(socks), anyPort)
}

// ---------------------------------------------------------------------------
// The console (端末機).

func checkConsole(ctx context.Context, r *runState) finding {
	c := r.env.Common.Console
	if c == nil {
		return fail("no console configured: the operators' terminals are not under taxlink's sign-in, approvals, lockout and audit")
	}
	return pass("console on %s (%s): operators enrol with a second person's approval, dangerous actions need two", c.Listen, c.Origin)
}

// operators lists the console's operators, or says why not.
func (r *runState) operators(ctx context.Context) ([]operator.Operator, bool, error) {
	c := r.env.Common.Console
	if _, err := os.Stat(c.State); errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	st, err := operator.Open(operator.Config{Path: c.State, Now: func() time.Time { return r.env.Now }})
	if err != nil {
		return nil, false, err
	}
	defer st.Close()
	ops, err := st.List(ctx)
	return ops, true, err
}

func checkTwoPerson(ctx context.Context, r *runState) finding {
	if r.env.Common.Console == nil {
		return fail("no console configured")
	}
	ops, exists, err := r.operators(ctx)
	if err != nil {
		return fail("console state: %v", err)
	}
	if !exists {
		return fail("console state not created yet: no operator, the two-person rule cannot work")
	}
	n := 0
	for _, o := range ops {
		if o.State == operator.StateActive && (o.Role == operator.RoleAdmin || o.Role == operator.RoleSecurity) {
			n++
		}
	}
	if n < 2 {
		return fail("%d active operators with an approving role (admin, security): two are needed for the two-person rule", n)
	}
	return pass("%d active operators with an approving role (admin, security) for the two-person rule", n)
}

func checkOperatorAuth(ctx context.Context, r *runState) finding {
	c := r.env.Common.Console
	if c == nil {
		return fail("no console configured")
	}
	idle, _ := c.Durations()
	if idle == 0 {
		idle = defaultIdle
	}
	if idle > MaxIdle {
		return fail("console.idle %s: re-authentication after more than %s idle", idle, MaxIdle)
	}
	modes := "WebAuthn with user verification (security key or platform authenticator with PIN or biometric)"
	if c.ClientCA != "" {
		cas, err := pki.ReadCertFile(c.ClientCA)
		if err != nil {
			return fail("console.client_ca: %v", err)
		}
		modes += fmt.Sprintf(", or smart card from %d CA(s) plus PIN", len(cas))
	}
	return pass("%s; re-authentication after %s idle", modes, idle)
}

func checkPIN(ctx context.Context, r *runState) finding {
	c := r.env.Common.Console
	if c == nil {
		return fail("no console configured")
	}
	if c.ClientCA == "" {
		return pass("PIN sign-in not enabled: WebAuthn with user verification only; the authenticator enforces its PIN or biometric")
	}
	p := operator.DefaultPINPolicy()
	if c.PIN.MinLength > 0 {
		p.MinLength = c.PIN.MinLength
	}
	if c.PIN.Classes > 0 {
		p.Classes = c.PIN.Classes
	}
	if c.PIN.History > 0 {
		p.History = c.PIN.History
	}
	if c.PIN.Expiry != "" {
		p.Expiry, _ = time.ParseDuration(c.PIN.Expiry)
	}
	if p.MinLength < MinPINLength {
		return fail("console.pin.min_length %d: PINs shorter than %d characters", p.MinLength, MinPINLength)
	}
	expiry := "never expire"
	if p.Expiry > 0 {
		expiry = "expire after " + daysText(p.Expiry)
	}
	return pass("PINs of at least %d characters of %d classes, stored as Argon2id hashes, %s, last %d not reusable", p.MinLength, p.Classes, expiry, p.History)
}

func checkGrants(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Common.Console == nil {
		return fail("no console configured")
	}
	if e.Role == "hub" {
		return pass("not applicable: the hub holds no records for data users")
	}
	tenants := len(e.Node.SealingKeys)
	if d := e.Directory; d != nil {
		if n, err := d.Node(e.Common.ID); err == nil {
			tenants = len(n.Tenants)
		}
	}
	ops, exists, err := r.operators(ctx)
	if err != nil {
		return fail("console state: %v", err)
	}
	if !exists {
		return pass("no operator enrolled yet; grants name tenants and notification types per operator")
	}
	users, all := 0, 0
	for _, o := range ops {
		if o.Role != operator.RoleDataUser || o.State == operator.StateDisabled {
			continue
		}
		users++
		if slices.Equal(o.Grant.Tenants, []string{"*"}) {
			all++
		}
	}
	if all > 0 && tenants > 1 {
		return fail("%d of %d data users are granted every tenant of this node, which hosts %d: grant each only its own", all, users, tenants)
	}
	return pass("%d data users, each limited to the tenants and notification types of their grant", users)
}

func checkLockout(ctx context.Context, r *runState) finding {
	c := r.env.Common.Console
	if c == nil {
		return fail("no console configured")
	}
	n := c.LockoutAfter
	if n == 0 {
		n = defaultLockout
	}
	if n < 1 || n > MaxLockoutAfter {
		return fail("console.lockout_after %d: more than %d consecutive failures before lockout", n, MaxLockoutAfter)
	}
	return pass("an operator is locked out after %d consecutive failures, all sessions ended; only an administrator unlocks", n)
}

// ---------------------------------------------------------------------------
// Keys and files.

func checkKeys(ctx context.Context, r *runState) finding {
	e := r.env
	c := e.Common
	type ref struct{ key, ref string }
	refs := []ref{{"tls.key", c.TLS.Key}, {"signing_key", c.SigningKey}}
	if c.Console != nil {
		refs = append(refs, ref{"console.key", c.Console.Key})
		if c.Console.DirectorySigningKey != "" {
			refs = append(refs, ref{"console.directory_signing_key", c.Console.DirectorySigningKey})
		}
	}
	if e.Node != nil {
		for i, k := range e.Node.SealingKeys {
			refs = append(refs, ref{fmt.Sprintf("sealing_keys[%d]", i), k.File})
		}
	}
	rot, err := readRotated(c.DataDir)
	if err != nil {
		return fail("%v", err)
	}
	for _, k := range rot {
		refs = append(refs, ref{"rotated sealing key " + k.KeyID, "enc:" + filepath.Join(c.DataDir, rotatedDir, k.File)})
	}
	counts := map[keystore.Scheme]int{}
	var clear []string
	for _, k := range refs {
		kr, err := keystore.ParseRef(k.ref)
		if err != nil {
			return fail("%s: %v", k.key, err)
		}
		counts[kr.Scheme]++
		switch kr.Scheme {
		case keystore.SchemeFile:
			if !e.dev() {
				return fail("%s is a key in the clear (file:) in environment %s: use enc: or pkcs11:", k.key, c.Environment)
			}
			clear = append(clear, k.key)
			fallthrough
		case keystore.SchemeEnc:
			if err := privateFile(kr.Path); err != nil {
				return fail("%s: %v", k.key, err)
			}
		}
	}
	for key, p := range map[string]string{"keys.passphrase_file": c.Keys.PassphraseFile, "keys.pin_file": c.Keys.PINFile} {
		if p == "" {
			continue
		}
		if err := privateFile(p); err != nil {
			return fail("%s: %v", key, err)
		}
	}
	s := fmt.Sprintf("%d keys: %d encrypted (enc:), %d on a PKCS#11 token, %d in the clear; key, passphrase and PIN files closed to group and others",
		len(refs), counts[keystore.SchemeEnc], counts[keystore.SchemePKCS11], counts[keystore.SchemeFile])
	if len(clear) > 0 {
		s += "; note: " + strings.Join(clear, ", ") + " in the clear, allowed in dev only"
	}
	return pass("%s", s)
}

// privateFile checks that p is a regular file without group or other
// access.
func privateFile(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %#o: group or others have access (want %#o)", p, perm, 0o600)
	}
	return nil
}

func checkDataPerms(ctx context.Context, r *runState) finding {
	e := r.env
	c := e.Common
	fi, err := os.Stat(c.DataDir)
	if err != nil {
		return fail("data_dir: %v", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fail("data_dir %s has mode %#o: group or others have access (want 0700)", c.DataDir, perm)
	}
	checked := []string{"data_dir"}
	if c.Backup.Dir != "" {
		if fi, err := os.Stat(c.Backup.Dir); err == nil {
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				return fail("backup.dir %s has mode %#o: group or others have access (want 0700)", c.Backup.Dir, perm)
			}
			checked = append(checked, "backup.dir")
		}
	}
	if c.Console != nil {
		if _, err := os.Stat(c.Console.State); err == nil {
			if err := privateFile(c.Console.State); err != nil {
				return fail("console.state: %v", err)
			}
			checked = append(checked, "console.state")
		}
	}
	if fi, err := os.Stat(e.ConfigPath); err == nil && fi.Mode().Perm()&0o022 != 0 {
		return fail("configuration %s has mode %#o: writable by group or others", e.ConfigPath, fi.Mode().Perm())
	}
	checked = append(checked, "configuration not writable by others")
	return pass("closed to group and others: %s", strings.Join(checked, ", "))
}

// rotatedKey is an entry of data_dir/sealing-keys/index.json, where the
// console keeps the sealing keys made by a rotation (see package daemon).
type rotatedKey struct {
	Tenant string `json:"tenant"` // the tenant the key opens for
	KeyID  string `json:"key_id"` // its ID in the directory
	File   string `json:"file"`   // the encrypted key file in data_dir/sealing-keys
}

const rotatedDir = "sealing-keys"

func readRotated(dataDir string) ([]rotatedKey, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, rotatedDir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotated sealing keys: %v", err)
	}
	var ks []rotatedKey
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("rotated sealing keys: %s/index.json: %v", rotatedDir, err)
	}
	for _, k := range ks {
		if k.File == "" || strings.ContainsAny(k.File, `/\`) {
			return nil, fmt.Errorf("rotated sealing keys: %s/index.json: bad file name %q", rotatedDir, k.File)
		}
	}
	return ks, nil
}

// ---------------------------------------------------------------------------
// Logs and backups.

// verifier returns the verifier of the process's checkpoint signatures:
// its signing key as published in the directory.
func (r *runState) verifier() (note.Verifier, error) {
	e := r.env
	d := e.Directory
	if d == nil {
		return nil, fmt.Errorf("directory: %v", e.DirectoryErr)
	}
	var pub *ecdsa.PublicKey
	if e.Role == "hub" {
		if d.Hub.ID != e.Common.ID {
			return nil, fmt.Errorf("the directory's hub is %s, not %s", d.Hub.ID, e.Common.ID)
		}
		pub = d.HubKey()
	} else {
		n, err := d.Node(e.Common.ID)
		if err != nil {
			return nil, fmt.Errorf("%s is not a node of directory version %d", e.Common.ID, d.Version)
		}
		pub = n.Key()
	}
	return notekey.NewVerifier(e.Common.ID, pub)
}

func (r *runState) origin(kind string) string {
	return "taxlink/" + r.env.Common.Environment + "/" + r.env.Common.ID + "/" + kind
}

// isLogDir reports whether dir holds a ledger (its head file).
func isLogDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "head"))
	return err == nil && fi.Mode().IsRegular()
}

func checkAudit(ctx context.Context, r *runState) finding {
	dir := filepath.Join(r.env.Common.DataDir, "audit")
	if !isLogDir(dir) {
		return fail("no audit log in %s (has the process ever run?)", dir)
	}
	v, err := r.verifier()
	if err != nil {
		return fail("%v", err)
	}
	rep, err := audit.Verify(dir, ledger.Options{Origin: r.origin("audit"), Verifier: v})
	if err != nil {
		return fail("audit log does not verify: %v", oneLine(err.Error()))
	}
	return pass("audit log verifies: %d events, %d signed checkpoints", rep.Entries, rep.Checkpoints)
}

func checkLedger(ctx context.Context, r *runState) finding {
	if r.env.Role != "hub" {
		return pass("not applicable: the ledger is the hub's (nodes keep their audit log and the hub's checkpoints)")
	}
	dir := filepath.Join(r.env.Common.DataDir, "ledger")
	if !isLogDir(dir) {
		return fail("no ledger in %s (has the hub ever run?)", dir)
	}
	v, err := r.verifier()
	if err != nil {
		return fail("%v", err)
	}
	rep, err := ledger.VerifyDir(dir, note.VerifierList(v))
	if err != nil {
		return fail("ledger does not verify: %v", oneLine(err.Error()))
	}
	return pass("ledger verifies: %d entries, %d signed checkpoints", rep.Entries, rep.Checkpoints)
}

// backedUp lists the logs a process copies to backup.dir (as the daemon
// does: the hub its ledger and audit log, a node its audit log).
func (r *runState) backedUp() []string {
	if r.env.Role == "hub" {
		return []string{"ledger", "audit"}
	}
	return []string{"audit"}
}

func checkBackup(ctx context.Context, r *runState) finding {
	c := r.env.Common
	if c.Backup.Dir == "" {
		return fail("backup.dir not configured: the logs are not copied")
	}
	v, err := r.verifier()
	if err != nil {
		return fail("%v", err)
	}
	period := c.Backup.Period()
	var notes []string
	for _, name := range r.backedUp() {
		live, cp := filepath.Join(c.DataDir, name), filepath.Join(c.Backup.Dir, name)
		if !isLogDir(live) {
			return fail("no %s log in data_dir to back up (has the process ever run?)", name)
		}
		if !isLogDir(cp) {
			return fail("no copy of the %s log in backup.dir %s yet", name, c.Backup.Dir)
		}
		if err := ledger.CheckBackup(live, cp, note.VerifierList(v)); err != nil {
			return fail("the copy of the %s log does not verify against the live log: %v", name, oneLine(err.Error()))
		}
		lrep, err := ledger.VerifyDir(live, note.VerifierList(v))
		if err != nil {
			return fail("%s log: %v", name, oneLine(err.Error()))
		}
		brep, err := ledger.VerifyDir(cp, note.VerifierList(v))
		if err != nil {
			return fail("copy of the %s log: %v", name, oneLine(err.Error()))
		}
		age := r.env.Now.Sub(lastWritten(cp))
		switch {
		case brep.Entries >= lrep.Entries:
			notes = append(notes, fmt.Sprintf("%s: copy holds all %d entries", name, lrep.Entries))
		case age <= 2*period:
			notes = append(notes, fmt.Sprintf("%s: copy holds %d of %d entries, written %s ago", name, brep.Entries, lrep.Entries, age.Round(time.Second)))
		default:
			return fail("the copy of the %s log holds %d of %d entries and was last written %s ago, more than twice backup.every (%s)",
				name, brep.Entries, lrep.Entries, age.Round(time.Second), period)
		}
	}
	return pass("copies in backup.dir verify against the live logs and are current (every %s): %s", period, strings.Join(notes, "; "))
}

// lastWritten returns when a log directory's files last changed.
func lastWritten(dir string) time.Time {
	var t time.Time
	for _, f := range []string{"entries", "hashes", "checkpoints", "head"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func checkBackupMedium(ctx context.Context, r *runState) finding {
	c := r.env.Common
	if c.Backup.Dir == "" {
		return fail("backup.dir not configured: no second copy of the logs")
	}
	if within(c.DataDir, c.Backup.Dir) {
		return fail("backup.dir %s is inside data_dir: the copy shares the medium of the original", c.Backup.Dir)
	}
	dd, err1 := deviceOf(c.DataDir)
	bd, err2 := deviceOf(c.Backup.Dir)
	if err1 != nil || err2 != nil {
		return fail("cannot tell the devices of data_dir and backup.dir: %v", errors.Join(err1, err2))
	}
	if dd == bd {
		if r.env.dev() {
			return pass("backup.dir %s is apart from data_dir; same device (allowed in dev only)", c.Backup.Dir)
		}
		return fail("backup.dir %s is on the same device as data_dir: put the copy on another medium", c.Backup.Dir)
	}
	return pass("backup.dir %s is on another device than data_dir", c.Backup.Dir)
}

// within reports whether p is dir or inside it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// deviceOf returns the device of p, or of its nearest existing parent.
func deviceOf(p string) (uint64, error) {
	for {
		fi, err := os.Stat(p)
		if err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return 0, fmt.Errorf("no device number for %s", p)
			}
			return uint64(st.Dev), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return 0, err
		}
		p = parent
	}
}

// ---------------------------------------------------------------------------
// Data handling on nodes.

// checkRedundancy: the hub runs as replicas, so that the loss of one
// machine neither stops the network nor loses what was accepted.
func checkRedundancy(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Role != "hub" {
		return pass("not applicable: the hub keeps every notification until the node records it; the node's own store replication is its operator's")
	}
	switch h := e.Hub; {
	case h.Cluster != nil:
		return pass("replica %s of cluster %s: every queue and the ledger on %d replicas (%d routes)", h.Cluster.Server, h.Cluster.Name, h.Cluster.Replicas, len(h.Cluster.Routes))
	case h.JetStream != nil && h.JetStream.Replicas >= 3:
		return pass("queues and ledger on the external JetStream %s with %d replicas", h.JetStream.URL, h.JetStream.Replicas)
	case h.JetStream != nil:
		return fail("the external JetStream keeps %d copy of each stream: the loss of one server stops the hub", h.JetStream.Replicas)
	case e.dev():
		return pass("a single hub (allowed in dev only; `taxlink dev --hub-replicas 3` runs a cluster)")
	}
	return fail("a single hub: losing its machine stops acceptance, and a restore from backup loses what was accepted since; run it as replicas (docs/cluster.md)")
}

func checkScanner(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Role == "hub" {
		return pass("not applicable: the hub never holds a payload in the clear (sealed end to end)")
	}
	s := e.Node.Scanner
	if s == nil {
		return fail("no scanner configured: received payloads reach data users and exports unchecked for malware")
	}
	if e.Live.Off {
		return pass("scanner %s configured (every %s); live probes off, not pinged", s.Clamd, s.Period())
	}
	cl, err := scan.NewClamd(s.Clamd, scan.WithTimeout(e.Live.timeout()))
	if err != nil {
		return fail("scanner.clamd: %v", err)
	}
	if err := cl.Ping(ctx); err != nil {
		return fail("scanner %s does not answer PING: payloads stay unscanned and unopened: %v", s.Clamd, oneLine(err.Error()))
	}
	return pass("scanner %s answers; every received payload is scanned before use (every %s)", s.Clamd, s.Period())
}

func checkRetention(ctx context.Context, r *runState) finding {
	e := r.env
	if e.Role == "hub" {
		return pass("not applicable: the hub keeps no records (its queues hold sealed envelopes until delivered)")
	}
	var tenants []string
	if d := e.Directory; d != nil {
		if n, err := d.Node(e.Common.ID); err == nil {
			tenants = n.Tenants
		}
	}
	if tenants == nil {
		for _, k := range e.Node.SealingKeys {
			if !slices.Contains(tenants, k.Tenant) {
				tenants = append(tenants, k.Tenant)
			}
		}
	}
	var missing []string
	for _, t := range tenants {
		if !slices.ContainsFunc(e.Node.Retention, func(rr config.RetentionRule) bool { return rr.Tenant == t }) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fail("no retention rule for %d of %d tenants (%s): their records are kept until erased by hand", len(missing), len(tenants), strings.Join(missing, ", "))
	}
	holds := 0
	for _, h := range e.Node.LegalHolds {
		if h.InForce(e.Now) {
			holds++
		}
	}
	return pass("every one of %d tenants has a retention rule (%d rules, %d legal holds in force)", len(tenants), len(e.Node.Retention), holds)
}

// ---------------------------------------------------------------------------
// Outsourcers.

func checkCertification(ctx context.Context, r *runState) finding {
	e := r.env
	d := e.Directory
	if d == nil {
		return fail("directory: %v", e.DirectoryErr)
	}
	var nodes []*directory.Node
	if e.Role == "hub" {
		for i := range d.Nodes {
			nodes = append(nodes, &d.Nodes[i])
		}
	} else {
		n, err := d.Node(e.Common.ID)
		if err != nil {
			return fail("%s is not a node of directory version %d", e.Common.ID, d.Version)
		}
		nodes = []*directory.Node{n}
	}
	var warn []string
	certified, self := 0, 0
	for _, n := range nodes {
		if n.Operator == "" {
			if strings.HasPrefix(n.ID, pki.KindCorporation+":") {
				return fail("node %s is run by a company but names no certified outsourcer (operator)", n.ID)
			}
			for _, t := range n.Tenants {
				if t != n.ID && !strings.HasPrefix(n.ID, pki.KindLocalGovernment+":") {
					return fail("node %s hosts %s without a certified outsourcer", n.ID, t)
				}
			}
			self++
			continue
		}
		op, err := d.Participant(n.Operator)
		if err != nil || op.Certification == nil {
			return fail("node %s: operator %s has no certification in the directory", n.ID, n.Operator)
		}
		if err := d.Certified(n, e.Now); err != nil {
			return fail("node %s: %v: the hub holds its deliveries", n.ID, err)
		}
		c := op.Certification
		left := c.Until.Sub(e.Now)
		if left < CertFailWithin {
			return fail("certification of %s ends %s, in %s", op.ID, c.Until.Format(time.DateOnly), daysText(left))
		}
		if left < CertWarnWithin {
			warn = append(warn, fmt.Sprintf("certification of %s ends in %s", op.ID, daysText(left)))
		}
		switch {
		case c.LastAudit.IsZero():
			return fail("%s has no audit date in the directory", op.ID)
		case c.LastAudit.After(e.Now):
			return fail("%s's last audit is dated in the future (%s)", op.ID, c.LastAudit.Format(time.DateOnly))
		case e.Now.Sub(c.LastAudit) > MaxAuditAge:
			return fail("%s's last audit by the 機構 was %s, more than a year ago", op.ID, c.LastAudit.Format(time.DateOnly))
		}
		certified++
	}
	suspended := 0
	for _, p := range d.Participants {
		if p.Suspended {
			suspended++
		}
	}
	s := fmt.Sprintf("nodes run by certified outsourcers (certification in force, audited within a year): %d; self-hosted: %d; participants suspended: %d",
		certified, self, suspended)
	if len(warn) > 0 {
		s = "warning: " + strings.Join(warn, ", ") + "; " + s
	}
	return pass("%s", s)
}

// ---------------------------------------------------------------------------
// Helpers.

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// unspecifiedHost reports whether host binds every interface.
func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

func sameEndpoint(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host) && ua.Scheme == ub.Scheme
}

func certPool(path string) (*x509.CertPool, error) {
	cs, err := pki.ReadCertFile(path)
	if err != nil {
		return nil, err
	}
	return pki.CertPool(cs...), nil
}

func daysText(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(math.Round(d.Hours()/24)))
}

func bytesText(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	}
}

// oneLine folds s onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
