// Package retention erases a node's expired records: each tenant keeps
// its records (of one notification type, or of all) for the period its
// retention rule says (config.RetentionRule), after which they are erased
// from the store (store.Inbox.Erase) and every erasure is written to the
// audit log, naming the envelope IDs erased (never personal data). A legal
// hold (config.LegalHold) in force stops the erasure of what it covers.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/store"
)

// BatchSize is the number of records erased per transaction, and per
// audit event.
const BatchSize = 1000

// Run makes one pass: for each rule not covered by a legal hold in force
// at now(), it erases, in batches of BatchSize, the records of the rule's
// tenant (and type) recorded before now() minus the rule's keep, and
// records one audit event per batch that erased something ("record.erase",
// actor "retention", object "<tenant> <type>" with "*" for all types, and
// a detail naming the count, the cutoff and the first and last ID). A rule
// covered by a hold is skipped and logged; a rule for all types is skipped
// when a hold of any of its tenant's types is in force. A failed erasure
// is logged and recorded as an audit event with result error, and the
// pass goes on with the next rule; Run returns the errors joined.
func Run(ctx context.Context, st store.Inbox, rules []config.RetentionRule, holds []config.LegalHold,
	now func() time.Time, record func(audit.Event), log *slog.Logger) error {
	var errs []error
	for _, r := range rules {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := runRule(ctx, st, r, holds, now(), record, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// object names what a rule erases in audit events and logs.
func object(r config.RetentionRule) string {
	typ := r.Type
	if typ == "" {
		typ = "*"
	}
	return r.Tenant + " " + typ
}

func runRule(ctx context.Context, st store.Inbox, r config.RetentionRule, holds []config.LegalHold,
	at time.Time, record func(audit.Event), log *slog.Logger) error {
	for i, h := range holds {
		if h.Covers(r.Tenant, r.Type) && h.InForce(at) {
			log.Info("retention: erasure stopped by a legal hold", "tenant", r.Tenant, "type", r.Type,
				"hold", i, "hold_type", h.Type, "until", h.Until)
			return nil
		}
	}
	cutoff, err := r.Cutoff(at)
	if err != nil {
		err = fmt.Errorf("retention: %s: keep: %w", object(r), err)
		log.Error("retention: rule skipped", "tenant", r.Tenant, "type", r.Type, "err", err)
		return err
	}
	date := cutoff.UTC().Format(time.RFC3339)
	for {
		got, err := st.Erase(ctx, store.EraseQuery{Recipient: r.Tenant, Type: r.Type, RecordedBefore: cutoff, Limit: BatchSize})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Error("ALERT: retention erasure failed", "tenant", r.Tenant, "type", r.Type, "err", err)
			record(audit.Event{Actor: "retention", Action: "record.erase", Object: object(r), From: "local",
				Result: audit.ResultError, Detail: "erasing records recorded before " + date + " failed; see the process log"})
			return fmt.Errorf("retention: %s: %w", object(r), err)
		}
		if got.Count == 0 {
			return nil
		}
		detail := fmt.Sprintf("%d records recorded before %s: %s…%s", got.Count, date, got.IDs[0], got.IDs[len(got.IDs)-1])
		record(audit.Event{Actor: "retention", Action: "record.erase", Object: object(r), From: "local",
			Result: audit.ResultOK, Detail: detail})
		log.Info("retention: records erased", "tenant", r.Tenant, "type", r.Type, "count", got.Count,
			"bytes", got.Bytes, "recorded_before", date)
		if got.Count < BatchSize {
			return nil
		}
	}
}

// Loop runs a pass (see Run) at once and then every period until ctx ends;
// a failed pass is logged and the next one tries again.
func Loop(ctx context.Context, every time.Duration, st store.Inbox, rules []config.RetentionRule, holds []config.LegalHold,
	now func() time.Time, record func(audit.Event), log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := Run(ctx, st, rules, holds, now, record, log); err != nil && ctx.Err() == nil {
			log.Error("retention pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
