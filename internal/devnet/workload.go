package devnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"taxlink/internal/lgdata"
	"taxlink/internal/node"
	"taxlink/internal/pause"
	"taxlink/internal/store"
	"taxlink/internal/synth"
)

// Summary is the outcome of a synthetic workload, as printed by
// `taxlink dev --notifications N`.
type Summary struct {
	Sent             int     `json:"sent"`
	Accepted         int     `json:"accepted"`
	Recorded         int     `json:"recorded"`
	ReceiptsVerified int     `json:"receipts_verified"`
	Opened           int     `json:"opened"`
	Duplicates       int     `json:"duplicates"`
	Redeliveries     int64   `json:"redeliveries"`
	Refused          int     `json:"refused"`
	PayloadBytes     int64   `json:"payload_bytes"`
	ElapsedMS        int64   `json:"elapsed_ms"`
	PerSecond        float64 `json:"per_second"`
	Passed           bool    `json:"passed"`
}

// Progress reports a workload's advance.
type Progress struct {
	Sent, Accepted, Recorded, Total int
}

// RunWorkload sends n synthetic notifications from the NTA node, spread over
// every recipient of the network, waits until each has both receipts (or
// until timeout), verifies every receipt, opens every recorded envelope at
// its recipient and compares it with what was sent.
func RunWorkload(ctx context.Context, nw *Network, n int, seed uint64, timeout time.Duration, progress func(Progress)) (Summary, error) {
	start := time.Now()
	nta, ok := nw.Nodes[NTAID]
	if !ok {
		return Summary{}, errors.New("devnet: the network has no NTA node")
	}
	lg, err := lgdata.Load()
	if err != nil {
		return Summary{}, err
	}
	type sent struct {
		recipient string
		digest    [32]byte
	}
	var (
		mu       sync.Mutex
		sentByID = map[string]sent{}
		sum      Summary
		accepted atomic.Int64
		next     atomic.Int64
		firstErr error
	)
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := synth.NewGenerator(seed + uint64(w))
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				rcpt := nw.Layout.Recipients[i%len(nw.Layout.Recipients)]
				gov, _ := lg.Lookup(rcpt[len("lg:"):])
				doc := g.Next(gov.Name, gov.Prefecture)
				id, _, err := nta.Node.Submit(ctx, node.Submission{
					Recipient: rcpt, Type: doc.Type, ContentType: doc.ContentType, Payload: bytes.NewReader(doc.Body),
				})
				mu.Lock()
				if id != "" {
					sentByID[id] = sent{rcpt, sha256.Sum256(doc.Body)}
					sum.PayloadBytes += int64(len(doc.Body))
				}
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, node.ErrRefused):
					sum.Refused++
					if firstErr == nil {
						firstErr = err
					}
				default:
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	stopTicker := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopTicker:
				return
			case <-t.C:
				_, acc, rec, _ := nta.Store.OutgoingCounts(ctx)
				mu.Lock()
				s := len(sentByID)
				mu.Unlock()
				if progress != nil {
					progress(Progress{Sent: s, Accepted: int(acc), Recorded: int(rec), Total: n})
				}
			}
		}
	}()
	wg.Wait()
	sum.Sent = len(sentByID)

	// Envelopes the hub did not take at once stay in the outbox; the node's
	// loop resubmits them. Wait for every one to be accepted and recorded.
	deadline := time.Now().Add(timeout)
	for {
		total, acc, rec, err := nta.Store.OutgoingCounts(ctx)
		if err != nil {
			close(stopTicker)
			return sum, err
		}
		if rec >= total && acc >= total || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		if acc < total {
			nta.Node.ResubmitPending(ctx)
		}
		pause.For(ctx, 100*time.Millisecond)
	}
	close(stopTicker)

	// Verify both receipts of everything sent.
	dir := nta.Directory()
	after := ""
	for {
		page, err := nta.Store.ListOutgoing(ctx, after, 500)
		if err != nil {
			return sum, err
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			after = o.ID
			if _, ok := sentByID[o.ID]; !ok {
				continue
			}
			if o.Accepted != nil {
				sum.Accepted++
			}
			if a, r := node.VerifyBoth(dir, HubID, o); a == nil && r == nil {
				sum.ReceiptsVerified++
			}
		}
	}

	// Count what each recipient recorded and open it.
	seen := map[string]int{}
	for _, ni := range nw.Layout.Nodes {
		svc := nw.Nodes[ni.ID]
		for _, tenant := range ni.Tenants {
			var afterSeq int64
			for {
				recs, err := svc.Store.List(ctx, listQuery(tenant, afterSeq))
				if err != nil {
					return sum, err
				}
				if len(recs) == 0 {
					break
				}
				for _, r := range recs {
					afterSeq = r.Seq
					s, ok := sentByID[r.ID]
					if !ok {
						continue
					}
					seen[r.ID]++
					if s.recipient != tenant {
						continue
					}
					if ok, _ := openMatches(ctx, svc.Node, tenant, r.ID, s.digest); ok {
						sum.Opened++
					}
				}
			}
		}
	}
	for _, c := range seen {
		sum.Recorded++
		sum.Duplicates += c - 1
	}
	for _, s := range nw.Nodes {
		sum.Redeliveries += s.Node.Stats().Duplicates
	}
	sum.ElapsedMS = time.Since(start).Milliseconds()
	if sum.ElapsedMS > 0 {
		sum.PerSecond = float64(sum.Recorded) / (float64(sum.ElapsedMS) / 1000)
	}
	sum.Passed = sum.Sent == n && sum.Accepted == n && sum.Recorded == n && sum.ReceiptsVerified == n && sum.Opened == n && sum.Duplicates == 0
	if !sum.Passed && firstErr != nil {
		return sum, fmt.Errorf("devnet: workload: first error: %w", firstErr)
	}
	return sum, nil
}

func openMatches(ctx context.Context, n *node.Node, tenant, id string, want [32]byte) (bool, error) {
	rc, _, err := n.Open(ctx, tenant, id)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return false, err
	}
	return [32]byte(h.Sum(nil)) == want, nil
}

func listQuery(tenant string, after int64) store.Query {
	return store.Query{Recipient: tenant, AfterSeq: after, Limit: 500}
}
