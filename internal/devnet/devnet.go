// Package devnet lays out and starts the development network: a throwaway
// PKI, a signed directory, and one configuration per hub and per node, all
// on 127.0.0.1. It is for development and tests only: its CA key sits beside
// the certificates it issued and its environment is "dev", which no
// production or test participant accepts.
//
// The network: the hub (hub:kiko), the National Tax Agency's node (nta:hq),
// a prefecture's node (東京都, lg:130001), a self-hosted city's node (札幌市,
// lg:011002), and an outsourcer's node hosting three towns of 北海道 —
// named from the embedded list of local governments.
package devnet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"taxlink/internal/config"
	"taxlink/internal/console"
	"taxlink/internal/directory"
	"taxlink/internal/envelope"
	"taxlink/internal/keystore"
	"taxlink/internal/lgdata"
	"taxlink/internal/operator"
	"taxlink/internal/pki"
)

// Environment is the environment of every dev certificate and directory.
const Environment = "dev"

// IDs of the dev network's participants.
const (
	HubID        = "hub:kiko"
	NTAID        = "nta:hq"
	TokyoID      = "lg:130001"
	SapporoID    = "lg:011002"
	OutsourcerID = "corp:8700150012345"
)

// Towns hosted by the dev outsourcer.
var outsourcedTowns = []string{"013030", "013315", "013323"}

// Notification types of the dev network.
func Types() []directory.Type {
	return []directory.Type{
		{Name: "income-tax-return", ContentTypes: []string{"application/xml"}, MaxSize: 16 << 20},
		{Name: "blue-return", ContentTypes: []string{"application/xml"}, MaxSize: 16 << 20},
		{Name: "paper-return-scan", ContentTypes: []string{"application/pdf"}, MaxSize: 200 << 20},
		{Name: "local-tax-info", ContentTypes: []string{"application/xml", "text/csv"}, MaxSize: 64 << 20},
	}
}

// Policy of the dev network: the NTA sends national-tax data to local
// governments; local governments send local-tax information to the NTA
// (資料情報等の相互データ提供).
func Policy() []directory.Rule {
	return []directory.Rule{
		{From: "nta", To: []string{"prefecture", "municipality"}, Types: []string{"income-tax-return", "blue-return", "paper-return-scan"}},
		{From: "prefecture", To: []string{"nta"}, Types: []string{"local-tax-info"}},
		{From: "municipality", To: []string{"nta"}, Types: []string{"local-tax-info"}},
	}
}

// NodeInfo describes one node of the layout.
type NodeInfo struct {
	ID      string
	Name    string
	Config  string // path of its configuration file
	Listen  string
	Tenants []string
}

// Layout is a dev network written to disk.
type Layout struct {
	Dir        string
	HubConfig  string
	HubListen  string
	Nodes      []NodeInfo
	Recipients []string // local governments that receive from the NTA
	// Consoles lists the web consoles, hub first, then nodes in order.
	Consoles []ConsoleInfo
	// HubReplicas lists every replica of a clustered hub, the first being
	// HubConfig at HubListen; empty for a single hub.
	HubReplicas []HubReplica `json:",omitempty"`
}

// HubReplica is one replica of a clustered dev hub.
type HubReplica struct {
	Config string // path of its configuration file
	Listen string // its service listener
	Route  string // its JetStream route listener
}

// ConsoleInfo is one process's web console with its development
// administrator.
type ConsoleInfo struct {
	Process string // participant ID of the hub or node
	URL     string // https://localhost:PORT
	// AdminCode is the one-time enrolment code of the development
	// administrator DevAdmin (a throwaway network keeps it in its layout).
	AdminCode string
}

// DevAdmin is the operator ID of the development administrator every dev
// console starts with.
const DevAdmin = "admin"

// Node returns the node with id.
func (l *Layout) Node(id string) (NodeInfo, bool) {
	for _, n := range l.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// Options tunes Init.
type Options struct {
	// Now is the start of the certificates' validity.
	Now time.Time
	// Ports fixes the listeners' ports (hub first, then nodes in order);
	// when nil, free ports are picked.
	Ports []int
	// ConsolePorts fixes the consoles' ports likewise.
	ConsolePorts []int
	// Endpoint, when set, returns the HOST:PORT at which the hub or node
	// id, listening on listen, is reached: what the directory advertises
	// as its endpoint and, for the hub, what every node's hub_url names (a
	// drill puts a fault proxy there). "" or a nil Endpoint: listen.
	Endpoint func(id, listen string) string
	// HubReplicas, when 3 or 5, makes the hub a cluster of that many
	// replicas (the first with the console); 0 or 1: a single hub.
	HubReplicas int
	// Prepare, when set, changes the network InitAndStart wrote before it
	// starts (a configuration, a file in a data directory). It runs again
	// for each start retried because a port was taken. Init ignores it.
	Prepare func(*Layout) error
}

type nodeSpec struct {
	id, name, dirName string
	tenants           []string
}

// Init writes a complete dev network into dir (which must be empty or not
// exist) and returns its layout.
func Init(dir string, opts Options) (*Layout, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return nil, fmt.Errorf("devnet: %s must be an empty directory", dir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	lg, err := lgdata.Load()
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	for _, c := range append([]string{"130001", "011002"}, outsourcedTowns...) {
		if _, ok := lg.Lookup(c); !ok {
			return nil, fmt.Errorf("devnet: local government %s missing from the embedded list", c)
		}
	}
	name := func(code string) string {
		g, _ := lg.Lookup(code)
		return g.Name
	}
	var towns []string
	for _, c := range outsourcedTowns {
		towns = append(towns, "lg:"+c)
	}
	specs := []nodeSpec{
		{NTAID, "国税庁", "nta-hq", []string{NTAID}},
		{TokyoID, name("130001"), "lg-130001", []string{TokyoID}},
		{SapporoID, name("011002"), "lg-011002", []string{SapporoID}},
		{OutsourcerID, "北海道自治体クラウド株式会社（開発用）", "corp-8700150012345", towns},
	}
	participants := []directory.Participant{
		{ID: NTAID, Name: "国税庁", Kind: "nta"},
		{ID: TokyoID, Name: name("130001"), Kind: "prefecture"},
		{ID: SapporoID, Name: name("011002"), Kind: "municipality"},
		{ID: OutsourcerID, Name: specs[3].name, Kind: "outsourcer", Certification: &directory.Certification{
			From: day(opts.Now.AddDate(0, -1, 0)), Until: day(opts.Now.AddDate(1, 0, 0)), LastAudit: day(opts.Now.AddDate(0, -2, 0)),
		}},
	}
	for _, c := range outsourcedTowns {
		participants = append(participants, directory.Participant{ID: "lg:" + c, Name: name(c), Kind: "municipality"})
	}

	ports := opts.Ports
	if ports == nil {
		if ports, err = freePorts(1 + len(specs)); err != nil {
			return nil, err
		}
	}
	if len(ports) != 1+len(specs) {
		return nil, fmt.Errorf("devnet: %d ports given, %d needed", len(ports), 1+len(specs))
	}
	cports := opts.ConsolePorts
	if cports == nil {
		if cports, err = freePorts(1 + len(specs)); err != nil {
			return nil, err
		}
	}
	if len(cports) != 1+len(specs) {
		return nil, fmt.Errorf("devnet: %d console ports given, %d needed", len(cports), 1+len(specs))
	}
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	endpoint := func(id, listen string) string {
		if opts.Endpoint != nil {
			if e := opts.Endpoint(id, listen); e != "" {
				return "https://" + e
			}
		}
		return "https://" + listen
	}

	ca, err := pki.NewCA("taxlink dev CA (DEVELOPMENT ONLY)", opts.Now.Add(-time.Hour), 90*24*time.Hour)
	if err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, err
	}
	// Every private key is written encrypted, as in production; the dev
	// passphrase sits beside them, which only a throwaway network may do.
	pass := make([]byte, 24)
	if _, err := rand.Read(pass); err != nil {
		return nil, err
	}
	passphrase := []byte(hex.EncodeToString(pass))
	passPath := filepath.Join(pkiDir, "dev-passphrase")
	if err := os.WriteFile(passPath, passphrase, 0o600); err != nil {
		return nil, err
	}
	writeKey := func(path string, key any) error { return keystore.WriteEncrypted(path, key, passphrase, devKeyParams) }
	caPath := filepath.Join(pkiDir, "ca.pem")
	if err := pki.WriteCertFile(caPath, ca.Cert); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(pkiDir, "ca.key"), ca.Key); err != nil {
		return nil, err
	}
	crl, err := ca.CRL(nil, opts.Now.Add(-time.Hour), 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	crlPath := filepath.Join(pkiDir, "ca.crl")
	if err := pki.WriteCRLFile(crlPath, crl); err != nil {
		return nil, err
	}
	dirKey, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	dirDir := filepath.Join(dir, "directory")
	if err := os.MkdirAll(dirDir, 0o700); err != nil {
		return nil, err
	}
	dirKeyPub, err := pki.MarshalPublicKeyPEM(&dirKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dirDir, "directory-key.pem"), []byte(dirKeyPub), 0o644); err != nil {
		return nil, err
	}

	lay := &Layout{Dir: dir, HubListen: addr(ports[0])}
	// issue writes a TLS identity and a signing key into d.
	issue := func(d, id string) (*ecdsa.PublicKey, error) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		k, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		cert, err := ca.Issue(pki.IssueRequest{
			Identity: pki.Identity{Env: Environment, ID: id}, Public: &k.PublicKey,
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			Server: true, Client: true, NotBefore: opts.Now.Add(-time.Hour), Validity: 90 * 24 * time.Hour,
		})
		if err != nil {
			return nil, err
		}
		if err := pki.WriteCertFile(filepath.Join(d, "tls.pem"), cert); err != nil {
			return nil, err
		}
		if err := writeKey(filepath.Join(d, "tls.key"), k); err != nil {
			return nil, err
		}
		sk, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		if err := writeKey(filepath.Join(d, "signing.key"), sk); err != nil {
			return nil, err
		}
		// The console's web server certificate, for browsers at
		// https://localhost (the WebAuthn relying party).
		ck, err := pki.NewKey()
		if err != nil {
			return nil, err
		}
		ccert, err := ca.Issue(pki.IssueRequest{
			Identity: pki.Identity{Env: Environment, ID: id}, Public: &ck.PublicKey,
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			Server: true, NotBefore: opts.Now.Add(-time.Hour), Validity: 90 * 24 * time.Hour,
		})
		if err != nil {
			return nil, err
		}
		if err := pki.WriteCertFile(filepath.Join(d, "console.pem"), ccert); err != nil {
			return nil, err
		}
		if err := writeKey(filepath.Join(d, "console.key"), ck); err != nil {
			return nil, err
		}
		return &sk.PublicKey, nil
	}
	// console configures a process's console on port p and invites its
	// development administrator.
	console := func(id, d string, p int) (*config.Console, error) {
		cc := &config.Console{
			Listen: addr(p), Origin: fmt.Sprintf("https://localhost:%d", p), RPID: "localhost",
			Cert: "console.pem", Key: "enc:console.key",
			// Dev operators may also sign in with a dev-CA certificate and a PIN.
			ClientCA: caPath,
		}
		if r, err := filepath.Rel(d, caPath); err == nil {
			cc.ClientCA = r
		}
		code, err := inviteAdmin(filepath.Join(d, "data", "console.db"))
		if err != nil {
			return nil, err
		}
		lay.Consoles = append(lay.Consoles, ConsoleInfo{Process: id, URL: cc.Origin, AdminCode: code})
		return cc, nil
	}

	common := func(role, id, d, listen string) config.Common {
		rel := func(p string) string {
			r, err := filepath.Rel(d, p)
			if err != nil {
				return p
			}
			return r
		}
		return config.Common{
			Role: role, ID: id, Environment: Environment, Listen: listen, DataDir: "data",
			TLS:           config.TLS{Cert: "tls.pem", Key: "enc:tls.key", CA: rel(caPath), CRL: []string{rel(crlPath)}, CRLRefresh: "2s", ReloadEvery: "2s"},
			SigningKey:    "enc:signing.key",
			Keys:          config.KeySources{PassphraseFile: rel(passPath)},
			Backup:        config.Backup{Dir: "backup", Every: "5s"},
			MetricsListen: "127.0.0.1:0", Directory: rel(filepath.Join(dirDir, "directory.json")),
			DirectoryKey: rel(filepath.Join(dirDir, "directory-key.pem")),
		}
	}

	hubDir := filepath.Join(dir, "hub")
	hubPub, err := issue(hubDir, HubID)
	if err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(hubDir, "directory-signing.key"), dirKey); err != nil {
		return nil, err
	}
	hubPEM, err := pki.MarshalPublicKeyPEM(hubPub)
	if err != nil {
		return nil, err
	}
	lay.HubConfig = filepath.Join(hubDir, "hub.json")
	hc := config.Hub{Common: common("hub", HubID, hubDir, lay.HubListen)}
	if hc.Console, err = console(HubID, hubDir, cports[0]); err != nil {
		return nil, err
	}
	hc.Console.DirectorySigningKey = "enc:directory-signing.key"
	if opts.HubReplicas > 1 {
		if err := writeReplicas(lay, &hc, opts.HubReplicas, common); err != nil {
			return nil, err
		}
	}
	if err := writeJSON(lay.HubConfig, hc); err != nil {
		return nil, err
	}

	hubURL := endpoint(HubID, lay.HubListen)
	var hubURLs []string
	for _, r := range lay.HubReplicas[min(1, len(lay.HubReplicas)):] {
		hubURLs = append(hubURLs, endpoint(HubID, r.Listen))
	}
	d := &directory.Directory{
		Version: 1, Environment: Environment, Issued: opts.Now.UTC().Truncate(time.Second),
		Hub:          directory.Hub{ID: HubID, Endpoint: hubURL, SigningKey: hubPEM},
		Participants: participants, Types: Types(), Policy: Policy(),
	}
	pidx := map[string]*directory.Participant{}
	for i := range d.Participants {
		pidx[d.Participants[i].ID] = &d.Participants[i]
	}
	for i, s := range specs {
		nd := filepath.Join(dir, "nodes", s.dirName)
		pub, err := issue(nd, s.id)
		if err != nil {
			return nil, err
		}
		pem, err := pki.MarshalPublicKeyPEM(pub)
		if err != nil {
			return nil, err
		}
		listen := addr(ports[1+i])
		nc := config.Node{Common: common("node", s.id, nd, listen), HubURL: hubURL, HubURLs: hubURLs, HubID: HubID}
		if nc.Console, err = console(s.id, nd, cports[1+i]); err != nil {
			return nil, err
		}
		for _, t := range s.tenants {
			// The statutory retention of tax records (e.g. 7 years);
			// nothing in a throwaway network gets that old.
			nc.Retention = append(nc.Retention, config.RetentionRule{Tenant: t, Keep: "7y"})
		}
		for _, t := range s.tenants {
			priv, err := envelope.GenerateSealingKey(envelope.DefaultKEM)
			if err != nil {
				return nil, err
			}
			pubRaw, err := envelope.MarshalPublicKey(priv.PublicKey())
			if err != nil {
				return nil, err
			}
			keyID := fileToken(t) + "-1"
			file := "sealing-" + fileToken(t) + ".key"
			if err := writeKey(filepath.Join(nd, file), priv); err != nil {
				return nil, err
			}
			nc.SealingKeys = append(nc.SealingKeys, config.SealingKeyFile{Tenant: t, KeyID: keyID, KEM: envelope.DefaultKEM, File: "enc:" + file})
			pidx[t].SealingKeys = append(pidx[t].SealingKeys, directory.SealingKey{ID: keyID, KEM: envelope.DefaultKEM, Public: base64.StdEncoding.EncodeToString(pubRaw)})
		}
		cfgPath := filepath.Join(nd, "node.json")
		if err := writeJSON(cfgPath, nc); err != nil {
			return nil, err
		}
		dn := directory.Node{ID: s.id, Name: s.name, Endpoint: endpoint(s.id, listen), SigningKey: pem, Tenants: s.tenants}
		if s.id == OutsourcerID {
			dn.Operator = OutsourcerID
		}
		d.Nodes = append(d.Nodes, dn)
		lay.Nodes = append(lay.Nodes, NodeInfo{ID: s.id, Name: s.name, Config: cfgPath, Listen: listen, Tenants: s.tenants})
		if s.id != NTAID {
			lay.Recipients = append(lay.Recipients, s.tenants...)
		}
	}
	signed, err := directory.Sign(d, dirKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dirDir, "directory.json"), signed, 0o644); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, layoutFile), lay); err != nil {
		return nil, err
	}
	return lay, nil
}

const layoutFile = "layout.json"

// writeReplicas makes hc the first of n hub replicas and writes the
// configurations of the others (hub-2, hub-3 … beside hub), each with a
// copy of the hub's identity and its own data and listeners.
func writeReplicas(lay *Layout, hc *config.Hub, n int, common func(role, id, d, listen string) config.Common) error {
	if n != 3 && n != 5 {
		return fmt.Errorf("devnet: %d hub replicas: expected 3 or 5", n)
	}
	ports, err := freePorts(2*n - 1)
	if err != nil {
		return err
	}
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	var routes []string
	for i := range n {
		routes = append(routes, addr(ports[n-1+i]))
	}
	cluster := func(i int) *config.HubCluster {
		return &config.HubCluster{Name: "taxlink-dev", Server: fmt.Sprintf("hub-%d", i+1), Listen: routes[i], Routes: routes, Replicas: n}
	}
	hc.Cluster = cluster(0)
	hubDir := filepath.Dir(lay.HubConfig)
	lay.HubReplicas = []HubReplica{{Config: lay.HubConfig, Listen: lay.HubListen, Route: routes[0]}}
	for i := 1; i < n; i++ {
		d := filepath.Join(lay.Dir, fmt.Sprintf("hub-%d", i+1))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		for _, f := range []string{"tls.pem", "tls.key", "signing.key"} {
			b, err := os.ReadFile(filepath.Join(hubDir, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
				return err
			}
		}
		listen := addr(ports[i-1])
		rc := config.Hub{Common: common("hub", HubID, d, listen), Cluster: cluster(i)}
		path := filepath.Join(d, "hub.json")
		if err := writeJSON(path, rc); err != nil {
			return err
		}
		lay.HubReplicas = append(lay.HubReplicas, HubReplica{Config: path, Listen: listen, Route: routes[i]})
	}
	return nil
}

// inviteAdmin creates the console state at path with the development
// administrator invited by the installation, and returns its enrolment
// code.
func inviteAdmin(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	st, err := operator.Open(operator.Config{Path: path, Now: time.Now})
	if err != nil {
		return "", err
	}
	defer st.Close()
	return st.Invite(context.Background(), console.SystemActor, operator.Operator{
		ID: DevAdmin, Name: "開発用管理者", Role: operator.RoleAdmin,
		Grant: operator.Grant{Tenants: []string{"*"}, Types: []string{"*"}},
	})
}

// ReadLayout returns the layout of a network written by Init into dir.
func ReadLayout(dir string) (*Layout, error) {
	b, err := os.ReadFile(filepath.Join(dir, layoutFile))
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	var lay Layout
	if err := json.Unmarshal(b, &lay); err != nil {
		return nil, fmt.Errorf("devnet: %s: %w", layoutFile, err)
	}
	return &lay, nil
}

// day truncates t to its UTC date.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func fileToken(id string) string {
	b := []byte(id)
	for i, c := range b {
		if c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// devKeyParams are light Argon2id parameters for dev keys: a dev network
// loads some twenty keys at start.
var devKeyParams = keystore.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// ReadKey opens an encrypted key file of lay (the dev passphrase is in the
// layout).
func ReadKey(lay *Layout, path string) (crypto.Signer, error) {
	pass, err := os.ReadFile(filepath.Join(lay.Dir, "pki", "dev-passphrase"))
	if err != nil {
		return nil, err
	}
	k, err := keystore.ReadEncrypted(path, pass)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("devnet: %s is not a signing key", path)
	}
	return s, nil
}

// TLSCert returns the TLS certificate and key of the hub's or a node's
// directory d in lay.
func TLSCert(lay *Layout, d string) (tls.Certificate, error) {
	certs, err := pki.ReadCertFile(filepath.Join(d, "tls.pem"))
	if err != nil {
		return tls.Certificate{}, err
	}
	k, err := ReadKey(lay, filepath.Join(d, "tls.key"))
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: k, Leaf: certs[0]}, nil
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	// Ports are chosen below Linux's ephemeral range (32768–60999): a port
	// the kernel hands out for port 0 is also handed to outgoing
	// connections, which could take it between now and the listen of the
	// process that gets it.
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("devnet: no free port found in 20000–32767")
		}
		p := 20000 + mrand.IntN(12768)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		lns = append(lns, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// IssueCert issues a TLS client certificate from lay's dev CA for id, valid
// from notBefore for validity, with a fresh key. The drills and tests use it
// to present certificates the network must refuse (expired, unknown, from
// another environment).
func IssueCert(lay *Layout, id pki.Identity, notBefore time.Time, validity time.Duration) (tls.Certificate, error) {
	ca, err := loadCA(lay)
	if err != nil {
		return tls.Certificate{}, err
	}
	k, err := pki.NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := ca.Issue(pki.IssueRequest{Identity: id, Public: &k.PublicKey, Client: true, NotBefore: notBefore, Validity: validity})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}, nil
}

// Revoke rewrites lay's CRL so that it lists certs as revoked; processes
// pick it up at their next CRL refresh.
func Revoke(lay *Layout, now time.Time, certs ...*x509.Certificate) error {
	ca, err := loadCA(lay)
	if err != nil {
		return err
	}
	crlPath := filepath.Join(lay.Dir, "pki", "ca.crl")
	old, err := pki.ReadCRLFile(crlPath)
	if err != nil {
		return err
	}
	entries := old.RevokedCertificateEntries
	for _, c := range certs {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now})
	}
	crl, err := ca.CRL(entries, now, 30*24*time.Hour)
	if err != nil {
		return err
	}
	return pki.WriteCRLFile(crlPath, crl)
}

func loadCA(lay *Layout) (*pki.CA, error) {
	caCerts, err := pki.ReadCertFile(filepath.Join(lay.Dir, "pki", "ca.pem"))
	if err != nil {
		return nil, err
	}
	caKey, err := ReadKey(lay, filepath.Join(lay.Dir, "pki", "ca.key"))
	if err != nil {
		return nil, err
	}
	return &pki.CA{Cert: caCerts[0], Key: caKey}, nil
}

// RenewCert issues a new certificate and key for the hub or node whose
// files are in d (same identity, both usages), and writes them over the
// old ones, key first: the running process puts them in force at its next
// reload, without a restart.
func RenewCert(lay *Layout, d string, id pki.Identity, now time.Time) (*x509.Certificate, error) {
	ca, err := loadCA(lay)
	if err != nil {
		return nil, err
	}
	pass, err := os.ReadFile(filepath.Join(lay.Dir, "pki", "dev-passphrase"))
	if err != nil {
		return nil, err
	}
	k, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	c, err := ca.Issue(pki.IssueRequest{
		Identity: id, Public: &k.PublicKey, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		Server: true, Client: true, NotBefore: now.Add(-time.Minute), Validity: 60 * 24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	if err := keystore.WriteEncrypted(filepath.Join(d, "tls.key"), k, pass, devKeyParams); err != nil {
		return nil, err
	}
	return c, pki.WriteCertFile(filepath.Join(d, "tls.pem"), c)
}
