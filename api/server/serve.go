package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"pushlane/config"
)

// Serve runs the HTTP server until ctx ends, then drains: stop accepting, close sockets with
// 1001 once their queues are written, flush and close the store.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	a, err := New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		a.Close(context.Background())
		return fmt.Errorf("listen on %s (server.addr): %w", cfg.Server.Addr, err)
	}
	if cfg.Server.Pprof {
		_, stopPprof, err := serveSide(cfg.Server.PprofAddr, pprofHandler(), "pprof", log)
		if err != nil {
			_ = ln.Close()
			a.Close(context.Background())
			return fmt.Errorf("listen on %s (server.pprofAddr): %w", cfg.Server.PprofAddr, err)
		}
		defer stopPprof()
	}
	if cfg.Server.MetricsAddr != "" {
		bound, stopMetrics, err := serveSide(cfg.Server.MetricsAddr, a.MetricsHandler(), "metrics", log)
		if err != nil {
			_ = ln.Close()
			a.Close(context.Background())
			return fmt.Errorf("listen on %s (server.metricsAddr): %w", cfg.Server.MetricsAddr, err)
		}
		defer stopMetrics()
		fmt.Fprintf(stdout, "pushlane metrics on http://%s/metrics\n", bound)
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	scheme := "http"
	if cfg.Server.TLS.Enabled() {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "pushlane listening on %s://%s\n", scheme, ln.Addr())
	log.Info("pushlane started", "addr", ln.Addr().String(), "store", cfg.Store.Driver, "broker", cfg.Broker.Driver, "tls", cfg.Server.TLS.Enabled())
	a.warnIfOpen(ln.Addr())

	served := make(chan error, 1)
	go func() {
		if cfg.Server.TLS.Enabled() {
			served <- srv.ServeTLS(ln, cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}

	log.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout)
	drainStart := time.Now()
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	a.handlers.SetDraining()
	// The subscriber connections drain (queued frames, then 1001) while the HTTP server stops:
	// an event stream is a request that never finishes by itself, so srv.Shutdown would wait
	// for it until the drain ends it. In-flight HTTP requests get half the budget, so one slow
	// request cannot leave the connections' drain no time at all.
	drained := make(chan error, 1)
	go func() { drained <- a.Drain(drainCtx) }()
	httpCtx, cancelHTTP := context.WithTimeout(drainCtx, cfg.Server.ShutdownTimeout/2)
	clean := true
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown: requests still running after half of server.shutdownTimeout; closing them", "err", err)
		_ = srv.Close()
		clean = false
	}
	cancelHTTP()
	if err := <-drained; err != nil {
		clean = false
	}
	if err := a.Close(drainCtx); err != nil {
		clean = false
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	drain := time.Since(drainStart).Round(time.Millisecond)
	if !clean {
		// Nothing accepted is lost (every message was stored before its 200), but some
		// requests or connections were cut off instead of finishing: say so.
		log.Warn("pushlane stopped after a drain that did not finish within server.shutdownTimeout", "drain", drain)
		return nil
	}
	log.Info("pushlane stopped cleanly", "drain", drain)
	return nil
}
