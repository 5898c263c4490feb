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
	"path/filepath"
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
	"taxlink/internal/standard"
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
	atts, err := standard.OpenFileAttestations(filepath.Join(c.DataDir, standard.AttestationsFile))
	if err != nil {
		closer.Close()
		ops.Close()
		return "", nil, nil, err
	}
	idle, lifetime := cc.Durations()
	con, err := console.New(console.Config{
		ID: c.ID, Environment: c.Environment, Origin: cc.Origin, RPID: cc.RPID,
		Operators: ops, Audit: al, Backend: be, Records: rec, Idle: idle, Lifetime: lifetime, Logger: log, Now: clock.Now,
		CardLogin: clientCAs != nil, Attestations: atts,
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
	s.Bulletins = bulletins(d.Bulletins)
	for _, h := range d.Holds {
		s.Holds = append(s.Holds, fmt.Sprintf("%s: %s %s%s%s (%s)", h.ID, h.Scope, h.From, arrow(h.From, h.To), h.Type, h.Reason))
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
	acts = append(acts, b.incidentActions()...)
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

// bulletins converts the directory's bulletins for the console, newest
// first.
func bulletins(bs []directory.Bulletin) []console.Bulletin {
	var out []console.Bulletin
	for _, b := range bs {
		out = append(out, console.Bulletin{Time: b.Time, Severity: b.Severity, Title: b.Title, Body: b.Body, Audience: b.Audience})
	}
	slices.SortFunc(out, func(a, b console.Bulletin) int { return b.Time.Compare(a.Time) })
	return out
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

// changeDirectory signs and puts in force a new directory version made by
// mutate from the one in force.
func (b *hubBackend) changeDirectory(mutate func(d *directory.Directory) error) (string, error) {
	d, err := directory.Verify(b.cm.dir.Signed(), b.cm.dirKey, b.env)
	if err != nil {
		return "", err
	}
	if err := mutate(d); err != nil {
		return "", err
	}
	d.Version++
	d.Issued = b.now().UTC().Truncate(time.Second)
	doc, err := directory.Sign(d, b.dirSigner)
	if err != nil {
		return "", err
	}
	return b.publish(doc)
}

// setSuspended signs a new directory version with the participant's
// suspension set or cleared.
func (b *hubBackend) setSuspended(id string, suspended bool) (string, error) {
	res, err := b.changeDirectory(func(d *directory.Directory) error {
		i := slices.IndexFunc(d.Participants, func(p directory.Participant) bool { return p.ID == id })
		if i < 0 {
			return fmt.Errorf("%s: %w", id, directory.ErrUnknown)
		}
		d.Participants[i].Suspended = suspended
		return nil
	})
	if err != nil {
		return "", err
	}
	state := "suspended"
	if !suspended {
		state = "resumed"
	}
	return id + " " + state + "; " + res, nil
}

// incidentActions are the hub's incident measures (第2 4): holds of the
// whole network, a route or a type, their release, and bulletins.
func (b *hubBackend) incidentActions() []console.Action {
	hold := func(v map[string]string) directory.Hold {
		return directory.Hold{ID: strings.TrimSpace(v["id"]), Scope: v["scope"], From: strings.TrimSpace(v["from"]), To: strings.TrimSpace(v["to"]),
			Type: strings.TrimSpace(v["type"]), Reason: v["reason"], Since: b.now().UTC().Truncate(time.Second)}
	}
	// tryDir applies mutate to a copy of the directory in force and
	// validates the result, so a request is refused before it is queued.
	tryDir := func(mutate func(d *directory.Directory) error) error {
		d, err := directory.Verify(b.cm.dir.Signed(), b.cm.dirKey, b.env)
		if err != nil {
			return err
		}
		if err := mutate(d); err != nil {
			return err
		}
		d.Version++
		_, err = directory.Sign(d, b.dirSigner)
		return err
	}
	addHold := func(h directory.Hold) func(d *directory.Directory) error {
		return func(d *directory.Directory) error {
			if slices.ContainsFunc(d.Holds, func(x directory.Hold) bool { return x.ID == h.ID }) {
				return fmt.Errorf("a hold %q is already in force", h.ID)
			}
			d.Holds = append(d.Holds, h)
			return nil
		}
	}
	release := func(id string) func(d *directory.Directory) error {
		return func(d *directory.Directory) error {
			i := slices.IndexFunc(d.Holds, func(x directory.Hold) bool { return x.ID == id })
			if i < 0 {
				return fmt.Errorf("no hold %q is in force", id)
			}
			d.Holds = slices.Delete(d.Holds, i, i+1)
			return nil
		}
	}
	bulletin := func(v map[string]string) directory.Bulletin {
		return directory.Bulletin{ID: strings.TrimSpace(v["id"]), Time: b.now().UTC().Truncate(time.Second), Severity: v["severity"],
			Title: v["title"], Body: strings.ReplaceAll(v["body"], "\r\n", "\n"), Audience: splitIDs(v["audience"])}
	}
	post := func(x directory.Bulletin) func(d *directory.Directory) error {
		return func(d *directory.Directory) error {
			if slices.ContainsFunc(d.Bulletins, func(y directory.Bulletin) bool { return y.ID == x.ID }) {
				return fmt.Errorf("a bulletin %q exists", x.ID)
			}
			d.Bulletins = append(d.Bulletins, x)
			return nil
		}
	}
	return []console.Action{{
		Kind: "incident.hold", Title: "配信の一時停止（全体・経路・種別）", TitleEN: "Hold traffic (network, route or type)",
		Fields: []console.Field{
			{Name: "id", Label: "措置ID（英小文字・数字・-）", LabelEN: "Measure ID ([a-z0-9-])", Kind: "text", Max: 64},
			{Name: "scope", Label: "範囲（network / route / type）", LabelEN: "Scope (network / route / type)", Kind: "text", Max: 10},
			{Name: "from", Label: "送信者（経路）", LabelEN: "Sender (route)", Kind: "text", Max: 128},
			{Name: "to", Label: "受信者（経路）", LabelEN: "Recipient (route)", Kind: "text", Max: 128},
			{Name: "type", Label: "通知種別", LabelEN: "Type", Kind: "text", Max: 64},
			{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			h := hold(v)
			if err := tryDir(addHold(h)); err != nil {
				return "", "", err
			}
			return "hold " + h.ID, fmt.Sprintf("hold %s %s%s%s: %s", h.Scope, h.From, arrow(h.From, h.To), h.Type, h.Reason), nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			h := hold(v)
			res, err := b.changeDirectory(addHold(h))
			if err != nil {
				return "", err
			}
			return "hold " + h.ID + " in force; " + res, nil
		},
	}, {
		Kind: "incident.release", Title: "一時停止の解除", TitleEN: "Release a hold",
		Fields: []console.Field{
			{Name: "id", Label: "措置ID", LabelEN: "Measure ID", Kind: "text", Max: 64},
			{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			if err := tryDir(release(v["id"])); err != nil {
				return "", "", err
			}
			return "hold " + v["id"], "release: " + v["reason"], nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			res, err := b.changeDirectory(release(v["id"]))
			if err != nil {
				return "", err
			}
			return "hold " + v["id"] + " released; " + res, nil
		},
	}, {
		Kind: "bulletin.post", Title: "お知らせの掲示（参加者の端末へ）", TitleEN: "Post a bulletin to participants' consoles",
		Fields: []console.Field{
			{Name: "id", Label: "お知らせID（英小文字・数字・-）", LabelEN: "Bulletin ID ([a-z0-9-])", Kind: "text", Max: 64},
			{Name: "severity", Label: "重要度（info / warning / critical）", LabelEN: "Severity (info / warning / critical)", Kind: "text", Max: 10},
			{Name: "title", Label: "件名", LabelEN: "Title", Kind: "text", Max: 200},
			{Name: "body", Label: "本文", LabelEN: "Body", Kind: "textarea", Max: 4000},
			{Name: "audience", Label: "宛先（参加者ID、* は全員）", LabelEN: "Audience (participant IDs, * for all)", Kind: "text", Max: 4000},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			x := bulletin(v)
			if err := tryDir(post(x)); err != nil {
				return "", "", err
			}
			return "bulletin " + x.ID, x.Severity + ": " + x.Title, nil
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			x := bulletin(v)
			res, err := b.changeDirectory(post(x))
			if err != nil {
				return "", err
			}
			return "bulletin " + x.ID + " posted; " + res, nil
		},
	}}
}

func arrow(from, to string) string {
	if from == "" && to == "" {
		return ""
	}
	return "→" + to + " "
}

// splitIDs splits a list of participant IDs given in a form.
func splitIDs(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		out = append(out, f)
	}
	return out
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
	s.Bulletins = bulletins(b.cm.dir.Get().BulletinsFor(append([]string{b.l.Config.ID}, b.tenants...)))
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
	return rc, console.Opened{Type: hdr.Type, ContentType: hdr.ContentType, Size: int64(hdr.PayloadSize), Created: hdr.Created, Sender: hdr.Sender}, nil
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
