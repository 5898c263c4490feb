package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"taxlink/internal/hub"
	"taxlink/internal/ledger"
	"taxlink/internal/metrics"
	"taxlink/internal/queue"
)

// scrapeTimeout bounds what one scrape may spend reading state.
const scrapeTimeout = 3 * time.Second

func commonGauges(reg prometheus.Registerer, cm *common, dataDir string) {
	metrics.GaugeFunc(reg, "taxlink_cert_expiry_seconds", "Seconds until this process's TLS certificate expires.", func() float64 {
		return time.Until(cm.reloader.Certificate().Leaf.NotAfter).Seconds()
	})
	metrics.GaugeFunc(reg, "taxlink_disk_free_bytes", "Bytes available in the data directory's file system.", func() float64 {
		return metrics.DiskFree(dataDir)
	})
	metrics.GaugeFunc(reg, "taxlink_directory_version", "Version of the directory in force.", func() float64 {
		return float64(cm.dir.Get().Version)
	})
}

func hubGauges(reg prometheus.Registerer, h *hub.Hub, q *queue.Queue, lg *ledger.Log, cm *common, dataDir string) {
	commonGauges(reg, cm, dataDir)
	metrics.GaugeFunc(reg, "taxlink_hub_ledger_entries", "Entries in the hub's ledger.", func() float64 {
		return float64(lg.Size())
	})
	metrics.GaugeFunc(reg, "taxlink_hub_delivery_loops", "Recipients with a delivery loop now.", func() float64 {
		return float64(h.Stats().DeliveryLoops)
	})
	metrics.GaugeFunc(reg, "taxlink_hub_receipt_waits", "Nodes' requests waiting for recording receipts now.", func() float64 {
		return float64(h.Stats().ReceiptWaits)
	})
	metrics.GaugeFunc(reg, "taxlink_hub_blob_bytes", "Bytes of the large ciphertexts the hub holds until delivered (files in data_dir/blobs, or chunks in JetStream at replicas).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		n, err := q.BlobBytes(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	backlog := func() []metrics.Sample {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		b, err := q.Backlogs(ctx)
		if err != nil {
			return nil
		}
		var out []metrics.Sample
		for _, rcpt := range cm.dir.Get().Recipients() {
			out = append(out, metrics.Sample{Labels: []string{rcpt}, Value: float64(b[queue.Token(rcpt)])})
		}
		return out
	}
	metrics.GaugeSet(reg, "taxlink_hub_backlog", "Envelopes queued for a recipient and not yet recorded.", []string{"recipient"}, backlog)
	metrics.GaugeSet(reg, "taxlink_hub_delivery_failures", "Failed delivery attempts per recipient since the hub started.", []string{"recipient"}, func() []metrics.Sample {
		var out []metrics.Sample
		for rcpt, n := range h.DeliveryFailures() {
			out = append(out, metrics.Sample{Labels: []string{rcpt}, Value: float64(n)})
		}
		return out
	})
	metrics.GaugeSet(reg, "taxlink_hub_backlog_oldest_seconds", "Age of the oldest envelope queued for a recipient (0 when none).", []string{"recipient"}, func() []metrics.Sample {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		b, err := q.Backlogs(ctx)
		if err != nil {
			return nil
		}
		var out []metrics.Sample
		for _, rcpt := range cm.dir.Get().Recipients() {
			age := 0.0
			if b[queue.Token(rcpt)] > 0 {
				if t, ok, err := q.Oldest(ctx, queue.Token(rcpt)); err == nil && ok {
					age = time.Since(t).Seconds()
				}
			}
			out = append(out, metrics.Sample{Labels: []string{rcpt}, Value: age})
		}
		return out
	})
}

func nodeGauges(reg prometheus.Registerer, l *LoadedNode) {
	commonGauges(reg, l.cm, l.Config.DataDir)
	counts := func(pick func(total, accepted, recorded int64) int64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			defer cancel()
			t, a, r, err := l.Store.OutgoingCounts(ctx)
			if err != nil {
				return -1
			}
			return float64(pick(t, a, r))
		}
	}
	metrics.GaugeFunc(reg, "taxlink_node_outbox_pending", "Envelopes in the outbox not yet accepted by the hub.", counts(func(t, a, _ int64) int64 { return t - a }))
	metrics.GaugeFunc(reg, "taxlink_node_awaiting_recording", "Envelopes accepted by the hub whose recording receipt has not come back.", counts(func(_, a, r int64) int64 { return a - r }))
}
