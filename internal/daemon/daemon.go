// Package daemon turns a hub's or a node's configuration file into a running
// service: it loads and checks the keys, certificates and signed directory
// the configuration names, opens the stores, and serves the API over mTLS on
// the configured listener. `taxlink hub`, `taxlink node`, `taxlink dev` and
// the integration tests all start services through it, so they share one
// code path.
package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"taxlink/internal/acceptance"
	"taxlink/internal/api"
	"taxlink/internal/audit"
	"taxlink/internal/clusterledger"
	"taxlink/internal/config"
	"taxlink/internal/console"
	"taxlink/internal/detect"
	"taxlink/internal/directory"
	"taxlink/internal/hub"
	"taxlink/internal/keystore"
	"taxlink/internal/ledger"
	"taxlink/internal/metrics"
	"taxlink/internal/node"
	"taxlink/internal/notekey"
	"taxlink/internal/operator"
	"taxlink/internal/pki"
	"taxlink/internal/queue"
	"taxlink/internal/recordings"
	"taxlink/internal/retention"
	"taxlink/internal/scan"
	"taxlink/internal/searchindex"
	"taxlink/internal/store"
	"taxlink/internal/store/postgres"
	"taxlink/internal/store/sqlite"
)

// Service is a started hub or node.
type Service struct {
	// Addr is the address the service API listens on.
	Addr string
	Hub  *hub.Hub // set for a hub
	// Queue is a hub's durable store.
	Queue *queue.Queue
	// Acceptances is a hub's store of acceptance receipts.
	Acceptances acceptance.Store
	// Recordings is a hub's store of recording receipts for the senders.
	Recordings recordings.Store
	Node       *node.Node // set for a node
	// Store is a node's store.
	Store store.NodeStore
	// MetricsAddr is where /metrics, /healthz and /readyz are served
	// ("" when not configured).
	MetricsAddr string
	// ConsoleAddr is where the web console listens ("" when not
	// configured).
	ConsoleAddr string
	// ConsoleClock is the console's clock, which drills and tests move
	// forward.
	ConsoleClock *console.Clock
	// Records is a node's data use: what its console's data users and its
	// exports open (nil for a hub).
	Records console.Records
	// Scans is a node's malware verdicts (nil without a scanner).
	Scans *scan.Ledger
	// ExportAddr is where a node's export API listens ("" when not
	// configured).
	ExportAddr string
	// Dir holds the directory in force.
	Dir *directory.Holder

	cancel context.CancelFunc
	done   chan error
	close  func()

	stopOnce sync.Once
	stopErr  error
}

// Stop ends the service and waits for it, closing its stores. Later calls
// return the first call's result.
func (s *Service) Stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		s.stopErr = <-s.done
		s.close()
	})
	return s.stopErr
}

// Directory returns the directory in force.
func (s *Service) Directory() *directory.Directory { return s.Dir.Get() }

type common struct {
	dir *directory.Holder
	// dirKey verifies the directory's signature.
	dirKey *ecdsa.PublicKey
	cert   tls.Certificate
	roots  *x509.CertPool
	// opts carry revocation checking into every TLS configuration.
	opts []pki.Option
	// rev is nil when no CRL is configured.
	rev *pki.Revocation
	// mapper maps peer certificates (nil: the taxlink URI SAN).
	mapper pki.Mapper
	// reloader presents the process's certificate and picks up a renewed
	// one without a restart.
	reloader    *pki.Reloader
	cas         []*x509.Certificate
	metrics     *prometheus.Registry
	reloadEvery time.Duration
	env         keystore.Env
	// closers release key storage (PKCS#11 sessions); reloads add to it.
	mu      sync.Mutex
	closers []io.Closer
}

func (c *common) addCloser(cl io.Closer) {
	c.mu.Lock()
	c.closers = append(c.closers, cl)
	c.mu.Unlock()
}

func (c *common) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.closers {
		cl.Close()
	}
	c.closers = nil
}

// runBackground rereads the CRLs, watches the certificate files for a
// renewal and warns of coming expiries until ctx ends.
func (c *common) runBackground(ctx context.Context, log *slog.Logger) {
	if c.rev != nil {
		go func() { _ = c.rev.Run(ctx) }()
	}
	go func() { _ = c.reloader.Watch(ctx, c.reloadEvery) }()
	go func() {
		t := time.NewTicker(12 * time.Hour)
		defer t.Stop()
		for {
			c.warnExpiry(log)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// expiryAhead is how early certificates and CRLs about to expire are
// reported.
const expiryAhead = 30 * 24 * time.Hour

func (c *common) warnExpiry(log *slog.Logger) {
	own := c.reloader.Certificate()
	ws := pki.ExpiryWarnings(append([]*x509.Certificate{own.Leaf}, c.cas...), time.Now(), expiryAhead)
	if c.rev != nil {
		ws = append(ws, c.rev.ExpiryWarnings(expiryAhead)...)
	}
	for _, w := range ws {
		log.Warn("ALERT: expiring soon", "kind", w.Kind, "subject", w.Subject, "identity", w.Identity, "not_after", w.NotAfter, "expired", w.Expired)
	}
}

func loadCommon(c *config.Common, log *slog.Logger) (*common, error) {
	pem, err := os.ReadFile(c.DirectoryKey)
	if err != nil {
		return nil, fmt.Errorf("directory_key: %w", err)
	}
	dk, err := pki.ParsePublicKeyPEM(string(pem))
	if err != nil {
		return nil, fmt.Errorf("directory_key %s: %w", c.DirectoryKey, err)
	}
	dir, err := directory.NewHolder(c.Directory, dk, c.Environment)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	env := keyEnv(c.Keys)
	cert, closer, err := loadTLS(c.TLS.Cert, c.TLS.Key, env)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	id, err := pki.IdentityFromCert(cert.Leaf)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("tls.cert %s: %w", c.TLS.Cert, err)
	}
	if id.ID != c.ID || id.Env != c.Environment {
		closer.Close()
		return nil, fmt.Errorf("tls.cert %s names %s, but the configuration is for %s in %s", c.TLS.Cert, id, c.ID, c.Environment)
	}
	cas, err := pki.ReadCertFile(c.TLS.CA)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("tls.ca: %w", err)
	}
	cm := &common{dir: dir, dirKey: dk, cert: cert, roots: pki.CertPool(cas...), env: env, closers: []io.Closer{closer}, cas: cas, reloadEvery: c.TLS.ReloadPeriod()}
	watch := []string{c.TLS.Cert}
	if r, err := keystore.ParseRef(c.TLS.Key); err == nil && r.Path != "" {
		watch = append(watch, r.Path)
	}
	cm.reloader, err = pki.NewReloader(c.TLS.Cert, "", time.Now, pki.ReloaderLogger(log), pki.ReloaderLoader(func() (tls.Certificate, error) {
		cert, closer, err := loadTLS(c.TLS.Cert, c.TLS.Key, env)
		if err == nil {
			cm.addCloser(closer)
		}
		return cert, err
	}, watch...))
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	cm.opts = append(cm.opts, pki.WithCertificateSource(cm.reloader))
	if c.TLS.IdentityMapping != "" {
		b, err := os.ReadFile(c.TLS.IdentityMapping)
		if err != nil {
			cm.close()
			return nil, err
		}
		rules, err := pki.ParseMappingRules(b)
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("tls.identity_mapping: %w", err)
		}
		m, err := pki.NewRuleMapper(rules, pki.URIMapper{})
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("tls.identity_mapping: %w", err)
		}
		cm.mapper = m
		cm.opts = append(cm.opts, pki.WithIdentityMapper(m))
	}
	if len(c.TLS.CRL) > 0 {
		rev, err := pki.NewRevocation(pki.RevocationOptions{
			Files: c.TLS.CRL, Issuers: cas, Now: time.Now, Refresh: c.TLS.CRLRefreshPeriod(), Logger: log,
		})
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("tls.crl: %w", err)
		}
		cm.rev = rev
		cm.opts = append(cm.opts, pki.WithRevocation(rev))
	}
	return cm, nil
}

func serve(ctx context.Context, listen string, svc *Service, handlerStart func(context.Context, net.Listener) error) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	svc.Addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	svc.cancel = cancel
	svc.done = make(chan error, 1)
	go func() { svc.done <- handlerStart(ctx, ln) }()
	return nil
}

// StartHub starts the hub described by the configuration at path.
func StartHub(ctx context.Context, path string, log *slog.Logger) (*Service, error) {
	c, err := config.LoadHub(path)
	if err != nil {
		return nil, err
	}
	cm, err := loadCommon(&c.Common, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, sc, err := loadMatchingSigner(c.SigningKey, cm.env, cm.dir.Get().HubKey())
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: signing_key: %w", path, err)
	}
	cm.addCloser(sc)
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		cm.close()
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	qo := queue.InDataDir(c.DataDir)
	qo.InlineMax, qo.Logger = c.InlineMax, log
	if cl := c.Cluster; cl != nil {
		tc, err := pki.PeerConfig(tls.Certificate{}, cm.roots, pki.Identity{Env: c.Environment, ID: c.ID}, cm.opts...)
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("%s: cluster: %w", path, err)
		}
		qo.Cluster = &queue.Cluster{Name: cl.Name, ServerName: cl.Server, Listen: cl.Listen, Routes: cl.Routes, TLS: tc, Replicas: cl.Replicas}
	}
	if c.Cluster != nil || c.JetStream != nil {
		qo.BlobDir = "" // replicas keep blobs in JetStream
	}
	if j := c.JetStream; j != nil {
		tc, err := externalTLS(j.CA, cm.reloader)
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("%s: jetstream: %w", path, err)
		}
		qo.External = &queue.External{URL: j.URL, TLS: tc, Replicas: j.Replicas}
	}
	q, err := queue.Open(ctx, qo)
	if err != nil {
		cm.close()
		return nil, err
	}
	acc, rec, closeStores, err := openReceiptStores(ctx, q, c.DataDir, log)
	if err != nil {
		q.Close()
		cm.close()
		return nil, err
	}
	reg := metrics.NewRegistry()
	hm := metrics.NewHub(reg)
	cm.metrics = reg
	lg, err := openLedger(filepath.Join(c.DataDir, "ledger"), c.Environment, c.ID, "ledger", signer)
	if err != nil {
		closeStores()
		q.Close()
		cm.close()
		return nil, err
	}
	// A replica's ledger is its copy of the cluster's.
	var hl hub.Ledger = lg
	stopLedger := func() {}
	if c.Cluster != nil || c.JetStream != nil {
		cl, err := clusterledger.Open(ctx, q, lg, log)
		if err != nil {
			lg.Close()
			closeStores()
			q.Close()
			cm.close()
			return nil, err
		}
		hl, stopLedger = cl, cl.Close
	}
	al, err := openAudit(filepath.Join(c.DataDir, "audit"), c.Environment, c.ID, signer)
	if err != nil {
		stopLedger()
		lg.Close()
		closeStores()
		q.Close()
		cm.close()
		return nil, err
	}
	closeAll := func() {
		stopLedger()
		closeStores()
		q.Close()
		recordLocal(al, "stop", c.ID)
		al.Close()
		lg.Close()
		cm.close()
	}
	h, err := hub.New(hub.Config{
		ID: c.ID, Environment: c.Environment, Signer: signer, Directory: cm.dir, Queue: q, Acceptances: acc, Recordings: rec,
		Roots: cm.roots, TLSOptions: cm.opts, Mapper: cm.mapper, MaxEnvelope: c.MaxEnvelope, Logger: log,
		MaxInFlight: c.MaxInFlight, MinFreeBytes: c.MinFreeBytes,
		Ledger: hl, Audit: al, Metrics: hm, DeliveryIdle: c.DeliveryIdlePeriod(),
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	hubGauges(reg, h, q, lg, cm, c.DataDir)
	svc := &Service{Hub: h, Queue: q, Acceptances: acc, Recordings: rec, Dir: cm.dir, close: closeAll, ConsoleClock: &console.Clock{}}
	if c.MetricsListen != "" {
		svc.MetricsAddr, err = metrics.Serve(ctx, c.MetricsListen, metrics.Handler(reg, func(ctx context.Context) error {
			_, err := q.Total(ctx)
			return err
		}), log)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("metrics_listen: %w", err)
		}
	}
	be := &hubBackend{h: h, q: q, cm: cm, dataDir: c.DataDir, dirPath: c.Directory, ledger: lg.Size, env: c.Environment, now: time.Now}
	if c.Console != nil && c.Console.DirectorySigningKey != "" {
		ds, dsc, err := loadMatchingSigner(c.Console.DirectorySigningKey, cm.env, cm.dirKey)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: console.directory_signing_key: %w", path, err)
		}
		cm.addCloser(dsc)
		be.dirSigner = ds
	}
	var stopConsole func()
	var ops *operator.Store
	svc.ConsoleAddr, ops, stopConsole, err = startConsole(ctx, &c.Common, cm, al, be, nil, svc.ConsoleClock, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	dctx, stopDetection := context.WithCancel(ctx)
	closeHub := closeAll
	closeAll = func() {
		stopDetection()
		stopConsole()
		closeHub()
	}
	svc.close = closeAll
	if _, err := startDetection(dctx, &c.Common, al, ops, func() detect.Sample { return hubSample(dctx, h, q, cm) }, log); err != nil {
		closeAll()
		return nil, err
	}
	tc, err := pki.ServerConfigWith(tls.Certificate{}, cm.roots, c.Environment, cm.opts...)
	if err != nil {
		closeAll()
		return nil, err
	}
	admit(tc, func(id string) error {
		if _, err := cm.dir.Get().Node(id); err != nil {
			return fmt.Errorf("%s is not a node in the directory", id)
		}
		return nil
	}, al, cm.mapper)
	err = serve(ctx, c.Listen, svc, func(ctx context.Context, ln net.Listener) error {
		go h.Run(ctx)
		cm.runBackground(ctx, log)
		go watchDirectory(ctx, c.Directory, h, log)
		go backupLoop(ctx, c.Backup, log, map[string]*ledger.Log{"ledger": lg, "audit": al.Ledger()})
		recordLocal(al, "start", c.ID)
		return api.ServeWith(ctx, ln, tc, h.Handler(), log, tlsFailures(al, hm.AuthFailure))
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return svc, nil
}

// externalTLS is the hub's side of its connection to an external
// JetStream: TLS 1.3, the hub's (reloaded) certificate, the servers
// verified against the roots in caFile by their host names.
func externalTLS(caFile string, cert *pki.Reloader) (*tls.Config, error) {
	cas, err := pki.ReadCertFile(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: pki.CertPool(cas...),
		GetClientCertificate: cert.GetClientCertificate,
	}, nil
}

// LoadedNode is a node's configuration with its keys and stores opened, not
// yet serving: what `taxlink send` and `taxlink receipts` work with.
type LoadedNode struct {
	Config *config.Node
	Node   *node.Node
	Store  store.NodeStore
	Dir    *directory.Holder
	cm     *common
	signer crypto.Signer
	keys   []node.SealingKey
}

// Directory returns the directory in force.
func (l *LoadedNode) Directory() *directory.Directory { return l.Dir.Get() }

// Close closes the node's store and releases its keys.
func (l *LoadedNode) Close() error {
	err := l.Store.Close()
	l.cm.close()
	return err
}

// LoadNode opens the node described by the configuration at path.
func LoadNode(path string, log *slog.Logger) (*LoadedNode, error) {
	c, err := config.LoadNode(path)
	if err != nil {
		return nil, err
	}
	cm, err := loadCommon(&c.Common, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	me, err := cm.dir.Get().Node(c.ID)
	if err != nil {
		return nil, fmt.Errorf("%s: id: %w", path, err)
	}
	signer, sc, err := loadMatchingSigner(c.SigningKey, cm.env, me.Key())
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: signing_key: %w", path, err)
	}
	cm.addCloser(sc)
	erased, err := config.ErasedTenants(c.DataDir)
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var keys []node.SealingKey
	for i, k := range c.SealingKeys {
		if slices.Contains(erased, k.Tenant) {
			log.Warn("tenant decommissioned: its sealing key is destroyed and not loaded; remove it from the configuration", "tenant", k.Tenant, "key_id", k.KeyID)
			continue
		}
		ref, err := keystore.ParseRef(k.File)
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("%s: sealing_keys[%d]: %w", path, i, err)
		}
		env := cm.env
		env.SealingKEM = k.KEM
		priv, err := keystore.LoadSealingKey(ref, env)
		if err != nil {
			cm.close()
			return nil, fmt.Errorf("%s: sealing_keys[%d]: %w", path, i, err)
		}
		keys = append(keys, node.SealingKey{Tenant: k.Tenant, KeyID: k.KeyID, Key: priv})
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		cm.close()
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	rotated, err := loadRotated(c.DataDir, cm.env, erased)
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	keys = append(keys, rotated...)
	verifiers, err := notekey.FromDirectory(cm.dir.Get())
	if err != nil {
		cm.close()
		return nil, err
	}
	witness, err := ledger.NewWitness(filepath.Join(c.DataDir, "hub-checkpoint"), verifiers)
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := openNodeStore(c)
	if err != nil {
		cm.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, err := node.New(node.Config{
		ID: c.ID, Environment: c.Environment, Signer: signer, Directory: cm.dir, Store: st,
		SealingKeys: keys, OutboxDir: filepath.Join(c.DataDir, "outbox"), HubID: c.HubID, HubURL: c.HubURL, HubURLs: c.HubURLs,
		Roots: cm.roots, TLSOptions: cm.opts, Mapper: cm.mapper, Logger: log, Witness: witness,
	})
	if err != nil {
		st.Close()
		cm.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &LoadedNode{Config: c, Node: n, Store: st, Dir: cm.dir, cm: cm, signer: signer, keys: keys}, nil
}

// storeOpenTimeout bounds connecting to a PostgreSQL node store and
// migrating its schema.
const storeOpenTimeout = time.Minute

// openNodeStore opens the store c.Store selects: SQLite in
// data_dir/node.db by default, or a PostgreSQL schema.
func openNodeStore(c *config.Node) (store.NodeStore, error) {
	switch c.Store.KindOrDefault() {
	case config.StorePostgres:
		ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
		defer cancel()
		var opts []postgres.Option
		if c.Store.Schema != "" {
			opts = append(opts, postgres.WithSchema(c.Store.Schema))
		}
		st, err := postgres.Open(ctx, c.Store.DSN, opts...)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	default:
		return sqlite.Open(filepath.Join(c.DataDir, "node.db"))
	}
}

// StartNode starts the node described by the configuration at path: its
// inbox on the configured listener and its outbox loop.
func StartNode(ctx context.Context, path string, log *slog.Logger) (*Service, error) {
	l, err := LoadNode(path, log)
	if err != nil {
		return nil, err
	}
	al, err := openAudit(filepath.Join(l.Config.DataDir, "audit"), l.Config.Environment, l.Config.ID, l.signer)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.Node.SetAudit(al)
	if l.Config.MinFreeBytes > 0 {
		l.Node.SetMinFreeBytes(l.Config.MinFreeBytes)
	}
	reg := metrics.NewRegistry()
	nm := metrics.NewNode(reg)
	l.Node.SetMetrics(nm)
	l.cm.metrics = reg
	nodeGauges(reg, l)
	closeAll := func() {
		recordLocal(al, "stop", l.Config.ID)
		al.Close()
		l.Close()
	}
	svc := &Service{Node: l.Node, Store: l.Store, Dir: l.Dir, close: closeAll, ConsoleClock: &console.Clock{}}
	if l.Config.MetricsListen != "" {
		svc.MetricsAddr, err = metrics.Serve(ctx, l.Config.MetricsListen, metrics.Handler(reg, func(ctx context.Context) error {
			_, err := l.Store.Count(ctx, "")
			return err
		}), log)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("metrics_listen: %w", err)
		}
	}
	idx, err := searchindex.Open(filepath.Join(l.Config.DataDir, "search.db"))
	if err != nil {
		closeAll()
		return nil, err
	}
	prevClose := closeAll
	closeAll = func() {
		idx.Close()
		prevClose()
	}
	svc.close = closeAll
	ikeys, err := indexKeys(l.keys)
	if err != nil {
		closeAll()
		return nil, err
	}
	be := newNodeBackend(l, al, idx, ikeys)
	var sc *scanner
	if l.Config.Scanner != nil {
		clamd, err := scan.NewClamd(l.Config.Scanner.Clamd)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("scanner.clamd: %w", err)
		}
		ledger, err := scan.OpenLedger(filepath.Join(l.Config.DataDir, "scan.jsonl"))
		if err != nil {
			closeAll()
			return nil, err
		}
		closeScan := closeAll
		closeAll = func() {
			ledger.Close()
			closeScan()
		}
		svc.close = closeAll
		be.scans, svc.Scans = ledger, ledger
		sc = &scanner{st: l.Store, n: l.Node, clamd: clamd, ledger: ledger, tenants: be.tenants, al: al, log: log, cursor: map[string]int64{}}
	}
	svc.Records = be
	var stopConsole func()
	var ops *operator.Store
	svc.ConsoleAddr, ops, stopConsole, err = startConsole(ctx, &l.Config.Common, l.cm, al, be, be, svc.ConsoleClock, log)
	if err != nil {
		closeAll()
		return nil, err
	}
	if l.Config.Export != nil {
		var stopExport func()
		svc.ExportAddr, stopExport, err = startExport(ctx, l.Config.Export, l.Config.DataDir, be, al, log)
		if err != nil {
			closeAll()
			return nil, err
		}
		closeExport := closeAll
		closeAll = func() {
			stopExport()
			closeExport()
		}
		svc.close = closeAll
	}
	dctx, stopDetection := context.WithCancel(ctx)
	closeDetection := closeAll
	closeAll = func() {
		stopDetection()
		closeDetection()
	}
	svc.close = closeAll
	if _, err := startDetection(dctx, &l.Config.Common, al, ops, func() detect.Sample {
		return detect.Sample{Recorded: float64(l.Node.Stats().Recorded)}
	}, log); err != nil {
		closeAll()
		return nil, err
	}
	if sc != nil && ops != nil {
		sc.alert = func(a operator.Alert) {
			if _, err := ops.Alert(context.Background(), a); err != nil {
				log.Error("console alert failed", "err", err)
			}
		}
	}
	closeNode := closeAll
	closeAll = func() {
		stopConsole()
		closeNode()
	}
	svc.close = closeAll
	tc, err := pki.ServerConfigWith(tls.Certificate{}, l.cm.roots, l.Config.Environment, l.cm.opts...)
	if err != nil {
		closeAll()
		return nil, err
	}
	hubID := l.Config.HubID
	admit(tc, func(id string) error {
		if id != hubID {
			return fmt.Errorf("only the hub %s may connect, not %s", hubID, id)
		}
		return nil
	}, al, l.cm.mapper)
	err = serve(ctx, l.Config.Listen, svc, func(ctx context.Context, ln net.Listener) error {
		go l.Node.Run(ctx)
		l.cm.runBackground(ctx, log)
		go backupLoop(ctx, l.Config.Backup, log, map[string]*ledger.Log{"audit": al.Ledger()})
		if sc != nil {
			go sc.run(ctx, l.Config.Scanner.Period())
		}

		if len(l.Config.Retention) > 0 {
			go retention.Loop(ctx, time.Hour, l.Store, l.Config.Retention, l.Config.LegalHolds, time.Now,
				func(e audit.Event) { record(al, e) }, log)
		}
		recordLocal(al, "start", l.Config.ID)
		return api.ServeWith(ctx, ln, tc, l.Node.Handler(), log, tlsFailures(al, nm.AuthFailure))
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return svc, nil
}

// watchDirectory puts in force a newer directory written to the hub's
// directory file (by `taxlink directory publish`).
func watchDirectory(ctx context.Context, path string, h *hub.Hub, log *slog.Logger) {
	var last time.Time
	if st, err := os.Stat(path); err == nil {
		last = st.ModTime()
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil || st.ModTime().Equal(last) {
			continue
		}
		last = st.ModTime()
		doc, err := os.ReadFile(path)
		if err != nil {
			log.Error("reading the directory file failed", "err", err)
			continue
		}
		_, _ = h.UpdateDirectory(doc)
	}
}

// admit adds to tc's peer verification a check of the peer's identity
// against who may call this service at all, so that a certificate from the
// right CA but unknown to the directory fails the handshake (deny by
// default), before any HTTP is spoken.
func admit(tc *tls.Config, allowed func(id string) error, al *audit.Log, m pki.Mapper) {
	base := tc.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if base != nil {
			if err := base(cs); err != nil {
				return err
			}
		}
		id, err := pki.PeerIdentityWith(&cs, m)
		if err != nil {
			return err
		}
		if err := allowed(id.ID); err != nil {
			return err
		}
		record(al, audit.Event{Actor: id.ID, Action: "auth.success", From: "tls", Result: audit.ResultOK})
		return nil
	}
}

// tlsFailures records each refused handshake in al and counts it.
func tlsFailures(al *audit.Log, count func()) func(remote, reason string) {
	return func(remote, reason string) {
		count()
		if len(reason) > 200 {
			reason = reason[:200]
		}
		record(al, audit.Event{Actor: "unknown", Action: "auth.failure", From: remote, Result: audit.ResultDenied, Detail: reason})
	}
}

// openReceiptStores returns the hub's stores of acceptance and recording
// receipts and their close: for a queue shared with replicas, the bucket
// and the stream they share; else the SQLite files data_dir/accepted.db and
// data_dir/receipts.db, into which what an earlier version kept in
// JetStream is moved first (the recording receipts with their sequences,
// which the nodes hold as cursors).
func openReceiptStores(ctx context.Context, q *queue.Queue, dataDir string, log *slog.Logger) (acceptance.Store, recordings.Store, func(), error) {
	if q.Shared() {
		return q.Acceptances(), q.Recordings(), func() {}, nil
	}
	acc, err := acceptance.Open(filepath.Join(dataDir, "accepted.db"))
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := recordings.Open(filepath.Join(dataDir, "receipts.db"))
	if err != nil {
		acc.Close()
		return nil, nil, nil, err
	}
	closeBoth := func() { _ = rec.Close(); _ = acc.Close() }
	n, err := q.MoveAccepted(ctx, acc.Import)
	if err != nil {
		closeBoth()
		return nil, nil, nil, err
	}
	if n > 0 {
		log.Info("acceptance receipts moved from JetStream to accepted.db", "receipts", n)
	}
	if n, err = q.MoveReceipts(ctx, rec.Import); err != nil {
		closeBoth()
		return nil, nil, nil, err
	}
	if n > 0 {
		log.Info("recording receipts moved from JetStream to receipts.db", "receipts", n)
	}
	return acc, rec, closeBoth, nil
}

// openLedger opens (or creates) the tamper-evident log at dir, its
// checkpoints signed by the process's signing key.
func openLedger(dir, env, id, kind string, signer crypto.Signer) (*ledger.Log, error) {
	opts, err := ledgerOptions(env, id, kind, signer)
	if err != nil {
		return nil, err
	}
	l, err := ledger.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return l, nil
}

func ledgerOptions(env, id, kind string, signer crypto.Signer) (ledger.Options, error) {
	s, err := notekey.NewSigner(id, signer)
	if err != nil {
		return ledger.Options{}, err
	}
	v, err := notekey.NewVerifier(id, signer.Public().(*ecdsa.PublicKey))
	if err != nil {
		return ledger.Options{}, err
	}
	return ledger.Options{Origin: "taxlink/" + env + "/" + id + "/" + kind, Signer: s, Verifier: v}, nil
}

func openAudit(dir, env, id string, signer crypto.Signer) (*audit.Log, error) {
	opts, err := ledgerOptions(env, id, "audit", signer)
	if err != nil {
		return nil, err
	}
	l, err := audit.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return l, nil
}

// record appends e to al; a failure to record is logged by the caller's
// process log only (auditing never stops the service).
func record(al *audit.Log, e audit.Event) {
	if al != nil {
		_, _ = al.Record(context.Background(), e)
	}
}

func recordLocal(al *audit.Log, action, id string) {
	record(al, audit.Event{Actor: "system", Action: action, Object: id, From: "local", Result: audit.ResultOK})
	if al != nil {
		_, _ = al.Checkpoint(context.Background())
	}
}

// backupLoop copies each log to its subdirectory of b.Dir every period,
// incrementally; a failed copy is an error in the process log and is
// retried at the next period.
func backupLoop(ctx context.Context, b config.Backup, log *slog.Logger, logs map[string]*ledger.Log) {
	if b.Dir == "" {
		return
	}
	t := time.NewTicker(b.Period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for name, l := range logs {
			if _, err := l.Checkpoint(ctx); err != nil {
				log.Error("checkpoint before backup failed", "log", name, "err", err)
				continue
			}
			if err := ledger.Backup(ctx, l, filepath.Join(b.Dir, name)); err != nil && ctx.Err() == nil {
				log.Error("ALERT: log backup failed", "log", name, "err", err)
			}
		}
	}
}
