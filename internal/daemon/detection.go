package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/detect"
	"taxlink/internal/hub"
	"taxlink/internal/operator"
	"taxlink/internal/queue"
)

// sampleEvery is how often the detector gets the process's figures.
const sampleEvery = time.Minute

// startDetection runs the built-in detection rules of a hub or node
// (第4 9(1)(3)) until ctx ends: it sees every audit event and a sample of
// the process's figures every minute, and sends its alerts to the console
// (when there is one) and to the configured webhooks, e-mail and syslog.
func startDetection(ctx context.Context, c *config.Common, al *audit.Log, ops *operator.Store, sample func() detect.Sample, log *slog.Logger) (*detect.Detector, error) {
	rules := detect.DefaultRules()
	var sinks []detect.Sink
	if ops != nil {
		// The console records its own lockouts; do not show them twice.
		rules.Events = slices.DeleteFunc(rules.Events, func(r detect.EventRule) bool { return r.Action == "auth.lockout" })
		sinks = append(sinks, detect.SinkFunc("console", func(ctx context.Context, a detect.Alert) error {
			_, err := ops.Alert(ctx, operator.Alert{Kind: a.Rule, Severity: a.Severity, Subject: a.Subject, Detail: a.Detail})
			return err
		}))
	}
	if d := c.Detection; d != nil {
		if len(d.Rules) > 0 {
			dec := json.NewDecoder(bytes.NewReader(d.Rules))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rules); err != nil {
				return nil, fmt.Errorf("detection.rules: %w", err)
			}
		}
		for i, w := range d.Webhooks {
			secret, err := readSecret(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("detection.webhooks[%d].secret_file: %w", i, err)
			}
			sinks = append(sinks, detect.Webhook{URL: w.URL, Secret: secret, Client: detect.NewWebhookClient()})
		}
		if e := d.Email; e != nil {
			var password string
			if e.PasswordFile != "" {
				p, err := readSecret(e.PasswordFile)
				if err != nil {
					return nil, fmt.Errorf("detection.email.password_file: %w", err)
				}
				password = p
			}
			min := e.MinSeverity
			if min == "" {
				min = "warning"
			}
			sinks = append(sinks, detect.AtLeast(min, detect.Email{Addr: e.Addr, From: e.From, To: e.To, Username: e.Username, Password: password}))
		}
		if s := d.Syslog; s != nil {
			sinks = append(sinks, &detect.Syslog{Network: s.Network, Addr: s.Addr, AppName: "taxlink"})
		}
	}
	d, err := detect.New(detect.Config{Rules: &rules, Sinks: sinks, Logger: log, Process: c.ID})
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	al.Observe(d.Event)
	go d.Run(ctx)
	go func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				al.Observe(nil)
				return
			case <-t.C:
				d.Sample(sample())
			}
		}
	}()
	return d, nil
}

// readSecret reads a secret file (a webhook key, a password), trimmed.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// hubSample reads a hub's figures for the detector.
func hubSample(ctx context.Context, h *hub.Hub, q *queue.Queue, cm *common) detect.Sample {
	st := h.Stats()
	s := detect.Sample{Accepted: float64(st.Accepted), Delivered: float64(st.Delivered), DeliveryFailures: h.DeliveryFailures(),
		Backlog: map[string]uint64{}, OldestAge: map[string]time.Duration{}}
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	b, err := q.Backlogs(ctx)
	if err != nil {
		return s
	}
	for _, r := range cm.dir.Get().Recipients() {
		n := b[queue.Token(r)]
		if n == 0 {
			continue
		}
		s.Backlog[r] = n
		if t, ok, err := q.Oldest(ctx, queue.Token(r)); err == nil && ok {
			s.OldestAge[r] = time.Since(t)
		}
	}
	return s
}
