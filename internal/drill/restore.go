// The restore drill (第4 9(2)ウ): a dev network of real processes carries
// traffic; the hub and one recipient node are backed up, more traffic
// flows, then both are killed, their data directories destroyed and
// restored from the backups; the drill verifies the restored counts, the
// ledger's consistency and that delivery resumes, and reports what the
// restore lost and what the senders' outboxes recovered.

package drill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, for VACUUM INTO

	"taxlink/internal/devnet"
	"taxlink/internal/faultproxy"
	"taxlink/internal/ledger"
	"taxlink/internal/lgdata"
	"taxlink/internal/node"
	"taxlink/internal/notekey"
	"taxlink/internal/pause"
	"taxlink/internal/store"
	"taxlink/internal/store/sqlite"
	"taxlink/internal/synth"

	"golang.org/x/mod/sumdb/note"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Binary is the taxlink executable the hub and the nodes run as.
	// Required.
	Binary string
	// Dir is where the network, the backups and the processes' logs are
	// written; it must be empty or not exist, and is kept. When empty, a
	// temporary directory is used, removed when the drill passes and kept
	// (RestoreReport.Dir) when it does not.
	Dir string
	// Node is the recipient node backed up and restored with the hub
	// (default "lg:011002").
	Node string
	// Before is how many notifications are sent, and completed, before the
	// backup (default 300); AfterBackup how many after it (default 60: two
	// thirds while the hub runs and the restored node is stopped, a third
	// while the hub is down); AfterRestore how many after the restore
	// (default 30). Each is spread over every recipient.
	Before, AfterBackup, AfterRestore int
	// Settle bounds each wait for receipts (default 2m).
	Settle time.Duration
	// Progress receives progress lines (counts, paths, never payloads).
	// Nil: none.
	Progress io.Writer
}

// RestoreSummary is the outcome of the restore drill: the last line of
// `taxlink drill restore`, as JSON.
type RestoreSummary struct {
	// Node is the recipient node backed up and restored with the hub.
	Node string `json:"node"`
	// Sent is every notification the drill sent; BeforeBackup those sent
	// and completed before the backup.
	Sent         int `json:"sent"`
	BeforeBackup int `json:"before_backup"`
	// BackedUpRecords is how many records the node's backup (VACUUM INTO
	// copy) holds; ExpectedRecords how many the drill had completed to the
	// node's tenants when it took it; RestoredRecords how many the
	// restored node's store holds before it is started again.
	BackedUpRecords int64 `json:"backed_up_records"`
	ExpectedRecords int64 `json:"expected_records"`
	RestoredRecords int64 `json:"restored_records"`
	// AfterBackup counts notifications sent after the backup: accepted by
	// the hub before it was destroyed (AcceptedAfterBackup, of which
	// ToRestoredNode were addressed to the restored node and still queued
	// at the hub) or sealed while the hub was down (left pending in the
	// sender's outbox).
	AfterBackup         int `json:"after_backup"`
	AcceptedAfterBackup int `json:"accepted_after_backup"`
	ToRestoredNode      int `json:"accepted_after_backup_to_restored_node"`
	// Recovered counts post-backup notifications that reached their
	// recipient after the restore with both receipts verified (the
	// sender's outbox resubmitted them); Lost counts post-backup
	// notifications the hub accepted that no recipient recorded: the
	// restored queue does not hold them and the sender, holding their
	// acceptance receipt, does not resubmit them. LostIdentified counts
	// the lost ones the sender's outbox names (accepted, never recorded).
	Recovered      int `json:"recovered"`
	Lost           int `json:"lost"`
	LostIdentified int `json:"lost_identified"`
	// BackupLedgerEntries is the size of the hub ledger's backup;
	// WitnessedEntries the largest ledger size the sender's receipts and
	// the nodes' witness checkpoints attest before the disaster.
	BackupLedgerEntries int64 `json:"backup_ledger_entries"`
	WitnessedEntries    int64 `json:"witnessed_entries"`
	// RestoredVerified: the restored ledger and audit logs verify and are
	// the backups byte for byte (ledger.CheckBackup), the node's audit log
	// likewise.
	RestoredVerified bool `json:"restored_verified"`
	// LedgerConsistent: after the restore, every receipt the sender holds
	// is the hub ledger's entry at its index and every node's witness
	// checkpoint is extended by the hub's ledger (no rollback, no fork).
	LedgerConsistent bool `json:"ledger_consistent"`
	// WitnessAlarms counts the rollback or fork alarms the nodes logged
	// and the sender's own check raised after the restore; BackupAlerts
	// the hub's failed periodic backups after the restore (its backup
	// directory being ahead of the restored ledger).
	WitnessAlarms int `json:"witness_alarms"`
	// ReceiptsStalled counts resubmitted notifications whose recording
	// receipt the sender did not collect after the restore until its
	// receipt cursor was reset (CursorReset).
	ReceiptsStalled int  `json:"receipts_stalled"`
	CursorReset     bool `json:"receipt_cursor_reset"`
	BackupAlerts    int  `json:"backup_alerts"`
	// AfterRestore is how many notifications were sent after the restore;
	// DeliveryResumed says every one of them was recorded with both
	// receipts verified.
	AfterRestore    int  `json:"after_restore"`
	DeliveryResumed bool `json:"delivery_resumed"`
	// HubDowntimeS is how long the hub was stopped for its backup;
	// RestoreS how long destroying, restoring and restarting took.
	HubDowntimeS float64 `json:"hub_downtime_s"`
	RestoreS     float64 `json:"restore_s"`
	ElapsedS     float64 `json:"elapsed_s"`
	// Passed: the backups restored exactly (records and logs), delivery
	// resumed, every notification the outbox still held was recovered and
	// nothing beyond what the hub had accepted after the backup for the
	// restored node was lost. A ledger inconsistency is reported
	// (LedgerConsistent, WitnessAlarms) as the finding it is, not failed
	// on: it is what a restore from an older backup must cause.
	Passed bool `json:"passed"`
}

// RestoreStep is one step of the restore drill, for the report's table.
type RestoreStep struct {
	Step   string
	Detail string
	Took   time.Duration
}

// RestoreReport is what Restore found.
type RestoreReport struct {
	Summary RestoreSummary
	// Method describes how each part was backed up and restored.
	Method []string
	// Steps lists what the drill did, in order.
	Steps []RestoreStep
	// Findings are what the drill revealed (losses, the ledger's
	// rollback); Problems what went wrong beyond them.
	Findings []string
	Problems []string
	// Dir is where the network, backups and logs were kept ("" when they
	// were removed).
	Dir string
}

// receiptCursor is the sender store's cursor into the hub's receipt
// stream (node.PollReceipts).
const receiptCursor = "hub-receipts"

// restoreStallWait is how long the drill lets the sender collect receipts
// after the restore before it counts what stalled.
const restoreStallWait = 10 * time.Second

// restoreDrill is one run of the restore drill.
type restoreDrill struct {
	opts    RestoreOptions
	c       *chaos // the processes, the sender and the network
	vault   string
	target  devnet.NodeInfo
	tenants map[string]bool // of the target node
	rep     *RestoreReport
	gen     *synth.Generator
	lg      *lgdata.Index
}

// Restore runs the restore drill: it writes a fresh dev network into
// opts.Dir, starts its hub and recipient nodes as processes of
// opts.Binary, sends opts.Before notifications from the NTA's node (in
// this process) and waits for both receipts of each, backs up the hub and
// opts.Node, sends opts.AfterBackup more, SIGKILLs both, destroys their
// data directories, restores them from the backups, starts them again and
// sends opts.AfterRestore more. The error is for a drill that could not
// run; a drill that ran returns its report, whose Summary.Passed says the
// outcome.
func Restore(ctx context.Context, opts RestoreOptions) (*RestoreReport, error) {
	if opts.Binary == "" {
		return nil, errors.New("drill: restore: the taxlink binary is required")
	}
	if opts.Node == "" {
		opts.Node = "lg:011002"
	}
	if opts.Before == 0 {
		opts.Before = 300
	}
	if opts.AfterBackup == 0 {
		opts.AfterBackup = 60
	}
	if opts.AfterRestore == 0 {
		opts.AfterRestore = 30
	}
	if opts.Before < 0 || opts.AfterBackup < 3 || opts.AfterRestore < 0 {
		return nil, errors.New("drill: restore: counts must be positive (after-backup at least 3)")
	}
	if opts.Settle == 0 {
		opts.Settle = 2 * time.Minute
	}
	r := &restoreDrill{
		opts: opts,
		c: &chaos{
			name:    "restore",
			opts:    ChaosOptions{Binary: opts.Binary, Progress: opts.Progress},
			proxies: map[string]*faultproxy.Proxy{},
			procs:   map[string]*proc{},
			mounts:  map[string]string{},
			sent:    map[string]sentNote{},
			byKind:  map[string]int{},
		},
		tenants: map[string]bool{},
		rep:     &RestoreReport{},
		gen:     synth.NewGenerator(uint64(time.Now().UnixNano())),
	}
	return r.run(ctx)
}

func (r *restoreDrill) logf(format string, args ...any) {
	if r.opts.Progress == nil {
		return
	}
	r.c.outMu.Lock()
	defer r.c.outMu.Unlock()
	fmt.Fprintf(r.opts.Progress, "restore: %s\n", fmt.Sprintf(format, args...))
}

func (r *restoreDrill) step(name string, began time.Time, format string, args ...any) {
	s := RestoreStep{Step: name, Detail: fmt.Sprintf(format, args...), Took: time.Since(began).Round(10 * time.Millisecond)}
	r.rep.Steps = append(r.rep.Steps, s)
	r.logf("%s: %s (%v)", s.Step, s.Detail, s.Took)
}

func (r *restoreDrill) finding(format string, args ...any) {
	r.rep.Findings = append(r.rep.Findings, fmt.Sprintf(format, args...))
}

func (r *restoreDrill) run(ctx context.Context) (rep *RestoreReport, err error) {
	began := time.Now()
	created := false
	dir := r.opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "taxlink-restore-")
		if err != nil {
			return nil, fmt.Errorf("drill: restore: %w", err)
		}
		dir, created = d, true
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("drill: restore: %w", err)
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return nil, fmt.Errorf("drill: restore: %s must be an empty directory", dir)
		}
	}
	c := r.c
	c.dir = dir
	r.vault = filepath.Join(dir, "vault")
	defer func() {
		keep := !created || rep == nil || !rep.Summary.Passed
		c.teardown(keep)
		if keep {
			if rep != nil {
				rep.Dir = dir
			}
			r.logf("network, backups and logs kept in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	if r.lg, err = lgdata.Load(); err != nil {
		return nil, fmt.Errorf("drill: restore: %w", err)
	}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	if err := r.exercise(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	r.rep.Problems = append(r.rep.Problems, c.problems...)
	c.mu.Unlock()
	r.rep.Summary.ElapsedS = time.Since(began).Round(100 * time.Millisecond).Seconds()
	return r.rep, nil
}

// setup writes the network and starts the hub and every recipient node as
// processes, and loads the sender.
func (r *restoreDrill) setup(ctx context.Context) error {
	began := time.Now()
	c := r.c
	c.logDir = filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(c.logDir, 0o700); err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	lay, err := devnet.Init(filepath.Join(c.dir, "net"), devnet.Options{})
	if err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	c.lay = lay
	for _, n := range lay.Nodes {
		if n.ID == devnet.NTAID {
			continue
		}
		c.recipients = append(c.recipients, n)
		if n.ID == r.opts.Node {
			r.target = n
		}
	}
	if r.target.ID == "" {
		return fmt.Errorf("drill: restore: %s is not a recipient node of the dev network", r.opts.Node)
	}
	for _, t := range r.target.Tenants {
		r.tenants[t] = true
	}
	c.procs[devnet.HubID] = &proc{c: c, id: devnet.HubID, role: "hub", config: lay.HubConfig, listen: lay.HubListen}
	for _, n := range c.recipients {
		c.procs[n.ID] = &proc{c: c, id: n.ID, role: "node", config: n.Config, listen: n.Listen}
	}
	if err := c.procs[devnet.HubID].ensureUp(ctx); err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	for _, n := range c.recipients {
		if err := c.procs[n.ID].ensureUp(ctx); err != nil {
			return fmt.Errorf("drill: restore: %w", err)
		}
	}
	if err := c.startSender(ctx, lay); err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	r.step("start", began, "dev network in %s: hub %s and %d recipient nodes as processes of %s; the NTA's node (the sender) runs in the drill",
		c.dir, devnet.HubID, len(c.recipients), c.opts.Binary)
	return nil
}

// send seals n notifications to the recipients in turn and submits each
// once when submit is set (else they stay pending in the outbox); it
// returns their IDs.
func (r *restoreDrill) send(ctx context.Context, n int, submit bool) ([]string, error) {
	c := r.c
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string, n)
	for range chaosSenderWorkers {
		wg.Go(func() {
			for id := range work {
				sctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
				_, _ = c.nta.Node.SubmitPending(sctx, id)
				cancel()
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	for i := range n {
		rcpt := c.lay.Recipients[i%len(c.lay.Recipients)]
		gov, _ := r.lg.Lookup(strings.TrimPrefix(rcpt, "lg:"))
		doc := r.gen.Next(gov.Name, gov.Prefecture)
		pctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
		id, err := c.nta.Node.Prepare(pctx, node.Submission{
			Recipient: rcpt, Type: doc.Type, ContentType: doc.ContentType, Payload: bytes.NewReader(doc.Body),
		})
		cancel()
		if err != nil {
			return ids, fmt.Errorf("drill: restore: sealing into the outbox: %w", err)
		}
		c.mu.Lock()
		c.sent[id] = sentNote{recipient: rcpt, digest: sha256.Sum256(doc.Body)}
		c.mu.Unlock()
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		if submit {
			work <- id
		}
	}
	return ids, nil
}

// wait resubmits what is pending and collects receipts until done says
// every notification of ids is where it should be, or opts.Settle passes;
// it reports whether done held.
func (r *restoreDrill) wait(ctx context.Context, ids []string, done func(store.Outgoing) bool) (bool, error) {
	c := r.c
	deadline := time.Now().Add(r.opts.Settle)
	for {
		left := 0
		for _, id := range ids {
			o, err := c.nta.Store.GetOutgoing(ctx, id)
			if err != nil {
				return false, fmt.Errorf("drill: restore: the sender's outbox: %w", err)
			}
			if !done(o) {
				left++
			}
		}
		if left == 0 {
			return true, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("drill: restore: interrupted: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			r.logf("gave up waiting after %v: %d of %d not done", r.opts.Settle, left, len(ids))
			return false, nil
		}
		rctx, cancel := context.WithTimeout(ctx, chaosSubmitTimeout)
		c.nta.Node.ResubmitPending(rctx)
		cancel()
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _ = c.nta.Node.PollReceipts(pctx, 500*time.Millisecond)
		cancel()
	}
}

// verified says both receipts of o verify.
func (r *restoreDrill) verified(o store.Outgoing) bool {
	ae, re := node.VerifyBoth(r.c.nta.Directory(), devnet.HubID, o)
	return ae == nil && re == nil
}

func (r *restoreDrill) toTarget(id string) bool {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.tenants[r.c.sent[id].recipient]
}

// exercise runs the drill's phases and fills the summary.
func (r *restoreDrill) exercise(ctx context.Context) error {
	c := r.c
	s := &r.rep.Summary
	s.Node = r.target.ID
	hubData := dataDir(c.lay.HubConfig)
	hubBackup := filepath.Join(filepath.Dir(c.lay.HubConfig), "backup")
	nodeData := dataDir(r.target.Config)
	nodeBackup := filepath.Join(filepath.Dir(r.target.Config), "backup")
	d := c.nta.Directory()
	hv, err := notekey.NewVerifier(devnet.HubID, d.HubKey())
	if err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	dn, err := d.Node(r.target.ID)
	if err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	nv, err := notekey.NewVerifier(r.target.ID, dn.Key())
	if err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	hubVerifiers, nodeVerifiers := note.VerifierList(hv), note.VerifierList(nv)

	r.rep.Method = []string{
		"hub ledger and audit log: online, the hub's own periodic verified backup (backup.dir, every 5s): the drill waits until the ledger's copy holds every entry, snapshots both copies and checks them against the live logs (ledger.CheckBackup)",
		"hub queue (queue.db), receipt files, blobs and the rest of its data directory: offline: the hub is stopped (SIGTERM), data_dir is copied without ledger/ and audit/, the hub is started again (the downtime is reported)",
		fmt.Sprintf("node %s store (node.db) and its other SQLite files: online, VACUUM INTO a file over a separate read-only connection while the node runs", r.target.ID),
		fmt.Sprintf("node %s audit log: online, its own periodic verified backup (ledger.CheckBackup against the live log); other files (hub-checkpoint, outbox) copied as they are", r.target.ID),
		"restore: both processes SIGKILLed, data_dir removed (rm -rf), rebuilt from the backups, checked (VerifyDir, CheckBackup against the backup), started again",
	}

	// Phase 1: traffic before the backup.
	began := time.Now()
	before, err := r.send(ctx, r.opts.Before, true)
	if err != nil {
		return err
	}
	ok, err := r.wait(ctx, before, func(o store.Outgoing) bool { return o.Accepted != nil && o.Recorded != nil })
	if err != nil {
		return err
	}
	if !ok {
		c.problemf("not every notification sent before the backup completed within %v", r.opts.Settle)
	}
	s.BeforeBackup = len(before)
	for _, id := range before {
		if r.toTarget(id) {
			s.ExpectedRecords++
		}
	}
	r.step("traffic before backup", began, "%d notifications to %d recipients, both receipts of each collected (%d to %s)", len(before), len(c.lay.Recipients), s.ExpectedRecords, r.target.ID)

	// Phase 2: the backups.
	began = time.Now()
	if err := r.waitLedgerBackup(ctx, hubData, hubBackup, hubVerifiers); err != nil {
		c.problemf("the hub ledger's backup did not catch up: %v", err)
	}
	vHub := filepath.Join(r.vault, "hub")
	vNode := filepath.Join(r.vault, "node")
	for _, name := range []string{"ledger", "audit"} {
		if err := copyTree(filepath.Join(hubBackup, name), filepath.Join(vHub, name)); err != nil {
			return fmt.Errorf("drill: restore: snapshot of the hub's %s backup: %w", name, err)
		}
		if err := ledger.CheckBackup(filepath.Join(hubData, name), filepath.Join(vHub, name), hubVerifiers); err != nil {
			c.problemf("the hub's %s backup does not check against the live log: %v", name, err)
		}
	}
	if rep, err := ledger.VerifyDir(filepath.Join(vHub, "ledger"), hubVerifiers); err == nil {
		s.BackupLedgerEntries = rep.Entries
	} else {
		c.problemf("the hub ledger's backup: %v", err)
	}
	r.step("backup hub logs", began, "ledger (%d entries) and audit log copied from backup.dir, checked against the live logs", s.BackupLedgerEntries)

	began = time.Now()
	if err := waitBackupDir(ctx, filepath.Join(nodeBackup, "audit"), nodeVerifiers); err != nil {
		c.problemf("%s's audit backup: %v", r.target.ID, err)
	}
	vacuumed, err := backupNodeOnline(ctx, nodeData, filepath.Join(vNode, "data"))
	if err != nil {
		return fmt.Errorf("drill: restore: backing up %s: %w", r.target.ID, err)
	}
	if err := copyTree(filepath.Join(nodeBackup, "audit"), filepath.Join(vNode, "data", "audit")); err != nil {
		return fmt.Errorf("drill: restore: snapshot of %s's audit backup: %w", r.target.ID, err)
	}
	if err := ledger.CheckBackup(filepath.Join(nodeData, "audit"), filepath.Join(vNode, "data", "audit"), nodeVerifiers); err != nil {
		c.problemf("%s's audit backup does not check against the live log: %v", r.target.ID, err)
	}
	s.BackedUpRecords, err = countRecordsIn(ctx, filepath.Join(vNode, "data", "node.db"), filepath.Join(c.dir, "scratch"))
	if err != nil {
		return fmt.Errorf("drill: restore: counting the backup's records: %w", err)
	}
	r.step("backup node online", began, "%s: VACUUM INTO of %s while it runs (%d records), audit log from backup.dir", r.target.ID, strings.Join(vacuumed, ", "), s.BackedUpRecords)

	began = time.Now()
	hub := c.procs[devnet.HubID]
	hub.stop()
	stopped := time.Now()
	err = copyTreeExcept(hubData, filepath.Join(vHub, "data"), "ledger", "audit")
	if err == nil {
		// The hub is stopped: its ledger must now equal the backup.
		if rep, verr := ledger.VerifyDir(filepath.Join(hubData, "ledger"), hubVerifiers); verr == nil && rep.Entries != s.BackupLedgerEntries {
			c.problemf("the hub's ledger has %d entries at its stop, its backup %d", rep.Entries, s.BackupLedgerEntries)
		}
	}
	upErr := hub.ensureUp(ctx)
	s.HubDowntimeS = time.Since(stopped).Round(10 * time.Millisecond).Seconds()
	if err != nil {
		return fmt.Errorf("drill: restore: copying the hub's data: %w", err)
	}
	if upErr != nil {
		return fmt.Errorf("drill: restore: %w", upErr)
	}
	r.step("backup hub queue offline", began, "hub stopped, data_dir (queue.db and the rest) copied, started again: %.2fs down", s.HubDowntimeS)

	// Phase 3: traffic after the backup, with the restored node stopped
	// (its deliveries stay queued at the hub), then the disaster.
	began = time.Now()
	c.procs[r.target.ID].stop()
	n1 := r.opts.AfterBackup * 2 / 3
	after1, err := r.send(ctx, n1, true)
	if err != nil {
		return err
	}
	if ok, err := r.wait(ctx, after1, func(o store.Outgoing) bool {
		return o.Accepted != nil && (o.Recorded != nil || r.toTarget(o.ID))
	}); err != nil {
		return err
	} else if !ok {
		c.problemf("not every notification sent after the backup was accepted (and recorded elsewhere) within %v", r.opts.Settle)
	}
	for _, id := range after1 {
		o, err := c.nta.Store.GetOutgoing(ctx, id)
		if err != nil {
			return fmt.Errorf("drill: restore: %w", err)
		}
		if o.Accepted != nil {
			s.AcceptedAfterBackup++
			if r.toTarget(id) && o.Recorded == nil {
				s.ToRestoredNode++
			}
		}
	}
	s.WitnessedEntries = r.witnessed(ctx, hubVerifiers)
	pid := hub.kill()
	after2, err := r.send(ctx, r.opts.AfterBackup-n1, false)
	if err != nil {
		return err
	}
	s.AfterBackup = len(after1) + len(after2)
	r.step("traffic after backup", began, "%s stopped; %d notifications accepted (%d for %s, queued at the hub), then the hub SIGKILLed (pid %d) and %d more sealed into the sender's outbox while it is down; the ledger reached %d entries witnessed",
		r.target.ID, s.AcceptedAfterBackup, s.ToRestoredNode, r.target.ID, pid, len(after2), s.WitnessedEntries)

	// Phase 4: destroy and restore.
	began = time.Now()
	c.procs[r.target.ID].kill()
	for _, p := range []string{hubData, nodeData} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("drill: restore: destroying %s: %w", p, err)
		}
	}
	r.logf("data directories destroyed: %s, %s", hubData, nodeData)
	if err := copyTree(filepath.Join(vHub, "data"), hubData); err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	for _, name := range []string{"ledger", "audit"} {
		if err := copyTree(filepath.Join(vHub, name), filepath.Join(hubData, name)); err != nil {
			return fmt.Errorf("drill: restore: %w", err)
		}
	}
	if err := copyTree(filepath.Join(vNode, "data"), nodeData); err != nil {
		return fmt.Errorf("drill: restore: %w", err)
	}
	s.RestoredVerified = true
	for _, chk := range []struct{ live, backup string }{
		{filepath.Join(hubData, "ledger"), filepath.Join(vHub, "ledger")},
		{filepath.Join(hubData, "audit"), filepath.Join(vHub, "audit")},
	} {
		if err := ledger.CheckBackup(chk.live, chk.backup, hubVerifiers); err != nil {
			s.RestoredVerified = false
			c.problemf("restored %s: %v", chk.live, err)
		}
	}
	if err := ledger.CheckBackup(filepath.Join(nodeData, "audit"), filepath.Join(vNode, "data", "audit"), nodeVerifiers); err != nil {
		s.RestoredVerified = false
		c.problemf("restored %s audit: %v", r.target.ID, err)
	}
	if rep, err := ledger.VerifyDir(filepath.Join(hubData, "ledger"), hubVerifiers); err != nil || rep.Entries != s.BackupLedgerEntries {
		s.RestoredVerified = false
		c.problemf("the restored ledger: %d entries, the backup %d: %v", rep.Entries, s.BackupLedgerEntries, errString(err))
	}
	s.RestoredRecords, err = countRecordsIn(ctx, filepath.Join(nodeData, "node.db"), filepath.Join(c.dir, "scratch"))
	if err != nil {
		return fmt.Errorf("drill: restore: counting the restored records: %w", err)
	}
	if err := hub.ensureUp(ctx); err != nil {
		return fmt.Errorf("drill: restore: the restored hub: %w", err)
	}
	if err := c.procs[r.target.ID].ensureUp(ctx); err != nil {
		return fmt.Errorf("drill: restore: the restored node: %w", err)
	}
	s.RestoreS = time.Since(began).Round(10 * time.Millisecond).Seconds()
	r.step("destroy and restore", began, "hub and %s SIGKILLed, data_dir removed, restored (%d records, ledger %d entries), started again", r.target.ID, s.RestoredRecords, s.BackupLedgerEntries)

	// Phase 5: recovery of what the outbox holds, then new traffic. The
	// sender's receipt cursor (a sequence number of the hub's receipt
	// stream) was taken from the hub before the disaster; the restored
	// stream is shorter. A node rewinds its cursor by itself when the hub
	// says its stream ends before the cursor; the drill checks that no
	// receipt stalls, and if some do, reports it and resets the cursor by
	// hand (receipts are idempotent).
	began = time.Now()
	cursorBefore, _ := c.nta.Store.Cursor(ctx, receiptCursor)
	short := r.opts
	short.Settle = restoreStallWait
	stallProbe := &restoreDrill{opts: short, c: c, tenants: r.tenants, rep: r.rep}
	if _, err := stallProbe.wait(ctx, after2, r.verified); err != nil {
		return err
	}
	for _, id := range after2 {
		o, err := c.nta.Store.GetOutgoing(ctx, id)
		if err != nil {
			return fmt.Errorf("drill: restore: the sender's outbox: %w", err)
		}
		if o.Accepted != nil && o.Recorded == nil {
			s.ReceiptsStalled++
		}
	}
	if s.ReceiptsStalled > 0 {
		if err := c.nta.Store.SetCursor(ctx, receiptCursor, 0); err != nil {
			return fmt.Errorf("drill: restore: resetting the sender's receipt cursor: %w", err)
		}
		s.CursorReset = true
		r.finding("after the restore, %d of %d resubmitted notifications were accepted and delivered but their recording receipts did not reach the sender within %v: its receipt cursor (%q = %d) is past the restored hub's receipt stream, so receipts with lower sequence numbers are skipped; the drill reset the cursor to 0 (an operator step every sender needs after a hub restore) and collection resumed",
			s.ReceiptsStalled, len(after2), restoreStallWait, receiptCursor, cursorBefore)
	}
	ok, err = r.wait(ctx, after2, r.verified)
	if err != nil {
		return err
	}
	for _, id := range after2 {
		if o, err := c.nta.Store.GetOutgoing(ctx, id); err == nil && r.verified(o) {
			s.Recovered++
		}
	}
	reset := ""
	if s.CursorReset {
		reset = fmt.Sprintf(" (%d receipts stalled until the sender's receipt cursor was reset)", s.ReceiptsStalled)
	}
	r.step("outbox resubmission", began, "%d of %d notifications left pending in the sender's outbox delivered after the restore, both receipts verified%s", s.Recovered, len(after2), reset)

	began = time.Now()
	resumed, err := r.send(ctx, r.opts.AfterRestore, true)
	if err != nil {
		return err
	}
	s.AfterRestore = len(resumed)
	ok, err = r.wait(ctx, resumed, r.verified)
	if err != nil {
		return err
	}
	s.DeliveryResumed = ok && len(resumed) > 0
	r.step("traffic after restore", began, "%d notifications to every recipient: delivered end to end with both receipts: %v", len(resumed), s.DeliveryResumed)

	// A last look by the sender's witness, then the nodes' checks (every
	// DirectoryRefresh) have had their time.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := c.nta.Node.CheckLedger(lctx); errors.Is(err, ledger.ErrRollback) || errors.Is(err, ledger.ErrFork) {
		s.WitnessAlarms++
		r.finding("the sender's witness refuses the restored hub's ledger: %v", err)
	}
	cancel()

	// Stop everything and verify from the files.
	c.stopping.Store(true)
	for _, n := range c.recipients {
		c.procs[n.ID].stop()
	}
	hub.stop()
	return r.verify(ctx, slices.Concat(before, after1, after2, resumed), after1, after2)
}

// waitLedgerBackup waits (at most 30 s) until the hub ledger's copy in
// backup.dir holds as many entries as the live ledger and the audit log's
// copy exists.
func (r *restoreDrill) waitLedgerBackup(ctx context.Context, hubData, hubBackup string, vs note.Verifiers) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		live, err := ledger.VerifyDir(filepath.Join(hubData, "ledger"), vs)
		if err != nil && len(live.Problems) == 0 {
			return err // unreadable; a torn tail of a live log is retried
		}
		bk, err := ledger.VerifyDir(filepath.Join(hubBackup, "ledger"), vs)
		_, aerr := ledger.VerifyDir(filepath.Join(hubBackup, "audit"), vs)
		if err == nil && aerr == nil && bk.Entries == live.Entries {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backup %d entries, live %d: %v", bk.Entries, live.Entries, errString(err))
		}
		if !pause.For(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// waitBackupDir waits (at most 30 s) until the log copy in dir verifies:
// the first periodic backup of a process comes one period after its
// start.
func waitBackupDir(ctx context.Context, dir string, vs note.Verifiers) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := ledger.VerifyDir(dir, vs)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if !pause.For(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// witnessed returns the largest hub ledger size attested by the sender's
// receipts and checkpoint and by the nodes' witness checkpoints.
func (r *restoreDrill) witnessed(ctx context.Context, vs note.Verifiers) int64 {
	c := r.c
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = c.nta.Node.CheckLedger(lctx)
	cancel()
	var max int64
	for _, ni := range c.lay.Nodes {
		b, err := os.ReadFile(filepath.Join(dataDir(ni.Config), "hub-checkpoint"))
		if err != nil {
			continue
		}
		if cp, err := ledger.ParseCheckpoint(b, vs); err == nil && cp.Size > max {
			max = cp.Size
		}
	}
	return max
}

// verify counts what each recipient recorded, checks the ledger against
// the receipts and witnesses and fills the rest of the summary.
func (r *restoreDrill) verify(ctx context.Context, all, after1, after2 []string) error {
	c := r.c
	s := &r.rep.Summary
	s.Sent = len(all)
	c.mu.Lock()
	sent := make(map[string]sentNote, len(c.sent))
	for k, v := range c.sent {
		sent[k] = v
	}
	c.mu.Unlock()
	count := map[string]int{}
	var cs ChaosSummary
	for _, ni := range c.recipients {
		if err := c.countRecords(ctx, ni, sent, count, &cs); err != nil {
			return fmt.Errorf("drill: restore: %w", err)
		}
	}
	if cs.Misrouted > 0 {
		c.problemf("%d records at the wrong tenant", cs.Misrouted)
	}
	for id, n := range count {
		if n > 1 {
			c.problemf("%s recorded %d times", id, n)
		}
	}
	outs := map[string]store.Outgoing{}
	for _, id := range all {
		o, err := c.nta.Store.GetOutgoing(ctx, id)
		if err != nil {
			return fmt.Errorf("drill: restore: the sender's outbox: %w", err)
		}
		outs[id] = o
	}
	unexpectedLoss := 0
	for _, id := range after1 {
		o := outs[id]
		if o.Accepted == nil || count[id] > 0 {
			continue
		}
		s.Lost++
		if o.Recorded == nil {
			s.LostIdentified++
		}
		if !r.toTarget(id) {
			unexpectedLoss++
			c.problemf("LOST: %s to %s: accepted after the backup, not recorded", id, sent[id].recipient)
		}
	}
	for _, id := range all {
		if slices.Contains(after1, id) {
			continue
		}
		if count[id] == 0 {
			unexpectedLoss++
			c.problemf("LOST: %s to %s: not recorded", id, sent[id].recipient)
		}
	}
	if s.Lost > 0 {
		r.finding("%d notifications the hub accepted after the backup for %s are lost: the restored queue does not hold them and the sender, which holds their acceptance receipts, does not resubmit them (its outbox lists as pending only what the hub has not accepted); the sender's outbox names all %d (accepted, never recorded)",
			s.Lost, r.target.ID, s.LostIdentified)
	}
	if s.Recovered > 0 {
		r.finding("%d notifications sealed while the hub was down were resubmitted from the sender's outbox and delivered after the restore", s.Recovered)
	}

	// What verifyLedgers finds wrong is the restore's ledger finding, not
	// a problem of the drill: it is taken out of the problems.
	c.mu.Lock()
	n0 := len(c.problems)
	c.mu.Unlock()
	lv := c.verifyLedgers(c.nta.Directory(), outs)
	c.mu.Lock()
	details := slices.Clone(c.problems[n0:])
	c.problems = c.problems[:n0]
	c.mu.Unlock()
	s.LedgerConsistent = lv.intact && lv.unlogged == 0
	if !s.LedgerConsistent {
		r.finding("the restored hub's ledger (%d entries from the backup, %d now) does not extend what was witnessed before the disaster (%d entries): the restored hub reissued indices %d.. to other entries, so %d checks fail: receipts the sender holds name entries the ledger now has differently, and a witness checkpoint sees a fork; nodes that witnessed the lost entries will refuse this hub's checkpoints until an operator reconciles the ledger",
			s.BackupLedgerEntries, lv.entries, s.WitnessedEntries, s.BackupLedgerEntries, len(details))
		for i, d := range details {
			if i == 5 {
				r.finding("  … %d more", len(details)-i)
				break
			}
			r.finding("  %s", d)
		}
	}
	s.WitnessAlarms += scanLogLines(c.logDir, "ALERT: the hub's ledger does not extend")
	s.BackupAlerts = scanLogLines(c.logDir, "ALERT: log backup failed")
	if s.WitnessAlarms > 0 {
		r.finding("%d rollback/fork alarms from the witnesses after the restore", s.WitnessAlarms)
	}
	if s.BackupAlerts > 0 {
		r.finding("the restored hub's periodic backup failed %d times: backup.dir holds a longer ledger than the restored one (ledger.ErrRollback) and must be reconciled by an operator", s.BackupAlerts)
	}
	if s.RestoredRecords != s.BackedUpRecords || s.BackedUpRecords != s.ExpectedRecords {
		c.problemf("records at %s: %d expected at the backup, %d in the backup, %d restored", r.target.ID, s.ExpectedRecords, s.BackedUpRecords, s.RestoredRecords)
	}
	s.Passed = s.BeforeBackup > 0 && s.RestoredVerified && s.BackedUpRecords == s.ExpectedRecords &&
		s.RestoredRecords == s.BackedUpRecords && s.DeliveryResumed && s.Recovered == len(after2) &&
		unexpectedLoss == 0 && cs.Misrouted == 0 && s.Lost == s.ToRestoredNode
	return nil
}

// scanLogLines counts the lines holding what in the processes' logs.
func scanLogLines(logDir, what string) int {
	ents, err := os.ReadDir(logDir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(logDir, e.Name()))
		if err != nil {
			continue
		}
		n += bytes.Count(b, []byte(what))
	}
	return n
}

// backupNodeOnline copies the data directory src of a running node into
// dst: every SQLite database (*.db) with VACUUM INTO over a separate
// read-only connection (a consistent copy while the node writes), its
// -wal, -shm and -journal files skipped, the audit log left to its own
// backup, every other file copied as it is. It returns the databases
// copied.
func backupNodeOnline(ctx context.Context, src, dst string) ([]string, error) {
	var dbs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && rel == "audit":
			return fs.SkipDir
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return nil
		case strings.HasSuffix(p, "-wal") || strings.HasSuffix(p, "-shm") || strings.HasSuffix(p, "-journal"):
			return nil
		case strings.HasSuffix(p, ".db"):
			if err := vacuumInto(ctx, p, to); err != nil {
				return err
			}
			dbs = append(dbs, rel)
			return nil
		}
		return copyFile(p, to)
	})
	return dbs, err
}

// vacuumInto writes a consistent copy of the SQLite database at src to
// dst with VACUUM INTO, over a read-only connection of its own.
func vacuumInto(ctx context.Context, src, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String() + "?mode=ro&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", u)
	if err != nil {
		return fmt.Errorf("vacuum into: %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("vacuum into: %s: %w", src, err)
	}
	return nil
}

// copyFile copies the regular file src to dst (which must not exist).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyTreeExcept copies src into dst as copyTree does, leaving out the
// top-level entries named in skip.
func copyTreeExcept(src, dst string, skip ...string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if slices.Contains(skip, e.Name()) {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.IsDir():
			err = copyTree(from, to)
		case e.Type().IsRegular():
			err = copyFile(from, to)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countRecordsIn counts every record of the node store in the database
// file db, opening a copy of it in scratch (opening a store may migrate
// or write its journal; the backup itself stays untouched).
func countRecordsIn(ctx context.Context, db, scratch string) (int64, error) {
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(scratch, "count-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	cp := filepath.Join(tmp, "node.db")
	if err := copyFile(db, cp); err != nil {
		return 0, err
	}
	st, err := sqlite.Open(cp)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Count(ctx, "")
}
