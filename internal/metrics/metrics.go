// Package metrics exposes a taxlink process to monitoring: Prometheus
// metrics, /healthz (the process is alive) and /readyz (it can do its work
// now), on a plain-HTTP listener meant for the operations network only
// (bind it to loopback or an admin address).
//
// Metric names start with taxlink_. Labels carry notification types,
// refusal codes and participant IDs of recipients (organisations), never
// an envelope ID, a payload byte or anything about a taxpayer.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"taxlink/internal/sbom"
)

// latencyBuckets spans a fast fsync (0.5 ms) to a slow upload.
var latencyBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30}

// Hub holds a hub's instruments. Its methods are safe on a nil *Hub (no
// metrics), so code under test needs none.
type Hub struct {
	accepted        *prometheus.CounterVec
	refused         *prometheus.CounterVec
	acceptSeconds   prometheus.Histogram
	delivered       prometheus.Counter
	deliverySeconds prometheus.Histogram
	retries         *prometheus.CounterVec
	ledgerSeconds   prometheus.Histogram
	stepSeconds     *prometheus.HistogramVec
	authFailures    prometheus.Counter
}

// Node holds a node's instruments; nil-safe like Hub.
type Node struct {
	recorded      *prometheus.CounterVec
	duplicates    prometheus.Counter
	refused       *prometheus.CounterVec
	recordSeconds prometheus.Histogram
	receipts      *prometheus.CounterVec
	submitted     *prometheus.CounterVec
	authFailures  prometheus.Counter
}

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewHub registers a hub's instruments in reg.
func NewHub(reg prometheus.Registerer) *Hub {
	f := factory{reg}
	return &Hub{
		accepted:        f.counterVec("taxlink_hub_accepted_total", "Envelopes accepted (durable, receipt signed), by notification type.", "type"),
		refused:         f.counterVec("taxlink_hub_refused_total", "Submissions refused, by refusal code.", "code"),
		acceptSeconds:   f.histogram("taxlink_hub_accept_seconds", "Time from request to acceptance receipt."),
		delivered:       f.counter("taxlink_hub_delivered_total", "Envelopes recorded by their recipient's node, receipt verified."),
		deliverySeconds: f.histogram("taxlink_hub_delivery_seconds", "Time of one successful delivery to a node."),
		retries:         f.counterVec("taxlink_hub_delivery_retries_total", "Failed delivery attempts that will be retried, by reason.", "reason"),
		ledgerSeconds:   f.histogram("taxlink_hub_ledger_append_seconds", "Durable ledger appends (fsync included)."),
		stepSeconds: f.histogramVec("taxlink_hub_accept_step_seconds",
			"Time of each step of an acceptance: "+strings.Join(AcceptSteps(), ", ")+".", "step"),
		authFailures: f.counter("taxlink_auth_failures_total", "Refused TLS handshakes."),
	}
}

// The steps of an acceptance that AcceptStep times, in their order.
const (
	StepLookup  = "lookup"  // an earlier receipt of the envelope ID looked up
	StepQueue   = "queue"   // the envelope read and stored durably in its recipient's queue
	StepLedger  = "ledger"  // the acceptance's durable ledger entry
	StepReceipt = "receipt" // the receipt signed and stored durably for a repeat
)

// AcceptSteps returns the steps of an acceptance in their order.
func AcceptSteps() []string { return []string{StepLookup, StepQueue, StepLedger, StepReceipt} }

// NewNode registers a node's instruments in reg.
func NewNode(reg prometheus.Registerer) *Node {
	f := factory{reg}
	return &Node{
		recorded:      f.counterVec("taxlink_node_recorded_total", "Envelopes recorded (committed, receipt signed), by notification type.", "type"),
		duplicates:    f.counter("taxlink_node_duplicate_deliveries_total", "Repeated deliveries answered with the stored receipt."),
		refused:       f.counterVec("taxlink_node_refused_total", "Deliveries refused, by refusal code.", "code"),
		recordSeconds: f.histogram("taxlink_node_record_seconds", "Time to record a delivery (fsync included)."),
		receipts:      f.counterVec("taxlink_node_receipts_total", "Receipts of sent envelopes checked, by kind and result.", "kind", "result"),
		submitted:     f.counterVec("taxlink_node_submissions_total", "Submissions to the hub, by result (accepted, refused, retry).", "result"),
		authFailures:  f.counter("taxlink_auth_failures_total", "Refused TLS handshakes."),
	}
}

type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets}, labels)
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogram(name, help string) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets})
	f.reg.MustRegister(h)
	return h
}

// Accepted counts an acceptance that took d.
func (m *Hub) Accepted(typ string, d time.Duration) {
	if m != nil {
		m.accepted.WithLabelValues(typ).Inc()
		m.acceptSeconds.Observe(d.Seconds())
	}
}

// Refused counts a refusal.
func (m *Hub) Refused(code string) {
	if m != nil {
		m.refused.WithLabelValues(code).Inc()
	}
}

// Delivered counts a delivery that took d.
func (m *Hub) Delivered(d time.Duration) {
	if m != nil {
		m.delivered.Inc()
		m.deliverySeconds.Observe(d.Seconds())
	}
}

// Retry counts a failed delivery attempt.
func (m *Hub) Retry(reason string) {
	if m != nil {
		m.retries.WithLabelValues(reason).Inc()
	}
}

// LedgerAppend observes a ledger append.
func (m *Hub) LedgerAppend(d time.Duration) {
	if m != nil {
		m.ledgerSeconds.Observe(d.Seconds())
	}
}

// AcceptStep observes step (one of AcceptSteps()) of an acceptance.
func (m *Hub) AcceptStep(step string, d time.Duration) {
	if m != nil {
		m.stepSeconds.WithLabelValues(step).Observe(d.Seconds())
	}
}

// AuthFailure counts a refused handshake.
func (m *Hub) AuthFailure() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// Recorded counts a recording that took d.
func (m *Node) Recorded(typ string, d time.Duration) {
	if m != nil {
		m.recorded.WithLabelValues(typ).Inc()
		m.recordSeconds.Observe(d.Seconds())
	}
}

// Duplicate counts a repeated delivery.
func (m *Node) Duplicate() {
	if m != nil {
		m.duplicates.Inc()
	}
}

// Refused counts a refused delivery.
func (m *Node) Refused(code string) {
	if m != nil {
		m.refused.WithLabelValues(code).Inc()
	}
}

// Receipt counts a checked receipt of kind ("accepted", "recorded") with
// result ("verified", "invalid").
func (m *Node) Receipt(kind, result string) {
	if m != nil {
		m.receipts.WithLabelValues(kind, result).Inc()
	}
}

// Submitted counts a submission with result ("accepted", "refused",
// "retry").
func (m *Node) Submitted(result string) {
	if m != nil {
		m.submitted.WithLabelValues(result).Inc()
	}
}

// AuthFailure counts a refused handshake.
func (m *Node) AuthFailure() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// GaugeFunc registers a gauge read at each scrape.
func GaugeFunc(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Sample is one labelled value of a gauge computed at scrape time.
type Sample struct {
	Labels []string
	Value  float64
}

type gaugeSet struct {
	desc *prometheus.Desc
	read func() []Sample
}

func (g gaugeSet) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }
func (g gaugeSet) Collect(ch chan<- prometheus.Metric) {
	for _, s := range g.read() {
		if m, err := prometheus.NewConstMetric(g.desc, prometheus.GaugeValue, s.Value, s.Labels...); err == nil {
			ch <- m
		}
	}
}

// GaugeSet registers a labelled gauge whose samples read returns at each
// scrape (per-recipient backlogs, for example).
func GaugeSet(reg prometheus.Registerer, name, help string, labels []string, read func() []Sample) {
	reg.MustRegister(gaugeSet{prometheus.NewDesc(name, help, labels, nil), read})
}

// DiskFree returns the bytes available to the process on the file system
// holding path, or -1.
func DiskFree(path string) float64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return -1
	}
	return float64(st.Bavail) * float64(st.Bsize)
}

// Handler serves /metrics from reg, /sbom (the binary's CycloneDX
// inventory), /healthz (200 while the process
// runs) and /readyz (200 when ready returns nil, else 503 with the reason).
func Handler(reg *prometheus.Registry, ready func(ctx context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /sbom", sbom.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Serve listens on addr and serves h until ctx ends; it returns the
// address it listens on.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}
