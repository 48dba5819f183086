package bench

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"pushlane/api/server"
	"pushlane/config"
)

// node is one pushlane node, built by server.New as the binary builds it, behind a real loopback
// listener.
type node struct {
	cfg config.Config
	srv *httptest.Server
}

// newNode starts a node with config.Default() changed by tune (may be nil) on the given store
// driver ("sqlite" in t.TempDir(), or "memory"); it is torn down in t.Cleanup.
func newNode(t testing.TB, driver string, tune func(*config.Config)) *node {
	t.Helper()
	return newNodeOn(t, driver, tune, httptest.NewServer)
}

// newNodeOn is newNode with the listener of choice (httptest.NewTLSServer for HTTPS).
func newNodeOn(t testing.TB, driver string, tune func(*config.Config), listen func(http.Handler) *httptest.Server) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Driver = driver
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	cfg.WebSocket.MaxConnsPerUser = 0
	if tune != nil {
		tune(&cfg)
	}
	a, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build node: %v", err)
	}
	n := &node{cfg: cfg, srv: listen(a.Handler())}
	t.Cleanup(func() {
		n.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return n
}
