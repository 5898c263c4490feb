package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"taxlink/internal/audit"
	"taxlink/internal/config"
	"taxlink/internal/envelope"
	"taxlink/internal/export"
	"taxlink/internal/pki"
	"taxlink/internal/scan"
)

// exportOpener opens a record for a tax system, holding back what the
// malware check has not passed.
func (b *nodeBackend) exportOpener(ctx context.Context, actor, from, tenant, id string) (io.ReadCloser, *envelope.Header, error) {
	if b.scans != nil {
		if st, _, _ := b.scans.State(tenant, id); st != scan.Clean {
			return nil, nil, fmt.Errorf("%s %s: %w", tenant, id, export.ErrHeld)
		}
	}
	return b.n.OpenAs(ctx, actor, from, tenant, id)
}

// startExport serves the export API and runs the file drops e configures
// until stop is called (or parent ends); it returns the API's address (""
// without one). stop waits until nothing runs any more.
func startExport(parent context.Context, e *config.Export, dataDir string, b *nodeBackend, al *audit.Log, log *slog.Logger) (addr string, stop func(), err error) {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	cursors, err := export.OpenCursors(filepath.Join(dataDir, "export-cursors"))
	if err != nil {
		return "", nil, err
	}
	for _, d := range e.Drops {
		drop, err := export.NewDrop(export.DropConfig{Name: d.Name, Tenant: d.Tenant, Dir: d.Dir, MaxPending: d.MaxPending,
			Store: b.st, Open: b.exportOpener, Cursors: cursors, Audit: al, Logger: log})
		if err != nil {
			return "", nil, fmt.Errorf("export.drops %s: %w", d.Name, err)
		}
		every, _ := time.ParseDuration(d.Every) // validated; 0 means the default
		wg.Go(func() { drop.Run(ctx, every) })
	}
	if e.Listen == "" {
		return "", stop, nil
	}
	var clients []export.Client
	for _, c := range e.Clients {
		var nets []netip.Prefix
		for _, n := range c.Networks {
			p, _ := netip.ParsePrefix(n) // validated
			nets = append(nets, p)
		}
		clients = append(clients, export.Client{Name: c.Name, Tenant: c.Tenant, CertSHA256: strings.ToLower(c.CertSHA256), Networks: nets})
	}
	srv, err := export.NewServer(export.Config{Clients: clients, Store: b.st, Open: b.exportOpener, Cursors: cursors, Audit: al, Logger: log, Now: time.Now})
	if err != nil {
		return "", nil, err
	}
	cas, err := pki.ReadCertFile(e.ClientCA)
	if err != nil {
		return "", nil, fmt.Errorf("export.client_ca: %w", err)
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pki.CertPool(cas...),
		GetCertificate: b.cm.reloader.GetCertificate,
	}
	ln, err := net.Listen("tcp", e.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("export.listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	wg.Go(func() {
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("export API stopped", "err", err)
		}
	})
	return ln.Addr().String(), stop, nil
}
