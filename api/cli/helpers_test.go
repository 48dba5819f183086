package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"pushlane/api/server"
	"pushlane/config"
	"pushlane/module"
)

// TestMain fails the package when a goroutine outlives the tests: every Run must leave nothing
// behind (HTTP keep-alive connections, WebSocket watchers), and every node is torn down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait; only a broken client or server reaches it.
const waitTimeout = 10 * time.Second

// node is one real pushlane node, built by server.New as the binary builds it, behind an httptest server. Its handler
// records the query of every subscribe request and can refuse them with 503 (refuse), to hold a
// reconnecting listener off.
type node struct {
	t     testing.TB
	store module.Store
	hub   *module.Hub
	svc   *module.Service
	srv   *httptest.Server

	refuse  atomic.Bool
	mu      sync.Mutex
	queries []string // raw queries of /getPushNews requests, in arrival order
	refused int      // subscribe requests answered 503 by refuse
}

type nodeOptions struct {
	driver string // "memory" (default) or "sqlite"
	tls    bool
	tune   func(*config.Config)
}

func newNode(t testing.TB, opts nodeOptions) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Driver = "memory"
	if opts.driver != "" {
		cfg.Store.Driver = opts.driver
	}
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	if opts.tune != nil {
		opts.tune(&cfg)
	}
	app, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build node: %v", err)
	}
	n := &node{t: t, store: app.Store(), hub: app.Hub(), svc: app.Service()}
	router := app.Handler()

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/getPushNews" {
			n.mu.Lock()
			n.queries = append(n.queries, r.URL.RawQuery)
			refuse := n.refuse.Load() && r.URL.Query().Get("bypass") == ""
			if refuse {
				n.refused++
			}
			n.mu.Unlock()
			if refuse {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":"test: refusing subscribers for now"}`))
				return
			}
		}
		router.ServeHTTP(w, r)
	})
	n.srv = httptest.NewUnstartedServer(handler)
	n.srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // TLS tests provoke handshake errors on purpose
	if opts.tls {
		n.srv.StartTLS()
	} else {
		n.srv.Start()
	}

	t.Cleanup(func() {
		n.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		app.Close(ctx)
	})
	return n
}

// subscribeQueries returns the queries of the subscribe requests so far.
func (n *node) subscribeQueries() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.queries...)
}

func (n *node) refusedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused
}

// withServer inserts --server URL after the subcommand name.
func (n *node) withServer(args []string) []string {
	return append([]string{args[0], "--server", n.srv.URL}, args[1:]...)
}

// result is what one Run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the CLI against the node to completion (it must not be a listen without --count).
func (n *node) run(args ...string) result {
	n.t.Helper()
	return n.runWith(nil, "", n.withServer(args)...)
}

// runWith runs the CLI with env as its environment and stdin, bounded by waitTimeout.
func (n *node) runWith(env map[string]string, stdin string, args ...string) result {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, args, mapEnv(env), strings.NewReader(stdin), &out, &errb)
	if ctx.Err() != nil {
		n.t.Fatalf("%v did not finish within %v; stderr: %s", args, waitTimeout, errb.String())
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// bg is a Run in the background (a listen): its output grows while it runs.
type bg struct {
	stdout, stderr *syncBuffer
	code           chan int
	cancel         context.CancelFunc
}

// start runs the CLI on its own goroutine; cleanup cancels it and waits until it returned.
func (n *node) start(env map[string]string, args ...string) *bg {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &bg{stdout: &syncBuffer{}, stderr: &syncBuffer{}, code: make(chan int, 1), cancel: cancel}
	go func() {
		b.code <- Run(ctx, n.withServer(args), mapEnv(env), strings.NewReader(""), b.stdout, b.stderr)
	}()
	n.t.Cleanup(func() {
		cancel()
		select {
		case c := <-b.code:
			b.code <- c
		case <-time.After(waitTimeout):
			n.t.Errorf("%v did not stop after cancel", args)
		}
	})
	return b
}

// wait returns the exit code once Run returned, or fails the test after waitTimeout.
func (b *bg) wait(t testing.TB) int {
	t.Helper()
	select {
	case c := <-b.code:
		b.code <- c // cleanup reads it again
		return c
	case <-time.After(waitTimeout):
		t.Fatalf("the command did not exit within %v; stdout: %s; stderr: %s", waitTimeout, b.stdout, b.stderr)
	}
	return 0
}

// waitLines waits until stdout holds at least n lines.
func (b *bg) waitLines(t testing.TB, n int) []string {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d lines of output (stdout: %q, stderr: %q)", n, b.stdout, b.stderr), func() bool {
		return len(b.stdout.lines()) >= n
	})
	return b.stdout.lines()
}

// syncBuffer is a bytes.Buffer that one goroutine writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the complete lines written so far.
func (s *syncBuffer) lines() []string {
	text := s.String()
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		return strings.Split(text[:i], "\n")
	}
	return nil
}

// waitFor polls cond until it holds, or fails the test naming what it waited for.
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

// waitConns waits until the hub has registered exactly want connections of user.
func (n *node) waitConns(user string, want int) {
	n.t.Helper()
	waitFor(n.t, fmt.Sprintf("%d connections of %s (have %d)", want, user, n.hub.Count(user)), func() bool {
		return n.hub.Count(user) == want
	})
}

// publish stores and delivers one message to user and returns its id.
func (n *node) publish(user, data string) uint64 {
	n.t.Helper()
	res, err := n.svc.Publish(context.Background(), []string{user}, json.RawMessage(data), 0)
	if err != nil || len(res) != 1 {
		n.t.Fatalf("publish to %s: %v %v", user, res, err)
	}
	return res[0].ID
}

// heads returns the newest id of each user (0 for none): unchanged means nothing was stored for
// any of them.
func (n *node) heads(users ...string) []uint64 {
	n.t.Helper()
	out := make([]uint64, len(users))
	for i, user := range users {
		h, err := n.store.Head(context.Background(), user)
		if err != nil {
			n.t.Fatalf("Head(%s): %v", user, err)
		}
		out[i] = h.LastID
	}
	return out
}

// dial subscribes user with a plain WebSocket client (rawQuery is appended to userId=...);
// the connection is closed at cleanup.
func (n *node) dial(user, rawQuery string) *websocket.Conn {
	n.t.Helper()
	u := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/getPushNews?userId=" + user
	if rawQuery != "" {
		u += "&" + rawQuery
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		n.t.Fatalf("dial %s: %v", u, err)
	}
	n.t.Cleanup(func() { conn.Close() })
	return conn
}

// wireFrame is a server frame as the tests decode it.
type wireFrame struct {
	ID        string          `json:"id"`
	UserID    string          `json:"userId"`
	Broadcast bool            `json:"broadcast"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"createdAt"`
}

// readFrame reads one text frame within waitTimeout.
func readFrame(t testing.TB, conn *websocket.Conn) wireFrame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f wireFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// sameJSON reports whether a and b decode to equal values.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
