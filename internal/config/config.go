// Package config loads and validates the configuration of a hub or a node.
//
// A configuration is a JSON file; unknown keys are refused, relative paths
// are resolved against the file's directory, and every value is checked at
// load so that a wrong value stops the process at start with an error naming
// the key and what is expected (fail closed). Files the configuration points
// to (certificates, keys, the directory) are checked to exist here and are
// parsed by their owners.
package config

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/pki"
)

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config: invalid")

// TLS names the files of a process's TLS identity.
type TLS struct {
	Cert string `json:"cert"` // PEM certificate chain, leaf first
	Key  string `json:"key"`  // key reference (see KeySources)
	CA   string `json:"ca"`   // PEM certificates of the CAs that issue peers' certificates
	// CRL lists the revocation lists of those CAs (DER or PEM), one per
	// CA. When set, every peer chain is checked against them, failing
	// closed when a CRL has expired.
	CRL []string `json:"crl,omitempty"`
	// CRLRefresh is how often the CRL files are reread, e.g. "5m"
	// (default 5m).
	CRLRefresh string `json:"crl_refresh,omitempty"`
	// IdentityMapping is a JSON file of rules mapping certificates of an
	// external CA (LGPKI, GPKI) to participant IDs (see pki.MappingRule);
	// that CA's certificate goes into the ca file.
	IdentityMapping string `json:"identity_mapping,omitempty"`
	// ReloadEvery is how often the certificate and key files are checked
	// for a renewal, put in force without a restart (default "1m").
	ReloadEvery string `json:"reload_every,omitempty"`
}

// ReloadPeriod returns the parsed reload period.
func (t TLS) ReloadPeriod() time.Duration {
	d, err := time.ParseDuration(t.ReloadEvery)
	if err != nil || t.ReloadEvery == "" {
		return time.Minute
	}
	return d
}

// CRLRefreshPeriod returns the parsed CRL refresh period.
func (t TLS) CRLRefreshPeriod() time.Duration {
	d, err := time.ParseDuration(t.CRLRefresh)
	if err != nil || t.CRLRefresh == "" {
		return 5 * time.Minute
	}
	return d
}

// Common holds what hubs and nodes share.
type Common struct {
	Role         string `json:"role"`        // "hub" or "node"
	ID           string `json:"id"`          // participant ID in this process's certificate
	Environment  string `json:"environment"` // production, test or dev
	Listen       string `json:"listen"`      // host:port of the service listener
	DataDir      string `json:"data_dir"`
	TLS          TLS    `json:"tls"`
	SigningKey   string `json:"signing_key"`   // key reference: signs receipts (hub) or envelopes and receipts (node)
	Directory    string `json:"directory"`     // signed directory file
	DirectoryKey string `json:"directory_key"` // PEM public key that signs the directory
	// Keys says where the secrets that open the private keys come from.
	Keys KeySources `json:"keys,omitzero"`
	// Backup copies the ledger and the audit log periodically.
	Backup Backup `json:"backup,omitzero"`
	// MinFreeBytes is the free disk space in data_dir below which the
	// process stops taking data in (503 disk-low) (default 512 MiB).
	MinFreeBytes int64 `json:"min_free_bytes,omitempty"`
	// MetricsListen is the plain-HTTP address of /metrics, /healthz and
	// /readyz, for the operations network only (e.g. 127.0.0.1:9100);
	// empty: not served.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// Console configures the web console on its own admin listener;
	// absent: no console.
	Console *Console `json:"console,omitempty"`
	// Detection configures the built-in detection rules and where their
	// alerts go besides the console (第4 9(1)(3)); absent: default rules,
	// console only.
	Detection *Detection `json:"detection,omitempty"`
}

// Detection says where detection alerts go and how the rules are tuned.
type Detection struct {
	// Rules, when set, overrides the default rules (see package detect,
	// DefaultRules; JSON merged over the defaults).
	Rules json.RawMessage `json:"rules,omitempty"`
	// Webhooks receive every alert as a signed JSON POST.
	Webhooks []WebhookSink `json:"webhooks,omitempty"`
	// Email sends alerts of at least MinSeverity by SMTP (STARTTLS).
	Email *EmailSink `json:"email,omitempty"`
	// Syslog sends every alert as an RFC 5424 line.
	Syslog *SyslogSink `json:"syslog,omitempty"`
}

// WebhookSink is one webhook: an https URL (http only on loopback) and the
// file holding the HMAC secret.
type WebhookSink struct {
	URL        string `json:"url"`
	SecretFile string `json:"secret_file"`
}

// EmailSink is the SMTP relay alerts are mailed through.
type EmailSink struct {
	Addr         string   `json:"addr"` // HOST:PORT
	From         string   `json:"from"`
	To           []string `json:"to"`
	Username     string   `json:"username,omitempty"`
	PasswordFile string   `json:"password_file,omitempty"`
	MinSeverity  string   `json:"min_severity,omitempty"` // info, warning (default) or critical
}

// SyslogSink is a syslog collector: network udp, tcp or unix.
type SyslogSink struct {
	Network string `json:"network"`
	Addr    string `json:"addr"`
}

// Console configures the web console (端末機) of a hub or node.
type Console struct {
	// Listen is the console's HOST:PORT, on the administration network.
	Listen string `json:"listen"`
	// Origin is the URL browsers use, https://HOST[:PORT]; its host is
	// the WebAuthn relying party ID unless RPID says otherwise.
	Origin string `json:"origin"`
	RPID   string `json:"rp_id,omitempty"`
	// Cert and Key are the console's web server certificate (PEM chain)
	// and key reference, issued for Origin's host by a CA the operators'
	// browsers trust.
	Cert string `json:"cert"`
	Key  string `json:"key"`
	// State is the SQLite file of operators, sessions, approvals and
	// alerts (default data_dir/console.db).
	State string `json:"state,omitempty"`
	// Idle is the idle time before re-authentication (default "15m");
	// Lifetime the absolute session lifetime (default "12h").
	Idle     string `json:"idle,omitempty"`
	Lifetime string `json:"lifetime,omitempty"`
	// LockoutAfter is the number of consecutive failures that locks an
	// operator out (default 5).
	LockoutAfter int `json:"lockout_after,omitempty"`
	// ClientCA, when set, enables the smart card + PIN sign-in: PEM
	// certificates of the CAs that issue operators' smart-card
	// certificates.
	ClientCA string `json:"client_ca,omitempty"`
	// PIN is the PIN policy of the smart card + PIN sign-in.
	PIN PINPolicy `json:"pin,omitzero"`
	// DirectorySigningKey (hub only) is the key reference of the directory
	// signing key, when the 機構 lets the hub's console sign approved
	// directory changes (suspensions); absent: the console only publishes
	// documents signed elsewhere.
	DirectorySigningKey string `json:"directory_signing_key,omitempty"`
}

// PINPolicy is the PIN policy of the console (第4 4(2)).
type PINPolicy struct {
	MinLength int    `json:"min_length,omitempty"` // default 8
	Classes   int    `json:"classes,omitempty"`    // character classes required, default 2
	Expiry    string `json:"expiry,omitempty"`     // e.g. "2160h" (default 90 days); "0s": never
	History   int    `json:"history,omitempty"`    // previous PINs refused, default 5
}

// Durations returns the console's idle and lifetime durations (zero for
// defaults).
func (c *Console) Durations() (idle, lifetime time.Duration) {
	idle, _ = time.ParseDuration(c.Idle)
	lifetime, _ = time.ParseDuration(c.Lifetime)
	return idle, lifetime
}

func (c *Console) validate(env string, keys KeySources) error {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		return bad("console.listen", "%q: expected HOST:PORT", c.Listen)
	}
	u, err := url.Parse(c.Origin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return bad("console.origin", "%q: expected https://HOST[:PORT]", c.Origin)
	}
	if err := fileExists(c.Cert); err != nil {
		return bad("console.cert", "%v", err)
	}
	if err := checkKeyRef("console.key", c.Key, env, keys); err != nil {
		return err
	}
	if c.ClientCA != "" {
		if err := fileExists(c.ClientCA); err != nil {
			return bad("console.client_ca", "%v", err)
		}
	}
	if c.DirectorySigningKey != "" {
		if err := checkKeyRef("console.directory_signing_key", c.DirectorySigningKey, env, keys); err != nil {
			return err
		}
	}
	for key, v := range map[string]string{"console.idle": c.Idle, "console.lifetime": c.Lifetime} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d < time.Minute || d > 7*24*time.Hour {
			return bad(key, "%q: expected a duration from 1m to 168h", v)
		}
	}
	if c.LockoutAfter < 0 || c.LockoutAfter > 100 {
		return bad("console.lockout_after", "%d: expected 1..100 (0: default 5)", c.LockoutAfter)
	}
	if c.PIN.MinLength < 0 || c.PIN.MinLength > 64 || c.PIN.Classes < 0 || c.PIN.Classes > 4 || c.PIN.History < 0 || c.PIN.History > 24 {
		return bad("console.pin", "min_length 0..64, classes 0..4, history 0..24")
	}
	if c.PIN.Expiry != "" {
		if _, err := time.ParseDuration(c.PIN.Expiry); err != nil {
			return bad("console.pin.expiry", "%q: expected a duration, e.g. \"2160h\"", c.PIN.Expiry)
		}
	}
	return nil
}

// Backup configures the periodic copy of the tamper-evident logs to a
// second directory, ideally on another medium (第4 5(3)).
type Backup struct {
	Dir   string `json:"dir,omitempty"`   // where the copies go; empty: no backup
	Every string `json:"every,omitempty"` // e.g. "10m" (default 10m)
}

// Period returns the parsed backup period.
func (b Backup) Period() time.Duration {
	d, err := time.ParseDuration(b.Every)
	if err != nil || b.Every == "" {
		return 10 * time.Minute
	}
	return d
}

// KeySources says how to open the private keys. Every private key in a
// configuration (tls.key, signing_key, sealing_keys[].file) is a key
// reference: "enc:PATH" (a passphrase-encrypted key file),
// "pkcs11:token=LABEL;object=LABEL" (a key on a PKCS#11 token), or
// "file:PATH" (an unencrypted key file, refused outside the dev
// environment); a bare path means "file:PATH". Relative paths are relative
// to the configuration file.
type KeySources struct {
	// PassphraseFile holds the passphrase of enc: keys (mode 0600); when
	// empty it comes from the environment variable TAXLINK_KEY_PASSPHRASE.
	PassphraseFile string `json:"passphrase_file,omitempty"`
	// PKCS11Module is the token's PKCS#11 module, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	PKCS11Module string `json:"pkcs11_module,omitempty"`
	// PINFile holds the token PIN; when empty it comes from
	// TAXLINK_PKCS11_PIN.
	PINFile string `json:"pin_file,omitempty"`
}

// resolveRef makes the path of a file: or enc: key reference absolute.
func resolveRef(base, ref string) string {
	for _, scheme := range []string{"file:", "enc:"} {
		if strings.HasPrefix(ref, scheme) {
			return scheme + abs(base, strings.TrimPrefix(ref, scheme))
		}
	}
	if ref == "" || strings.HasPrefix(ref, "pkcs11:") {
		return ref
	}
	return "file:" + abs(base, ref)
}

// checkKeyRef validates a key reference for environment env.
func checkKeyRef(key, ref, env string, ks KeySources) error {
	r, err := keystore.ParseRef(ref)
	if err != nil {
		return bad(key, "%v", err)
	}
	switch r.Scheme {
	case keystore.SchemeFile:
		if env != "dev" {
			return bad(key, "%s holds a private key in the clear, which is allowed only in the dev environment: use enc:PATH or pkcs11:token=…;object=…", r.Path)
		}
		if err := fileExists(r.Path); err != nil {
			return bad(key, "%v", err)
		}
	case keystore.SchemeEnc:
		if err := fileExists(r.Path); err != nil {
			return bad(key, "%v", err)
		}
	case keystore.SchemePKCS11:
		if ks.PKCS11Module == "" {
			return bad("keys.pkcs11_module", "missing: %s names a PKCS#11 key", key)
		}
	}
	return nil
}

// DefaultDeliveryIdle is Hub.DeliveryIdle when unset: long enough that a
// recipient sent to every few seconds or minutes keeps its queue consumer
// (creating one costs milliseconds), short enough that the local
// governments with nothing queued cost no memory.
const DefaultDeliveryIdle = 2 * time.Minute

// DeliveryIdlePeriod returns the parsed DeliveryIdle.
func (c *Hub) DeliveryIdlePeriod() time.Duration {
	d, err := time.ParseDuration(c.DeliveryIdle)
	if err != nil || c.DeliveryIdle == "" {
		return DefaultDeliveryIdle
	}
	return d
}

// Hub is a hub's configuration.
type Hub struct {
	Common
	// InlineMax is the largest envelope kept in a single JetStream message;
	// a bigger one's ciphertext is a file in data_dir/blobs (a hub running
	// alone) or a chain of chunks in JetStream (replicas).
	InlineMax int `json:"inline_max,omitempty"`
	// MaxEnvelope bounds a submitted envelope's ciphertext in bytes.
	MaxEnvelope int64 `json:"max_envelope,omitempty"`
	// MaxInFlight bounds the submissions received at once; beyond it
	// senders get 503 busy (default 256).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// DeliveryIdle is how long a recipient's delivery loop, with its queue
	// consumer, stays with nothing to deliver (default "2m"); an
	// acceptance for the recipient starts it again. "0s" keeps a loop for
	// every recipient all the time, as replicas (cluster, jetstream)
	// always do.
	DeliveryIdle string `json:"delivery_idle,omitempty"`
	// Cluster, when set, runs this hub as one replica of a cluster: its
	// embedded JetStream server joins the others' and every queue and the
	// ledger are replicated before an acceptance is answered.
	Cluster *HubCluster `json:"cluster,omitempty"`
	// JetStream, when set, keeps the hub's queues and ledger on an
	// external JetStream cluster instead of the embedded server; several
	// hubs (replicas) may share it.
	JetStream *HubJetStream `json:"jetstream,omitempty"`
}

// HubJetStream is an external JetStream cluster. Its servers must sync
// every write before acknowledging it (sync_interval: always, or R3).
type HubJetStream struct {
	// URL lists its servers: tls://HOST:PORT[,tls://HOST:PORT…].
	URL string `json:"url"`
	// CA is the PEM file of the roots its servers' certificates chain to
	// (default: tls.ca). The hub presents its own certificate.
	CA string `json:"ca,omitempty"`
	// Replicas is the copies of each stream: 3 (default) or 5.
	Replicas int `json:"replicas,omitempty"`
}

// HubCluster places a hub replica in its cluster. The replicas share the
// hub's identity (certificate and signing key) and directory; each has
// its own data_dir and listeners.
type HubCluster struct {
	// Name is the cluster's name, the same on every replica.
	Name string `json:"name"`
	// Server is this replica's name, unique in the cluster.
	Server string `json:"server"`
	// Listen is the HOST:PORT on which the other replicas connect (mTLS
	// with the hub's certificate, both ways).
	Listen string `json:"listen"`
	// Routes are the HOST:PORT route addresses of all replicas.
	Routes []string `json:"routes"`
	// Replicas is the number of copies of each stream: 3 (default) or 5.
	Replicas int `json:"replicas,omitempty"`
}

// SealingKeyFile names a tenant's sealing private key.
type SealingKeyFile struct {
	Tenant string `json:"tenant"`
	KeyID  string `json:"key_id"`
	KEM    uint16 `json:"kem"`
	File   string `json:"file"` // the serialized private key (mode 0600)
}

// Node is a node's configuration.
type Node struct {
	Common
	HubURL string `json:"hub_url"` // https URL of the hub
	// HubURLs are the other replicas of a clustered hub, tried in turn
	// when the one in use does not answer.
	HubURLs     []string         `json:"hub_urls,omitempty"`
	HubID       string           `json:"hub_id"` // the hub's participant ID, checked in its certificate
	SealingKeys []SealingKeyFile `json:"sealing_keys"`
	// Store says where the node keeps its inbox and outbox; omitted: SQLite
	// in data_dir/node.db.
	Store NodeStore `json:"store,omitzero"`
	// Retention says how long each tenant's records (of one notification
	// type, or of all) are kept before they are erased; empty: kept until
	// erased otherwise.
	Retention []RetentionRule `json:"retention,omitempty"`
	// LegalHolds stop the retention erasure of a tenant's records (of one
	// type, or of all) while they are in force.
	LegalHolds []LegalHold `json:"legal_holds,omitempty"`
	// Scanner, when set, scans every received payload for malware before
	// data users or exports may open it (第4 7(4)).
	Scanner *Scanner `json:"scanner,omitempty"`
	// Export, when set, lets the tenants' own tax systems (税務システム)
	// pull their records (第5).
	Export *Export `json:"export,omitempty"`
}

// ErasedTenantsFile, in a node's data_dir, lists the tenants
// decommissioned on the node (JSON array of participant IDs): their
// sealing keys are destroyed, and a configuration that still names them is
// accepted without them.
const ErasedTenantsFile = "erased-tenants.json"

// ErasedTenants reads the tenants decommissioned in dataDir (none when the
// file does not exist).
func ErasedTenants(dataDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, ErasedTenantsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ts []string
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s: %w", ErasedTenantsFile, err)
	}
	return ts, nil
}

// Export configures the tenants' tax systems' access to their records: an
// mTLS API and file drops.
type Export struct {
	// Listen is the HOST:PORT of the export API (TLS 1.3, client
	// certificates required); empty: no API, drops only.
	Listen string `json:"listen,omitempty"`
	// ClientCA holds the PEM certificates of the CAs that issue the tax
	// systems' certificates (required with Listen).
	ClientCA string `json:"client_ca,omitempty"`
	// Clients are the allowed tax systems.
	Clients []ExportClient `json:"clients,omitempty"`
	// Drops write a tenant's records as files into a directory.
	Drops []ExportDrop `json:"drops,omitempty"`
}

// ExportClient is one tax system allowed to pull one tenant's records.
type ExportClient struct {
	Name       string   `json:"name"`        // [a-z0-9-]{1,64}
	Tenant     string   `json:"tenant"`      // a tenant of this node
	CertSHA256 string   `json:"cert_sha256"` // SHA-256 of its certificate (DER), hex
	Networks   []string `json:"networks"`    // allowed source prefixes, e.g. "10.1.2.0/24"
}

// ExportDrop writes one tenant's records into a directory.
type ExportDrop struct {
	Name       string `json:"name"`
	Tenant     string `json:"tenant"`
	Dir        string `json:"dir"`
	MaxPending int    `json:"max_pending,omitempty"`
	Every      string `json:"every,omitempty"` // default "1m"
}

func (c *Node) validateExport() error {
	e := c.Export
	hosted := map[string]bool{}
	for _, k := range c.SealingKeys {
		hosted[k.Tenant] = true
	}
	names := map[string]bool{}
	name := func(key, n, tenant string) error {
		if !exportNameRe.MatchString(n) {
			return bad(key+".name", "%q: expected [a-z0-9-]{1,64}", n)
		}
		if names[n] {
			return bad(key+".name", "%q used twice", n)
		}
		names[n] = true
		if !hosted[tenant] {
			return bad(key+".tenant", "%q is not a tenant of this node (no sealing key)", tenant)
		}
		return nil
	}
	if e.Listen != "" {
		if _, _, err := net.SplitHostPort(e.Listen); err != nil {
			return bad("export.listen", "%q: expected HOST:PORT", e.Listen)
		}
		if err := fileExists(e.ClientCA); err != nil {
			return bad("export.client_ca", "%v", err)
		}
	}
	for i, cl := range e.Clients {
		key := fmt.Sprintf("export.clients[%d]", i)
		if e.Listen == "" {
			return bad(key, "clients need export.listen")
		}
		if err := name(key, cl.Name, cl.Tenant); err != nil {
			return err
		}
		if b, err := hex.DecodeString(cl.CertSHA256); err != nil || len(b) != 32 {
			return bad(key+".cert_sha256", "expected 64 hex digits")
		}
		if len(cl.Networks) == 0 {
			return bad(key+".networks", "empty: name the networks the tax system connects from")
		}
		for j, n := range cl.Networks {
			if _, err := netip.ParsePrefix(n); err != nil {
				return bad(fmt.Sprintf("%s.networks[%d]", key, j), "%q: expected a prefix such as 10.1.2.0/24", n)
			}
		}
	}
	for i, d := range e.Drops {
		key := fmt.Sprintf("export.drops[%d]", i)
		if err := name(key, d.Name, d.Tenant); err != nil {
			return err
		}
		if st, err := os.Stat(d.Dir); err != nil || !st.IsDir() {
			return bad(key+".dir", "%q: expected an existing directory", d.Dir)
		}
		if d.Every != "" {
			if p, err := time.ParseDuration(d.Every); err != nil || p < time.Second {
				return bad(key+".every", "%q: expected a duration of at least 1s", d.Every)
			}
		}
	}
	return nil
}

var exportNameRe = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Scanner configures the malware check of received payloads.
type Scanner struct {
	// Clamd is the scanner's address: "unix:/run/clamav/clamd.ctl" or
	// "tcp:HOST:PORT" (ClamAV's clamd protocol).
	Clamd string `json:"clamd"`
	// Every is how often new records are looked for (default "5s").
	Every string `json:"every,omitempty"`
}

// Period returns the scanning period.
func (s *Scanner) Period() time.Duration {
	d, err := time.ParseDuration(s.Every)
	if err != nil || s.Every == "" {
		return 5 * time.Second
	}
	return d
}

// RetentionRule keeps the records of Tenant (of Type only, when it is not
// empty) for Keep after they were recorded: {"tenant": "lg:011002",
// "type": "income-tax-return", "keep": "7y"}. A tenant has either one
// rule for all its types or rules for single types, at most one per type.
type RetentionRule struct {
	Tenant string `json:"tenant"`
	Type   string `json:"type,omitempty"`
	// Keep is "Ny" (N calendar years), "Nd" (N days) or a Go duration
	// ("36h"), and at least one day.
	Keep string `json:"keep"`
}

// Cutoff returns the earliest recording time still kept at now: records
// recorded before it are expired. Keep must be valid (see ParseKeep).
func (r RetentionRule) Cutoff(now time.Time) (time.Time, error) {
	k, err := ParseKeep(r.Keep)
	if err != nil {
		return time.Time{}, err
	}
	return k.Before(now), nil
}

// Keep is a parsed retention period: Years calendar years, Days days and
// D more.
type Keep struct {
	Years, Days int
	D           time.Duration
}

// Before returns now moved back by k.
func (k Keep) Before(now time.Time) time.Time {
	return now.AddDate(-k.Years, 0, -k.Days).Add(-k.D)
}

// maxKeepYears bounds a retention period; beyond it nothing is ever erased.
const maxKeepYears = 200

var keepRe = regexp.MustCompile(`^([1-9][0-9]{0,5})([yd])$`)

// ParseKeep parses a retention period: "Ny" years, "Nd" days or a Go
// duration of at least one day (at most 200 years in all).
func ParseKeep(s string) (Keep, error) {
	if m := keepRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[2] == "y" {
			if n > maxKeepYears {
				return Keep{}, fmt.Errorf("%q: more than %d years", s, maxKeepYears)
			}
			return Keep{Years: n}, nil
		}
		if n > maxKeepYears*366 {
			return Keep{}, fmt.Errorf("%q: more than %d years", s, maxKeepYears)
		}
		return Keep{Days: n}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Keep{}, fmt.Errorf("%q: expected Ny (years), Nd (days) or a duration such as 36h", s)
	}
	if d < 24*time.Hour {
		return Keep{}, fmt.Errorf("%q: shorter than one day", s)
	}
	return Keep{D: d}, nil
}

// LegalHold stops the retention erasure of Tenant's records (of Type only,
// when it is not empty) through the day Until (YYYY-MM-DD, Japan time),
// or until it is removed from the configuration when Until is empty.
// Reason says why, briefly, without personal data (it is not logged).
type LegalHold struct {
	Tenant string `json:"tenant"`
	Type   string `json:"type,omitempty"`
	Until  string `json:"until,omitempty"`
	Reason string `json:"reason"`
}

// jst is Japan Standard Time, in which the days of legal holds end.
var jst = time.FixedZone("JST", 9*60*60)

// InForce reports whether h holds at now: Until is empty, or now is before
// the end of the day Until in Japan time. An invalid Until holds (a hold
// never lapses by mistake).
func (h LegalHold) InForce(now time.Time) bool {
	if h.Until == "" {
		return true
	}
	d, err := time.ParseInLocation("2006-01-02", h.Until, jst)
	if err != nil {
		return true
	}
	return now.Before(d.AddDate(0, 0, 1))
}

// Covers reports whether h, when in force, stops the erasure of records of
// tenant and typ ("" = all types): a hold of all types covers every rule
// of its tenant, and a hold of one type covers a rule of that type and a
// rule of all types (which would erase that type too).
func (h LegalHold) Covers(tenant, typ string) bool {
	return h.Tenant == tenant && (h.Type == "" || typ == "" || h.Type == typ)
}

// maxHoldReason bounds LegalHold.Reason in bytes.
const maxHoldReason = 200

// validateRetention checks the retention rules and legal holds against the
// tenants the node hosts.
func (c *Node) validateRetention() error {
	tenants := map[string]bool{}
	for _, k := range c.SealingKeys {
		tenants[k.Tenant] = true
	}
	checkTenantType := func(key, tenant, typ string) error {
		if tenant == "" {
			return bad(key+".tenant", "missing")
		}
		if !tenants[tenant] {
			return bad(key+".tenant", "%q is not a tenant of this node (none of sealing_keys[].tenant)", tenant)
		}
		if typ != "" {
			if err := envelope.ValidType(typ); err != nil {
				return bad(key+".type", "%v", err)
			}
		}
		return nil
	}
	seen := map[[2]string]int{}
	for i, r := range c.Retention {
		key := fmt.Sprintf("retention[%d]", i)
		if err := checkTenantType(key, r.Tenant, r.Type); err != nil {
			return err
		}
		if r.Keep == "" {
			return bad(key+".keep", "missing: expected Ny (years), Nd (days) or a duration")
		}
		if _, err := ParseKeep(r.Keep); err != nil {
			return bad(key+".keep", "%v", err)
		}
		if j, dup := seen[[2]string{r.Tenant, r.Type}]; dup {
			return bad(key, "tenant %s, type %q: already set by retention[%d]", r.Tenant, r.Type, j)
		}
		seen[[2]string{r.Tenant, r.Type}] = i
	}
	for i, r := range c.Retention {
		if j, all := seen[[2]string{r.Tenant, ""}]; all && r.Type != "" {
			return bad(fmt.Sprintf("retention[%d]", i), "tenant %s has a rule for all types (retention[%d]); it cannot also have rules for single types", r.Tenant, j)
		}
	}
	for i, h := range c.LegalHolds {
		key := fmt.Sprintf("legal_holds[%d]", i)
		if err := checkTenantType(key, h.Tenant, h.Type); err != nil {
			return err
		}
		if h.Until != "" {
			if _, err := time.Parse("2006-01-02", h.Until); err != nil {
				return bad(key+".until", "%q: expected YYYY-MM-DD, or omitted for a hold until removed", h.Until)
			}
		}
		if strings.TrimSpace(h.Reason) == "" {
			return bad(key+".reason", "missing: say briefly why (no personal data)")
		}
		if len(h.Reason) > maxHoldReason || !utf8.ValidString(h.Reason) {
			return bad(key+".reason", "expected at most %d bytes of UTF-8 text", maxHoldReason)
		}
		for _, r := range h.Reason {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return bad(key+".reason", "control or formatting character %U", r)
			}
		}
	}
	return nil
}

// Kinds of node store (NodeStore.Kind).
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// NodeStore selects a node's store: {"kind": "sqlite"} (the default) keeps
// it in data_dir/node.db; {"kind": "postgres", "dsn": "...", "schema":
// "..."} in the PostgreSQL database named by dsn (a libpq connection string
// or URL), in schema (default "taxlink"). The ciphertext side files
// (data_dir/outbox) and the hub checkpoint stay in data_dir either way.
type NodeStore struct {
	Kind   string `json:"kind,omitempty"`   // "sqlite" or "postgres"; empty: sqlite
	DSN    string `json:"dsn,omitempty"`    // postgres only, required
	Schema string `json:"schema,omitempty"` // postgres only; empty: taxlink
}

// KindOrDefault returns Kind, or StoreSQLite when it is empty.
func (s NodeStore) KindOrDefault() string {
	if s.Kind == "" {
		return StoreSQLite
	}
	return s.Kind
}

// pgSchemaRe is what a PostgreSQL schema name of the node store must be
// (as store/postgres.WithSchema requires).
var pgSchemaRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (s NodeStore) validate() error {
	switch s.KindOrDefault() {
	case StoreSQLite:
		if s.DSN != "" || s.Schema != "" {
			return bad("store", "dsn and schema apply to kind postgres only; an sqlite store lives in data_dir/node.db")
		}
	case StorePostgres:
		if s.DSN == "" {
			return bad("store.dsn", "missing: kind postgres needs a connection string, e.g. postgres://USER@HOST:5432/DB")
		}
		if s.Schema != "" && (!pgSchemaRe.MatchString(s.Schema) || strings.HasPrefix(s.Schema, "pg_")) {
			return bad("store.schema", "%q: expected 1..63 of a-z, 0-9 and _, not starting with a digit or pg_", s.Schema)
		}
	default:
		return bad("store.kind", "%q: expected %s or %s", s.Kind, StoreSQLite, StorePostgres)
	}
	return nil
}

var hostPortRe = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+$`)

func bad(key, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
}

func read(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, MaxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: trailing data after the JSON object", ErrInvalid, path)
	}
	return nil
}

// LoadHub reads and validates a hub configuration.
func LoadHub(path string) (*Hub, error) {
	var c Hub
	if err := read(path, &c); err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(path))
	if c.JetStream != nil {
		c.JetStream.CA = cmp.Or(abs(filepath.Dir(path), c.JetStream.CA), c.TLS.CA)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// LoadNode reads and validates a node configuration.
func LoadNode(path string) (*Node, error) {
	var c Node
	if err := read(path, &c); err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(path))
	for i := range c.SealingKeys {
		c.SealingKeys[i].File = resolveRef(filepath.Dir(path), c.SealingKeys[i].File)
	}
	if c.Export != nil {
		c.Export.ClientCA = abs(filepath.Dir(path), c.Export.ClientCA)
		for i := range c.Export.Drops {
			c.Export.Drops[i].Dir = abs(filepath.Dir(path), c.Export.Drops[i].Dir)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func abs(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

func (c *Common) resolve(base string) {
	c.DataDir = abs(base, c.DataDir)
	c.TLS.Cert = abs(base, c.TLS.Cert)
	c.TLS.Key = resolveRef(base, c.TLS.Key)
	c.Keys.PassphraseFile = abs(base, c.Keys.PassphraseFile)
	c.Keys.PINFile = abs(base, c.Keys.PINFile)
	c.Backup.Dir = abs(base, c.Backup.Dir)
	c.TLS.CA = abs(base, c.TLS.CA)
	c.TLS.IdentityMapping = abs(base, c.TLS.IdentityMapping)
	for i := range c.TLS.CRL {
		c.TLS.CRL[i] = abs(base, c.TLS.CRL[i])
	}
	c.SigningKey = resolveRef(base, c.SigningKey)
	c.Directory = abs(base, c.Directory)
	c.DirectoryKey = abs(base, c.DirectoryKey)
	if c.Detection != nil {
		for i := range c.Detection.Webhooks {
			c.Detection.Webhooks[i].SecretFile = abs(base, c.Detection.Webhooks[i].SecretFile)
		}
		if c.Detection.Email != nil {
			c.Detection.Email.PasswordFile = abs(base, c.Detection.Email.PasswordFile)
		}
	}
	if c.Console != nil {
		c.Console.Cert = abs(base, c.Console.Cert)
		c.Console.ClientCA = abs(base, c.Console.ClientCA)
		c.Console.Key = resolveRef(base, c.Console.Key)
		c.Console.State = abs(base, c.Console.State)
		if c.Console.State == "" {
			c.Console.State = filepath.Join(c.DataDir, "console.db")
		}
		c.Console.DirectorySigningKey = resolveRef(base, c.Console.DirectorySigningKey)
	}
}

func (c *Common) validate(role string) error {
	if c.Role != role {
		return bad("role", "%q: expected %q", c.Role, role)
	}
	if err := envelope.ValidParticipantID(c.ID); err != nil {
		return bad("id", "%v", err)
	}
	if !slices.Contains([]string{"production", "test", "dev"}, c.Environment) {
		return bad("environment", "%q: expected production, test or dev", c.Environment)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" || !hostPortRe.MatchString(c.Listen) {
		return bad("listen", "%q: expected HOST:PORT, e.g. 127.0.0.1:7443", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return bad("metrics_listen", "%q: expected HOST:PORT, e.g. 127.0.0.1:9100", c.MetricsListen)
		}
	}
	if c.MinFreeBytes < 0 {
		return bad("min_free_bytes", "%d: expected 0 (default) or a positive byte count", c.MinFreeBytes)
	}
	if c.DataDir == "" {
		return bad("data_dir", "missing: expected a directory path")
	}
	for _, f := range []struct{ key, path string }{
		{"tls.cert", c.TLS.Cert}, {"tls.ca", c.TLS.CA}, {"directory", c.Directory}, {"directory_key", c.DirectoryKey},
	} {
		if err := fileExists(f.path); err != nil {
			return bad(f.key, "%v", err)
		}
	}
	for _, f := range []struct{ key, ref string }{{"tls.key", c.TLS.Key}, {"signing_key", c.SigningKey}} {
		if err := checkKeyRef(f.key, f.ref, c.Environment, c.Keys); err != nil {
			return err
		}
	}
	for key, p := range map[string]string{"keys.passphrase_file": c.Keys.PassphraseFile, "keys.pin_file": c.Keys.PINFile} {
		if p != "" {
			if err := fileExists(p); err != nil {
				return bad(key, "%v", err)
			}
		}
	}
	for i, p := range c.TLS.CRL {
		if err := fileExists(p); err != nil {
			return bad(fmt.Sprintf("tls.crl[%d]", i), "%v", err)
		}
	}
	if c.TLS.ReloadEvery != "" {
		if d, err := time.ParseDuration(c.TLS.ReloadEvery); err != nil || d < time.Second {
			return bad("tls.reload_every", "%q: expected a duration of at least 1s, e.g. \"1m\"", c.TLS.ReloadEvery)
		}
	}
	if c.TLS.IdentityMapping != "" {
		b, err := os.ReadFile(c.TLS.IdentityMapping)
		if err != nil {
			return bad("tls.identity_mapping", "%v", err)
		}
		if _, err := pki.ParseMappingRules(b); err != nil {
			return bad("tls.identity_mapping", "%v", err)
		}
	}
	if c.Backup.Every != "" {
		if d, err := time.ParseDuration(c.Backup.Every); err != nil || d < time.Second {
			return bad("backup.every", "%q: expected a duration of at least 1s, e.g. \"10m\"", c.Backup.Every)
		}
	}
	if c.TLS.CRLRefresh != "" {
		if d, err := time.ParseDuration(c.TLS.CRLRefresh); err != nil || d < time.Second {
			return bad("tls.crl_refresh", "%q: expected a duration of at least 1s, e.g. \"5m\"", c.TLS.CRLRefresh)
		}
	}
	if d := c.Detection; d != nil {
		for i, w := range d.Webhooks {
			if err := fileExists(w.SecretFile); err != nil {
				return bad(fmt.Sprintf("detection.webhooks[%d].secret_file", i), "%v", err)
			}
		}
		if d.Email != nil && d.Email.PasswordFile != "" {
			if err := fileExists(d.Email.PasswordFile); err != nil {
				return bad("detection.email.password_file", "%v", err)
			}
		}
		if d.Syslog != nil && !slices.Contains([]string{"udp", "tcp", "unix"}, d.Syslog.Network) {
			return bad("detection.syslog.network", "%q: expected udp, tcp or unix", d.Syslog.Network)
		}
	}
	if c.Console != nil {
		if err := c.Console.validate(c.Environment, c.Keys); err != nil {
			return err
		}
		if c.Console.DirectorySigningKey != "" && role != "hub" {
			return bad("console.directory_signing_key", "only a hub's console signs directory changes")
		}
	}
	return nil
}

func fileExists(p string) error {
	if p == "" {
		return errors.New("missing: expected a file path")
	}
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%q: not a regular file", p)
	}
	return nil
}

// Validate checks every value of a hub configuration.
func (c *Hub) Validate() error {
	if err := c.validate("hub"); err != nil {
		return err
	}
	if c.ID[:4] != "hub:" {
		return bad("id", "%q: a hub's ID is hub:NAME", c.ID)
	}
	if c.InlineMax < 0 || c.InlineMax > 8<<20 {
		return bad("inline_max", "%d: expected 0 (default) to 8388608 bytes", c.InlineMax)
	}
	if c.MaxInFlight < 0 {
		return bad("max_in_flight", "%d: expected 0 (default) or a positive count", c.MaxInFlight)
	}
	if c.MaxEnvelope < 0 {
		return bad("max_envelope", "%d: expected 0 (default) or a positive byte count", c.MaxEnvelope)
	}
	if v := c.DeliveryIdle; v != "" {
		if d, err := time.ParseDuration(v); err != nil || d != 0 && (d < 100*time.Millisecond || d > 24*time.Hour) {
			return bad("delivery_idle", "%q: expected 0s (a loop for every recipient) or a duration from 100ms to 24h", v)
		}
	}
	if c.Cluster != nil && c.JetStream != nil {
		return bad("jetstream", "give cluster (JetStream embedded in each replica) or jetstream (an external cluster), not both")
	}
	if c.Cluster != nil {
		return c.Cluster.validate()
	}
	if j := c.JetStream; j != nil {
		for _, u := range strings.Split(j.URL, ",") {
			p, err := url.Parse(u)
			if err != nil || p.Scheme != "tls" || p.Host == "" || p.Path != "" {
				return bad("jetstream.url", "%q: expected tls://HOST:PORT[,tls://HOST:PORT…] (the connection is mutual TLS)", u)
			}
		}
		if j.Replicas == 0 {
			j.Replicas = 3
		}
		if j.Replicas != 1 && j.Replicas != 3 && j.Replicas != 5 {
			return bad("jetstream.replicas", "%d: expected 1, 3 or 5", j.Replicas)
		}
	}
	return nil
}

func (c *HubCluster) validate() error {
	token := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	if !token.MatchString(c.Name) {
		return bad("cluster.name", "%q: expected lower-case letters, digits and '-'", c.Name)
	}
	if !token.MatchString(c.Server) {
		return bad("cluster.server", "%q: expected lower-case letters, digits and '-'", c.Server)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("cluster.listen", "%q: expected HOST:PORT", c.Listen)
	}
	for i, r := range c.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return bad(fmt.Sprintf("cluster.routes[%d]", i), "%q: expected HOST:PORT", r)
		}
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Replicas != 3 && c.Replicas != 5 {
		return bad("cluster.replicas", "%d: expected 3 or 5 (a majority must survive the loss of one)", c.Replicas)
	}
	if len(c.Routes) < c.Replicas {
		return bad("cluster.routes", "%d routes for %d replicas: list every replica's route address", len(c.Routes), c.Replicas)
	}
	return nil
}

// Validate checks every value of a node configuration.
func (c *Node) Validate() error {
	if err := c.validate("node"); err != nil {
		return err
	}
	for i, h := range append([]string{c.HubURL}, c.HubURLs...) {
		key := "hub_url"
		if i > 0 {
			key = fmt.Sprintf("hub_urls[%d]", i-1)
		}
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			return bad(key, "%q: expected https://HOST:PORT", h)
		}
	}
	if err := envelope.ValidParticipantID(c.HubID); err != nil || c.HubID[:4] != "hub:" {
		return bad("hub_id", "%q: expected hub:NAME", c.HubID)
	}
	if err := c.Store.validate(); err != nil {
		return err
	}
	if len(c.SealingKeys) == 0 {
		return bad("sealing_keys", "empty: a node needs the sealing key of every tenant it hosts")
	}
	erased, err := ErasedTenants(c.DataDir)
	if err != nil {
		return bad("data_dir", "%v", err)
	}
	for i, k := range c.SealingKeys {
		key := fmt.Sprintf("sealing_keys[%d]", i)
		if err := envelope.ValidParticipantID(k.Tenant); err != nil {
			return bad(key+".tenant", "%v", err)
		}
		if k.KeyID == "" {
			return bad(key+".key_id", "missing")
		}
		if slices.Contains(erased, k.Tenant) {
			continue // decommissioned: its key file is destroyed
		}
		if err := checkKeyRef(key+".file", k.File, c.Environment, c.Keys); err != nil {
			return err
		}
		if strings.HasPrefix(k.File, "pkcs11:") {
			return bad(key+".file", "sealing keys cannot live on a PKCS#11 token (see package keystore): use enc:PATH")
		}
	}
	if c.Export != nil {
		if err := c.validateExport(); err != nil {
			return err
		}
	}
	if c.Scanner != nil {
		if !strings.HasPrefix(c.Scanner.Clamd, "unix:/") && !strings.HasPrefix(c.Scanner.Clamd, "tcp:") {
			return bad("scanner.clamd", "%q: expected unix:/PATH or tcp:HOST:PORT", c.Scanner.Clamd)
		}
		if c.Scanner.Every != "" {
			if d, err := time.ParseDuration(c.Scanner.Every); err != nil || d < 100*time.Millisecond {
				return bad("scanner.every", "%q: expected a duration of at least 100ms, e.g. \"5s\"", c.Scanner.Every)
			}
		}
	}
	return c.validateRetention()
}
