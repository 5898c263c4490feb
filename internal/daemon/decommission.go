package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/console"
	"taxlink/internal/erasure"
	"taxlink/internal/fsutil"
	"taxlink/internal/keystore"
	"taxlink/internal/operator"
	"taxlink/internal/store"
)

// A decommission (第4 5(4)) erases a tenant from a node for good, after a
// two-person approval: every record (secure_delete, then the store's
// vacuum), its search index, its sealing keys (overwritten and removed,
// so anything sealed to them cannot be opened again), and it issues an
// erase certificate signed by the node. The tenant is listed in
// data_dir/erased-tenants.json so that a restart skips its configured
// keys, and deliveries to it are refused from then on.

// DecommissionKind is the approval kind of a tenant's decommission.
const DecommissionKind = "tenant.decommission"

func (b *nodeBackend) decommissionAction() console.Action {
	return console.Action{
		Kind: DecommissionKind, Title: "団体の消去（解約・移行）", TitleEN: "Decommission a tenant (erase keys and records)", Tenant: "tenant",
		Fields: []console.Field{
			{Name: "tenant", Label: "団体", LabelEN: "Tenant", Kind: "text", Max: 128},
			{Name: "confirm", Label: "確認のため団体IDを再入力", LabelEN: "Type the tenant ID again", Kind: "text", Max: 128},
			{Name: "reason", Label: "理由", LabelEN: "Reason", Kind: "text", Max: 200},
		},
		Check: func(ctx context.Context, v map[string]string) (string, string, error) {
			return checkDecommission(b.tenants, v)
		},
		Exec: func(ctx context.Context, v map[string]string) (string, error) {
			path, c, err := b.decommission(ctx, v)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d records and keys %s erased; certificate %s", c.Records, strings.Join(c.KeysDestroyed, ","), path), nil
		},
	}
}

func checkDecommission(tenants []string, v map[string]string) (string, string, error) {
	t := v["tenant"]
	if !slices.Contains(tenants, t) {
		return "", "", fmt.Errorf("%q is not a tenant of this node", t)
	}
	if v["confirm"] != t {
		return "", "", errors.New("the confirmation does not repeat the tenant ID")
	}
	if strings.TrimSpace(v["reason"]) == "" {
		return "", "", errors.New("a reason is required")
	}
	return t, "decommission: " + v["reason"], nil
}

// decommission erases the tenant and returns the certificate's path.
func (b *nodeBackend) decommission(ctx context.Context, v map[string]string) (string, erasure.Certificate, error) {
	tenant := v["tenant"]
	dataDir := b.l.Config.DataDir
	c := erasure.Certificate{Version: 1, Node: b.l.Config.ID, Tenant: tenant, Time: time.Now().UTC().Truncate(time.Second),
		RequestedBy: v[console.ParamRequestedBy], ApprovedBy: v[console.ParamApprovedBy], Approval: v[console.ParamApproval], Reason: v["reason"]}

	// Keys first: once they are gone nothing of the tenant opens, even if
	// a later step fails and is retried.
	c.KeysDestroyed = b.n.RemoveTenantKeys(tenant)
	erased, err := config.ErasedTenants(dataDir)
	if err != nil {
		return "", c, err
	}
	if !slices.Contains(erased, tenant) {
		erased = append(erased, tenant)
		js, _ := json.Marshal(erased)
		if err := fsutil.WriteFileAtomic(filepath.Join(dataDir, config.ErasedTenantsFile), js, 0o600); err != nil {
			return "", c, err
		}
	}
	var files []string
	for _, k := range b.l.Config.SealingKeys {
		if k.Tenant == tenant {
			if r, err := keystore.ParseRef(k.File); err == nil && r.Path != "" {
				files = append(files, r.Path)
			}
		}
	}
	rotated, err := readRotated(dataDir)
	if err != nil {
		return "", c, err
	}
	for _, k := range rotated {
		if k.Tenant == tenant {
			files = append(files, filepath.Join(dataDir, rotatedDir, k.File))
		}
	}
	for _, f := range files {
		err := erasure.DestroyFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // destroyed by an earlier, interrupted run
		}
		if err != nil {
			return "", c, err
		}
		c.KeyFiles = append(c.KeyFiles, filepath.Base(f))
	}

	for {
		e, err := b.st.Erase(ctx, store.EraseQuery{Recipient: tenant, RecordedBefore: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), Limit: store.MaxEraseLimit}) // the latest storable time: everything
		if err != nil {
			return "", c, err
		}
		if e.Count == 0 {
			break
		}
		c.Records += e.Count
		c.CiphertextBytes += e.Bytes
	}
	if v, ok := b.st.(store.Vacuumer); ok {
		if err := v.Vacuum(ctx); err != nil {
			return "", c, err
		}
	}
	switch b.l.Config.Store.KindOrDefault() {
	case config.StorePostgres:
		c.Store = "postgres: rows deleted, VACUUM (ANALYZE) of records and chunks"
	default:
		c.Store = "sqlite: rows deleted with secure_delete (freed pages zeroed), WAL checkpointed and truncated, VACUUM"
	}
	n, err := b.idx.Forget(ctx, tenant)
	if err != nil {
		return "", c, err
	}
	c.IndexEntries = n

	doc, err := erasure.Sign(c, b.l.signer)
	if err != nil {
		return "", c, err
	}
	dir := filepath.Join(dataDir, "erase-certificates")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", c, err
	}
	path := filepath.Join(dir, strings.ReplaceAll(tenant, ":", "-")+"-"+c.Time.Format("20060102T150405Z")+".json")
	if err := fsutil.WriteFileAtomic(path, doc, 0o644); err != nil {
		return "", c, err
	}
	if _, err := b.al.Record(ctx, audit.Event{Actor: c.ApprovedBy, Action: "tenant.erase", Object: tenant, From: "local", Result: audit.ResultOK,
		Detail: fmt.Sprintf("requested by %s; %d records, %d keys; certificate %s", c.RequestedBy, c.Records, len(c.KeysDestroyed), filepath.Base(path))}); err != nil {
		return path, c, err
	}
	return path, c, nil
}

// RequestDecommission files a tenant's decommission in the console state of
// the node configured at path, as requested by operator by; it takes effect
// when a second operator approves it in the node's console. It returns the
// approval's ID.
func RequestDecommission(ctx context.Context, path, tenant, by, reason string) (string, error) {
	c, err := config.LoadNode(path)
	if err != nil {
		return "", err
	}
	if c.Console == nil {
		return "", fmt.Errorf("%s configures no console: the second person approves there", path)
	}
	var tenants []string
	for _, k := range c.SealingKeys {
		tenants = append(tenants, k.Tenant)
	}
	v := map[string]string{"tenant": tenant, "confirm": tenant, "reason": reason}
	object, summary, err := checkDecommission(tenants, v)
	if err != nil {
		return "", err
	}
	ops, err := OpenOperators(c.Console, time.Now)
	if err != nil {
		return "", err
	}
	defer ops.Close()
	op, err := ops.Get(ctx, by)
	if err != nil {
		return "", fmt.Errorf("requested by %q: %w", by, err)
	}
	if op.State != operator.StateActive || (op.Role != operator.RoleAdmin && op.Role != operator.RoleOperator && op.Role != operator.RoleSecurity) || !op.Grant.AllowsTenant(tenant) {
		return "", fmt.Errorf("%s may not request the decommission of %s (an active admin, security officer or operator granted the tenant may)", by, tenant)
	}
	params, _ := json.Marshal(v)
	a, err := ops.Request(ctx, operator.Approval{Kind: DecommissionKind, Object: object, Params: params, Summary: summary, RequestedBy: by})
	if err != nil {
		return "", err
	}
	return a.ID, nil
}
