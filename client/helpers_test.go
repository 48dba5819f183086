package client_test

import (
	"context"
	"encoding/json"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pushlane/api/server"
	"pushlane/client"
	"pushlane/config"
	"pushlane/module"
)

// TestMain fails the package when a goroutine outlives the tests: a closed Subscription and an
// idle Client leave nothing behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 10 * time.Second

// node is a real pushlane node (server.New, as the binary builds it) behind a loopback listener
// whose connections the test can cut (drop), and whose handler can be wrapped (intercept).
type node struct {
	t    testing.TB
	srv  *httptest.Server
	ln   *trackingListener
	hub  *module.Hub
	svc  *module.Service
	url  string
	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool // true: answered, skip the node
}

func newNode(t testing.TB, tune func(*config.Config)) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Driver = "sqlite"
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	if tune != nil {
		tune(&cfg)
	}
	app, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build node: %v", err)
	}
	n := &node{t: t, hub: app.Hub(), svc: app.Service()}
	router := app.Handler()
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		hook := n.hook
		n.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		router.ServeHTTP(w, r)
	}))
	n.srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	n.ln = &trackingListener{Listener: n.srv.Listener}
	n.srv.Listener = n.ln
	n.srv.Start()
	n.url = n.srv.URL
	t.Cleanup(func() {
		n.srv.Close()
		n.ln.dropAll()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		app.Close(ctx)
	})
	return n
}

// intercept runs hook before the node for every request until it is replaced.
func (n *node) intercept(hook func(w http.ResponseWriter, r *http.Request) bool) {
	n.mu.Lock()
	n.hook = hook
	n.mu.Unlock()
}

// client returns a client of the node, cleaned up with the test.
func (n *node) client(opts ...client.Option) *client.Client {
	n.t.Helper()
	c, err := client.New(n.url, opts...)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(c.CloseIdleConnections)
	return c
}

// waitConns waits until user has want registered connections on the node.
func (n *node) waitConns(user string, want int) {
	n.t.Helper()
	waitFor(n.t, "connections of "+user, func() bool { return n.hub.Count(user) == want })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// trackingListener remembers every accepted connection, hijacked ones included, so that the
// test can cut them all as a network failure would.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// dropAll closes every connection accepted so far.
func (l *trackingListener) dropAll() {
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// next reads one message within waitTimeout.
func next(t testing.TB, s *client.Subscription) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func sameJSON(t testing.TB, got json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("data %s: %v", got, err)
	}
	_ = json.Unmarshal([]byte(want), &b)
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	if string(ab) != string(bb) {
		t.Errorf("data %s, want %s", got, want)
	}
}
