package daemon

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/console"
	"taxlink/internal/directory"
	"taxlink/internal/fsutil"
	"taxlink/internal/hub"
	"taxlink/internal/metrics"
	"taxlink/internal/node"
	"taxlink/internal/operator"
	"taxlink/internal/pki"
	"taxlink/internal/queue"
	"taxlink/internal/scan"
	"taxlink/internal/searchindex"
	"taxlink/internal/store"
)

// OpenOperators opens the console state a configuration names, with the
// configured lockout and PIN policy: what the console and `taxlink
// console` commands work with.
func OpenOperators(cc *config.Console, now func() time.Time) (*operator.Store, error) {
	pin := operator.DefaultPINPolicy()
	if cc.PIN.MinLength > 0 {
		pin.MinLength = cc.PIN.MinLength
	}
	if cc.PIN.Classes > 0 {
		pin.Classes = cc.PIN.Classes
	}
	if cc.PIN.History > 0 {
		pin.History = cc.PIN.History
	}
	if cc.PIN.Expiry != "" {
		d, _ := time.ParseDuration(cc.PIN.Expiry) // validated with the configuration
		pin.Expiry = d
	}
	st, err := operator.Open(operator.Config{Path: cc.State, Now: now, PIN: pin, LockoutAfter: cc.LockoutAfter})
	if err != nil {
		return nil, fmt.Errorf("console.state: %w", err)
	}
	return st, nil
}

// startConsole serves the console c configures, if any, until ctx ends or
// the returned stop function is called, and returns its address. clock
// drives the console and its operator store.
func startConsole(parent context.Context, c *config.Common, cm *common, al *audit.Log, be console.Backend, rec console.Records, clock *console.Clock, log *slog.Logger) (string, *operator.Store, func(), error) {
	cc := c.Console
	if cc == nil {
		return "", nil, func() {}, nil
	}
	ops, err := OpenOperators(cc, clock.Now)
	if err != nil {
		return "", nil, nil, err
	}
	cert, closer, err := loadTLS(cc.Cert, cc.Key, cm.env)
	if err != nil {
		ops.Close()
		return "", nil, nil, fmt.Errorf("console.key: %w", err)
	}
	var clientCAs *x509.CertPool
	if cc.ClientCA != "" {
		cas, err := pki.ReadCertFile(cc.ClientCA)
		if err != nil {
			closer.Close()
			ops.Close()
			return "", nil, nil, fmt.Errorf("console.client_ca: %w", err)
		}
		clientCAs = pki.CertPool(cas...)
	}
	idle, lifetime := cc.Durations()
	con, err := console.New(console.Config{
		ID: c.ID, Environment: c.Environment, Origin: cc.Origin, RPID: cc.RPID,
		Operators: ops, Audit: al, Backend: be, Records: rec, Idle: idle, Lifetime: lifetime, Logger: log, Now: clock.Now,
		CardLogin: clientCAs != nil,
	})
	if err != nil {
		closer.Close()
		ops.Close()
		return "", nil, nil, err
	}
	ln, err := net.Listen("tcp", cc.Listen)
	if err != nil {
		closer.Close()
		ops.Close()
		return "", nil, nil, fmt.Errorf("console.listen: %w", err)
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := console.Serve(ctx, ln, cert, clientCAs, con.Handler(), log); err != nil {
			log.Error("console stopped", "err", err)
		}
	}()
	go con.Run(ctx)
	return ln.Addr().String(), ops, func() {
		cancel()
		<-done
		closer.Close()
		ops.Close()
	}, nil
}

// processCert lists the process's own certificate for the dashboard.
func processCert(cm *common) []console.Certificate {
	leaf := cm.reloader.Certificate().Leaf
	if leaf == nil {
		return nil
	}
	return []console.Certificate{{Subject: "TLS " + leaf.Subject.CommonName, NotAfter: leaf.NotAfter}}
}

func typeNames(d *directory.Directory) []string {
	var out []string
	for _, t := range d.Types {
		out = append(out, t.Name)
	}
	return out
}

// hubBackend is the console's view of a hub.
type hubBackend struct {
	h       *hub.Hub
	q       *queue.Queue
	cm      *common
	dataDir string
	dirPath string
	ledger  func() int64
	// dirSigner signs approved directory changes; nil: not configured.
	dirSigner crypto.Signer
	env       string
	now       func() time.Time
	mu        sync.Mutex // serialises directory changes
}

func (b *hubBackend) Kind() string { return "hub" }

func (b *hubBackend) Tenants() []string {
	var out []string
	for _, p := range b.cm.dir.Get().Participants {
		out = append(out, p.ID)
	}
	sort.Strings(out)
	return out
}

func (b *hubBackend) Types() []string { return typeNames(b.cm.dir.Get()) }

func (b *hubBackend) Status(ctx context.Context) (console.Status, error) {
	st := b.h.Stats()
	d := b.cm.dir.Get()
	s := console.Status{
		Counters:     map[string]float64{"accepted": float64(st.Accepted), "delivered": float64(st.Delivered), "refused": float64(st.Refused)},
		Certificates: processCert(b.cm),
		DiskFree:     metrics.DiskFree(b.dataDir),
		Facts: []console.Fact{
			{Label: "directory version", Value: fmt.Sprint(d.Version)},
			{Label: "ledger entries", Value: fmt.Sprint(b.ledger())},
			{Label: "accepted / delivered / retries", Value: fmt.Sprintf("%d / %d / %d", st.Accepted, st.Delivered, st.Retries)},
		},
	}
	backlogs, err := b.q.Backlogs(ctx)
	if err != nil {
		return s, err
	}
	failures := b.h.DeliveryFailures()
	for _, r := range d.Recipients() {
		n := backlogs[queue.Token(r)]
		if n == 0 && failures[r] == 0 {
			continue
		}
		bl := console.Backlog{Recipient: r, Count: n, Errors: failures[r]}
		if t, ok, err := b.q.Oldest(ctx, queue.Token(r)); err == nil && ok {
			bl.Oldest = t
		}
		s.Backlog = append(s.Backlog, bl)
	}
	sort.Slice(s.Backlog, func(i, j int) bool { return s.Backlog[i].Count > s.Backlog[j].Count })
	return s, nil
}

func (b *hubBackend) Actions() []console.Action {
	acts := []console.Action{{
		Kind: "directory.publish", Title: "署名済みディレクトリの公開", TitleEN: "Publish a signed directory",
		Fields: []console.Field{{Name: "document", Label: "署名済みディレクトリ", LabelEN: "Signed directory", Kind: "file", Max: directory.MaxSize}},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			d, err := directory.Verify([]byte(v["document"]), b.cm.dirKey, b.env)
			if err != nil {
				return "", "", err
			}
			cur := b.cm.dir.Get()
			if d.Version <= cur.Version {
				return "", "", fmt.Errorf("version %d is not newer than the version in force, %d", d.Version, cur.Version)
			}
			return fmt.Sprintf("directory version %d", d.Version), summarise(directory.Diff(cur, d)), nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			return b.publish([]byte(v["document"]))
		},
	}}
	if b.dirSigner == nil {
		return acts
	}
	for _, suspend := range []bool{true, false} {
		kind, title, titleEN := "participant.suspend", "参加者の停止", "Suspend a participant"
		if !suspend {
			kind, title, titleEN = "participant.resume", "参加者の停止解除", "Resume a participant"
		}
		acts = append(acts, console.Action{
			Kind: kind, Title: title, TitleEN: titleEN, Tenant: "participant",
			Fields: []console.Field{
				{Name: "participant", Label: "参加者", LabelEN: "Participant", Kind: "text", Max: 128},
				{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
			},
			Check: func(ctx context.Context, v map[string]string) (string, string, error) {
				p, err := b.cm.dir.Get().Participant(v["participant"])
				if err != nil {
					return "", "", err
				}
				if p.Suspended == suspend {
					return "", "", fmt.Errorf("%s is already in that state", p.ID)
				}
				if strings.TrimSpace(v["reason"]) == "" {
					return "", "", errors.New("a reason is required")
				}
				return p.ID, kind + ": " + v["reason"], nil
			},
			Exec: func(ctx context.Context, v map[string]string) (string, error) {
				return b.setSuspended(v["participant"], suspend)
			},
		})
	}
	return acts
}

func summarise(ch []directory.Change) string {
	var parts []string
	for _, c := range ch {
		parts = append(parts, c.String())
	}
	s := strings.Join(parts, "; ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// publish puts a signed directory in force and keeps it in the directory
// file, so that a restart starts from it.
func (b *hubBackend) publish(doc []byte) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed, err := b.h.UpdateDirectory(doc)
	if err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(b.dirPath, doc, 0o644); err != nil {
		return "", fmt.Errorf("directory in force but not saved: %w", err)
	}
	if !changed {
		return "directory unchanged", nil
	}
	return fmt.Sprintf("directory version %d in force", b.cm.dir.Get().Version), nil
}

// setSuspended signs a new directory version with the participant's
// suspension set or cleared.
func (b *hubBackend) setSuspended(id string, suspended bool) (string, error) {
	d, err := directory.Verify(b.cm.dir.Signed(), b.cm.dirKey, b.env)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(d.Participants, func(p directory.Participant) bool { return p.ID == id })
	if i < 0 {
		return "", fmt.Errorf("%s: %w", id, directory.ErrUnknown)
	}
	d.Participants[i].Suspended = suspended
	d.Version++
	d.Issued = b.now().UTC().Truncate(time.Second)
	doc, err := directory.Sign(d, b.dirSigner)
	if err != nil {
		return "", err
	}
	res, err := b.publish(doc)
	if err != nil {
		return "", err
	}
	state := "suspended"
	if !suspended {
		state = "resumed"
	}
	return id + " " + state + "; " + res, nil
}

// nodeBackend is the console's view of a node, and the data users' access
// to its records.
type nodeBackend struct {
	l       *LoadedNode
	st      store.NodeStore
	n       *node.Node
	cm      *common
	idx     *searchindex.Index
	keys    map[string]searchindex.Key
	tenants []string
	al      *audit.Log
	// scans holds the malware verdicts; nil when no scanner is configured.
	scans *scan.Ledger
}

func newNodeBackend(l *LoadedNode, al *audit.Log, idx *searchindex.Index, keys map[string]searchindex.Key) *nodeBackend {
	var tenants []string
	for _, k := range l.Config.SealingKeys {
		if !slices.Contains(tenants, k.Tenant) {
			tenants = append(tenants, k.Tenant)
		}
	}
	sort.Strings(tenants)
	return &nodeBackend{l: l, st: l.Store, n: l.Node, cm: l.cm, idx: idx, keys: keys, tenants: tenants, al: al}
}

func (b *nodeBackend) Kind() string      { return "node" }
func (b *nodeBackend) Tenants() []string { return b.tenants }
func (b *nodeBackend) Types() []string   { return typeNames(b.cm.dir.Get()) }

func (b *nodeBackend) Status(ctx context.Context) (console.Status, error) {
	st := b.n.Stats()
	s := console.Status{
		Counters:     map[string]float64{"recorded": float64(st.Recorded), "refused": float64(st.Refused)},
		Certificates: processCert(b.cm),
		DiskFree:     metrics.DiskFree(b.l.Config.DataDir),
		Facts:        []console.Fact{{Label: "directory version", Value: fmt.Sprint(b.cm.dir.Get().Version)}},
	}
	total, accepted, recorded, err := b.st.OutgoingCounts(ctx)
	if err != nil {
		return s, err
	}
	s.Facts = append(s.Facts, console.Fact{Label: "outbox: pending / awaiting recording", Value: fmt.Sprintf("%d / %d", total-accepted, accepted-recorded)})
	return s, nil
}

// sync brings the search index up to date for tenants.
func (b *nodeBackend) sync(ctx context.Context, tenants []string) error {
	for _, t := range tenants {
		k, ok := b.keys[t]
		if !ok {
			continue
		}
		if _, err := b.idx.Sync(ctx, b.st, t, k, b.openForIndex); err != nil {
			return err
		}
	}
	return nil
}

// openForIndex opens a record for the indexer; it is not an operator's
// access, so it is not an audited view.
func (b *nodeBackend) openForIndex(ctx context.Context, tenant, id string) (io.ReadCloser, string, error) {
	rc, hdr, err := b.n.OpenAs(ctx, "", "", tenant, id)
	if err != nil {
		return nil, "", err
	}
	return rc, hdr.ContentType, nil
}

func (b *nodeBackend) Search(ctx context.Context, q searchindex.Query) ([]searchindex.Entry, int, error) {
	if err := b.sync(ctx, q.Tenants); err != nil {
		return nil, 0, err
	}
	return b.idx.Search(ctx, q, b.keys)
}

func (b *nodeBackend) Open(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, console.Opened, error) {
	rec, err := b.st.Get(ctx, tenant, id)
	if err != nil {
		return nil, console.Opened{}, err
	}
	if b.scans != nil {
		switch st, _, _ := b.scans.State(tenant, id); st {
		case scan.Quarantined:
			return nil, console.Opened{}, console.ErrQuarantined
		case scan.Pending:
			return nil, console.Opened{}, console.ErrScanPending
		}
	}
	rc, hdr, err := b.n.OpenAs(ctx, actor, from, tenant, id)
	if err != nil {
		return nil, console.Opened{}, err
	}
	return rc, console.Opened{Type: rec.Type, ContentType: hdr.ContentType, Size: int64(hdr.PayloadSize), Created: rec.Created, Sender: rec.Sender}, nil
}

func (b *nodeBackend) Actions() []console.Action {
	return []console.Action{b.rotateAction(), b.decommissionAction(), {
		Kind: "records.erase", Title: "記録の消去", TitleEN: "Erase records", Tenant: "tenant",
		Fields: []console.Field{
			{Name: "tenant", Label: "団体", LabelEN: "Tenant", Kind: "text", Max: 128},
			{Name: "before", Label: "この日より前に記録されたもの", LabelEN: "Recorded before", Kind: "date", Max: 10},
			{Name: "type", Label: "通知種別（空欄: すべて）", LabelEN: "Type (empty: all)", Kind: "text", Max: 64},
			{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			q, err := b.eraseQuery(v)
			if err != nil {
				return "", "", err
			}
			if strings.TrimSpace(v["reason"]) == "" {
				return "", "", errors.New("a reason is required")
			}
			obj := q.Recipient + " before " + v["before"]
			if q.Type != "" {
				obj += " type " + q.Type
			}
			return obj, "erase: " + v["reason"], nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			q, err := b.eraseQuery(v)
			if err != nil {
				return "", err
			}
			var n, bytes int64
			for {
				e, err := b.st.Erase(ctx, q)
				if err != nil {
					return fmt.Sprintf("%d records erased before the error", n), err
				}
				if e.Count == 0 {
					break
				}
				n += e.Count
				bytes += e.Bytes
				if err := b.idx.Remove(ctx, q.Recipient, e.IDs); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("%d records (%d bytes of ciphertext) erased", n, bytes), nil
		},
	}}
}

// rotateAction is the two-person sealing key rotation of a tenant.
func (b *nodeBackend) rotateAction() console.Action {
	return console.Action{
		Kind: "sealing.rotate", Title: "封緘鍵の更新", TitleEN: "Rotate a sealing key", Tenant: "tenant",
		Fields: []console.Field{
			{Name: "tenant", Label: "団体", LabelEN: "Tenant", Kind: "text", Max: 128},
			{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			if !slices.Contains(b.tenants, v["tenant"]) {
				return "", "", fmt.Errorf("%q is not a tenant of this node", v["tenant"])
			}
			if strings.TrimSpace(v["reason"]) == "" {
				return "", "", errors.New("a reason is required")
			}
			return v["tenant"], "rotate: " + v["reason"], nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			id, pub, err := rotateSealingKey(b.l.Config.DataDir, b.cm.env, b.n, v["tenant"], time.Now())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("key %s in use; publish its public key %s in the directory", id, pub), nil
		},
	}
}

func (b *nodeBackend) eraseQuery(v map[string]string) (store.EraseQuery, error) {
	t := v["tenant"]
	if !slices.Contains(b.tenants, t) {
		return store.EraseQuery{}, fmt.Errorf("%q is not a tenant of this node", t)
	}
	day, err := time.ParseInLocation("2006-01-02", v["before"], time.FixedZone("JST", 9*3600))
	if err != nil {
		return store.EraseQuery{}, errors.New("before: expected a date YYYY-MM-DD")
	}
	q := store.EraseQuery{Recipient: t, Type: v["type"], RecordedBefore: day, Limit: store.MaxEraseLimit}
	return q, q.Validate()
}

// indexKeys derives each tenant's blind-index key from its first sealing
// key: destroying a tenant's keys also makes its index unlinkable.
func indexKeys(keys []node.SealingKey) (map[string]searchindex.Key, error) {
	out := map[string]searchindex.Key{}
	for _, k := range keys {
		if _, ok := out[k.Tenant]; ok {
			continue
		}
		secret, err := k.Secret()
		if err != nil {
			return nil, err
		}
		out[k.Tenant] = searchindex.DeriveKey(secret, k.Tenant)
		clear(secret)
	}
	return out, nil
}
