package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/node"
	"taxlink/internal/operator"
	"taxlink/internal/scan"
	"taxlink/internal/store"
)

// scanner scans every recorded payload of a node's tenants once, in
// recording order, and records the verdicts in the quarantine ledger:
// until a record's verdict is clean, neither data users nor exports open
// it.
type scanner struct {
	st      store.Inbox
	n       *node.Node
	clamd   scan.Scanner
	ledger  *scan.Ledger
	tenants []string
	al      *audit.Log
	log     *slog.Logger
	// alert raises a console alert (nil without a console).
	alert func(operator.Alert)
	// cursor is, per tenant, the Seq up to which every record has a verdict.
	cursor map[string]int64
}

// run scans new records every period until ctx ends.
func (s *scanner) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("malware scan pass stopped; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass scans every record without a verdict. A scanner that cannot be
// reached stops the pass: the records stay pending, not clean.
func (s *scanner) pass(ctx context.Context) error {
	for _, tenant := range s.tenants {
		for {
			recs, err := s.st.List(ctx, store.Query{Recipient: tenant, AfterSeq: s.cursor[tenant], Limit: 500})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if _, _, ok := s.ledger.State(tenant, r.ID); !ok {
					if err := s.scanOne(ctx, tenant, r.ID); err != nil {
						return err
					}
				}
				s.cursor[tenant] = r.Seq
			}
		}
	}
	return nil
}

func (s *scanner) scanOne(ctx context.Context, tenant, id string) error {
	rc, _, err := s.n.OpenAs(ctx, "", "", tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // erased meanwhile
	}
	if err != nil {
		return err
	}
	v, err := s.clamd.Scan(ctx, rc)
	rc.Close()
	if err != nil {
		return err
	}
	if err := s.ledger.Record(tenant, id, v, time.Now()); err != nil {
		return err
	}
	if v.Clean {
		return nil
	}
	s.log.Error("ALERT: malware found in a received payload; quarantined", "tenant", tenant, "id", id, "signature", v.Signature)
	if _, err := s.al.Record(ctx, audit.Event{Actor: "system", Action: "scan.infected", Object: tenant + " " + id, From: "local", Result: audit.ResultDenied, Detail: "quarantined: " + v.Signature}); err != nil {
		s.log.Error("audit record failed", "err", err)
	}
	if s.alert != nil {
		s.alert(operator.Alert{Kind: "scan.infected", Severity: "critical", Subject: tenant, Detail: id + " " + v.Signature})
	}
	return nil
}
