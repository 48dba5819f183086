package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"pushlane/config"
	"pushlane/module"
	"pushlane/module/store/memory"
	redisstore "pushlane/module/store/redis"
	"pushlane/module/store/redis/redistest"
	"pushlane/module/store/sqlite"
)

// Timeouts of the end-to-end tests. They are upper bounds that only a broken server reaches;
// nothing waits for them to pass.
const (
	readTimeout = 10 * time.Second // one frame, one close frame
	waitTimeout = 10 * time.Second // a condition polled with waitFor
)

// storeDrivers are the stores every delivery test runs against.
var storeDrivers = []string{"sqlite", "memory"}

// env is one assembled node, built exactly as app.go builds it, behind a real listener.
type env struct {
	t        testing.TB
	cfg      config.Config
	store    module.Store
	hub      *module.Hub
	broker   module.Broker
	svc      *module.Service
	handlers *Handlers
	srv      *httptest.Server
	http     *http.Client

	closeOnce sync.Once
	committed atomic.Int64 // messages the store handed to its commit hook
}

// newEnv starts a node with config.Default() changed by tune (may be nil) and the given store
// driver ("sqlite": a file in t.TempDir(); "memory"). Everything is torn down in t.Cleanup, after
// the test's own cleanups (which close its clients).
func newEnv(t testing.TB, driver string, tune func(*config.Config), opts ...envOption) *env {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Driver = driver
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	var setup envSetup
	for _, o := range opts {
		o(&setup)
	}
	var rdb *goredis.Client
	if driver == "redis" {
		if setup.redis != nil {
			rdb = setup.redis.Client()
			t.Cleanup(func() { _ = rdb.Close() })
			cfg.Redis.KeyPrefix = "p:"
		} else {
			rdb = redistest.Client(t)
			cfg.Redis.KeyPrefix = redistest.Prefix(t, rdb)
		}
	}
	if tune != nil {
		tune(&cfg)
	}
	reg := prometheus.NewRegistry()
	metrics := module.NewMetrics(reg)
	log := slog.New(slog.DiscardHandler)

	e := &env{t: t, cfg: cfg}
	storeOpts := module.StoreOptions{
		MaxPerUser: cfg.Store.MaxPerUser,
		Metrics:    metrics,
		OnCommit: func(msgs []module.Message) {
			e.committed.Add(int64(len(msgs)))
			e.broker.Deliver(msgs)
		},
	}
	switch driver {
	case "memory":
		e.store = memory.New(storeOpts)
	case "sqlite":
		s, err := sqlite.Open(cfg.Store.Path, storeOpts)
		if err != nil {
			t.Fatalf("open sqlite store: %v", err)
		}
		e.store = s
	case "redis":
		ro := redisstore.Options{KeyPrefix: cfg.Redis.KeyPrefix, Log: log, OpTimeout: setup.opTimeout}
		if setup.redis != nil {
			ro.ClaimLease = 2 * time.Second
		}
		s, err := redisstore.New(rdb, storeOpts, ro)
		if err != nil {
			t.Fatalf("open redis store: %v", err)
		}
		e.store = s
	default:
		t.Fatalf("unknown store driver %q", driver)
	}
	if setup.wrapStore != nil {
		e.store = setup.wrapStore(e.store)
	}
	ws := cfg.WebSocket
	e.hub = module.NewHub(module.HubConfig{
		PingInterval:    ws.PingInterval,
		PongWait:        ws.PongWait,
		WriteWait:       ws.WriteWait,
		MaxMessageBytes: ws.MaxMessageBytes,
		SendQueue:       ws.SendQueue,
		SendQueueBytes:  ws.SendQueueBytes,
		MaxConnsPerUser: ws.MaxConnsPerUser,
		MaxConns:        ws.MaxConns,
	}, e.store, metrics, log)
	e.broker = module.NewLocalBroker(e.hub)
	e.svc = module.NewService(e.store, e.broker, e.hub, metrics, cfg.Store.TTL)
	e.handlers = NewHandlers(Deps{Service: e.svc, Config: cfg, Log: log, Registry: reg})
	e.srv = httptest.NewUnstartedServer(NewRouter(e.handlers))
	for _, o := range setup.servers {
		o(e.srv)
	}
	e.srv.Start()
	e.http = e.srv.Client()
	e.http.Timeout = 30 * time.Second

	t.Cleanup(e.close)
	return e
}

// close tears the node down (at cleanup, or earlier for a restart on the same store); only the
// first call does anything.
func (e *env) close() {
	e.closeOnce.Do(func() {
		t := e.t
		e.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.hub.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		e.hub.Close()
		e.handlers.Close()
		if err := e.broker.Close(); err != nil {
			t.Errorf("broker close: %v", err)
		}
		if err := e.store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
}

// envOption changes how newEnv builds the node.
type envOption func(*envSetup)

type envSetup struct {
	servers   []func(*httptest.Server)        // change the test server before it starts
	wrapStore func(module.Store) module.Store // a test double around the real store
	redis     *redistest.Server               // the redis driver uses this private server
	opTimeout time.Duration                   // the redis store's OpTimeout (0: its default)
}

// privateRedis makes the redis driver use srv (a private redis-server the test may pause) with
// the given operation timeout, and Idempotency-Key claims that a holder that lost Redis holds
// for 2 s only.
func privateRedis(srv *redistest.Server, opTimeout time.Duration) envOption {
	return func(s *envSetup) { s.redis, s.opTimeout = srv, opTimeout }
}

// wrapStore puts wrap around the node's real store (a test double for timing only).
func wrapStore(wrap func(module.Store) module.Store) envOption {
	return func(s *envSetup) { s.wrapStore = wrap }
}

// smallSendBuffers gives every accepted connection a small kernel send buffer, so a client that
// stops reading blocks the server's writes after a few frames instead of after megabytes, on any
// kernel. Combine with smallReadBufferDialer on the client side.
func smallSendBuffers(s *envSetup) {
	s.servers = append(s.servers, func(srv *httptest.Server) {
		srv.Listener = sendBufferListener{srv.Listener}
	})
}

type sendBufferListener struct{ net.Listener }

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// allStores are storeDrivers and the redis store (with the local broker).
var allStores = append(append([]string{}, storeDrivers...), "redis")

// forAllStores runs body as a parallel subtest against every store driver, redis included.
func forAllStores(t *testing.T, body func(t *testing.T, driver string)) {
	for _, d := range allStores {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			body(t, d)
		})
	}
}

// forEachStore runs body as a parallel subtest against every store driver.
func forEachStore(t *testing.T, body func(t *testing.T, driver string)) {
	for _, d := range storeDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			body(t, d)
		})
	}
}

// ---- polling ----

// waitFor polls cond until it holds or timeout passes; then the test fails naming what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll is waitFor for goroutines other than the test's: it returns an error instead of failing.
func poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		<-tick.C
	}
	return nil
}

// waitConns waits until the hub has registered exactly n connections of user.
func (e *env) waitConns(user string, n int) {
	e.t.Helper()
	waitFor(e.t, waitTimeout, fmt.Sprintf("%d registered connections of %q", n, user), func() bool {
		return e.hub.Count(user) == n
	})
}

// ---- HTTP ----

// do sends a request and returns the status and the whole body. It never fails the test, so
// goroutines may use it.
func (e *env) do(method, path string, body []byte, header http.Header) (int, []byte, http.Header, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// request is do for the test goroutine: transport errors fail the test.
func (e *env) request(method, path string, body []byte) (int, []byte) {
	e.t.Helper()
	status, b, _, err := e.do(method, path, body, nil)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, b
}

// getJSON GETs path, requires want as status and decodes the body into dst.
func (e *env) getJSON(path string, want int, dst any) {
	e.t.Helper()
	status, b := e.request(http.MethodGet, path, nil)
	if status != want {
		e.t.Fatalf("GET %s: status %d, want %d; body %s", path, status, want, b)
	}
	if dst != nil {
		if err := json.Unmarshal(b, dst); err != nil {
			e.t.Fatalf("GET %s: body %s: %v", path, b, err)
		}
	}
}

type pubResult struct {
	UserID string `json:"userId"`
	ID     string `json:"id"`
	Online bool   `json:"online"`
}

type pubResponse struct {
	Results []pubResult `json:"results"`
}

// publishE POSTs /pushNews and returns the results; any status but 200 is an error.
func (e *env) publishE(body []byte) (pubResponse, error) {
	var out pubResponse
	status, b, _, err := e.do(http.MethodPost, "/pushNews", body, nil)
	if err != nil {
		return out, err
	}
	if status != http.StatusOK {
		return out, fmt.Errorf("POST /pushNews %s: status %d, body %s", truncate(body), status, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("POST /pushNews: response %s: %w", b, err)
	}
	return out, nil
}

// publish publishes data (any Go value, JSON-encoded; json.RawMessage as is) to one user and
// returns its id.
func (e *env) publish(user string, data any) uint64 {
	e.t.Helper()
	id, err := e.publishOne(user, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// publishOne is publish for any goroutine.
func (e *env) publishOne(user string, data any) (uint64, error) {
	body, err := json.Marshal(map[string]any{"userId": user, "data": data})
	if err != nil {
		return 0, err
	}
	resp, err := e.publishE(body)
	if err != nil {
		return 0, err
	}
	if len(resp.Results) != 1 || resp.Results[0].UserID != user {
		return 0, fmt.Errorf("publish to %s: results %+v", user, resp.Results)
	}
	return parseID(resp.Results[0].ID)
}

// parseID checks that id is a canonical message id and returns it.
func parseID(id string) (uint64, error) {
	n, err := strconv.ParseUint(id, 10, 63)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
		return 0, fmt.Errorf("message id %q is not canonical", id)
	}
	return n, nil
}

func truncate(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

// ---- WebSocket clients ----

// client is one subscriber connection, read by the test goroutine or by one reader goroutine.
type client struct {
	t    testing.TB
	conn *websocket.Conn
	user string
}

// wsURL is the subscribe URL with the given raw query.
func (e *env) wsURL(rawQuery string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/getPushNews?" + rawQuery
}

// subQuery builds userId=U[&since=S]; since < 0 means no since.
func subQuery(user string, since int64) string {
	v := url.Values{"userId": {user}}
	if since >= 0 {
		v.Set("since", strconv.FormatInt(since, 10))
	}
	return v.Encode()
}

var testDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// dialE dials the subscribe URL; on a refused handshake it returns the response (body readable).
func (e *env) dialE(rawQuery string, d *websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	if d == nil {
		d = testDialer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.DialContext(ctx, e.wsURL(rawQuery), nil)
}

// dial subscribes user (since < 0: without since) and closes the connection at cleanup.
func (e *env) dial(user string, since int64) *client {
	e.t.Helper()
	return e.dialWith(subQuery(user, since), user, nil)
}

func (e *env) dialWith(rawQuery, user string, d *websocket.Dialer) *client {
	e.t.Helper()
	conn, resp, err := e.dialE(rawQuery, d)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (status %d)", rawQuery, err, status)
	}
	e.t.Cleanup(func() { conn.Close() })
	return &client{t: e.t, conn: conn, user: user}
}

// frame is one server-to-client text frame, decoded.
type frame struct {
	raw    []byte
	fields map[string]json.RawMessage
}

// str returns a string field, or "" when absent.
func (f frame) str(name string) string {
	var s string
	_ = json.Unmarshal(f.fields[name], &s)
	return s
}

// id returns the message id of a data frame.
func (f frame) id() uint64 {
	n, _ := parseID(f.str("id"))
	return n
}

// readFrameE reads one text frame within timeout.
func readFrameE(conn *websocket.Conn, timeout time.Duration) (frame, error) {
	var f frame
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return f, err
	}
	kind, b, err := conn.ReadMessage()
	if err != nil {
		return f, err
	}
	if kind != websocket.TextMessage {
		return f, fmt.Errorf("frame of type %d, want text", kind)
	}
	f.raw = b
	if err := json.Unmarshal(b, &f.fields); err != nil {
		return f, fmt.Errorf("frame %q is not one JSON object: %w", b, err)
	}
	return f, nil
}

// readFrame reads one frame or fails the test.
func (c *client) readFrame() frame {
	c.t.Helper()
	f, err := readFrameE(c.conn, readTimeout)
	if err != nil {
		c.t.Fatalf("user %s: read frame: %v", c.user, err)
	}
	return f
}

// readMessage reads one data frame and checks its shape: exactly id, userId, data, createdAt,
// the userId of this client, a canonical id and an RFC 3339 UTC createdAt.
func (c *client) readMessage() frame {
	c.t.Helper()
	f := c.readFrame()
	if err := checkMessageFrame(f, c.user); err != nil {
		c.t.Fatal(err)
	}
	return f
}

func checkMessageFrame(f frame, user string) error {
	if len(f.fields) != 4 {
		return fmt.Errorf("frame %s: want exactly id, userId, data, createdAt", f.raw)
	}
	for _, k := range []string{"id", "userId", "data", "createdAt"} {
		if _, ok := f.fields[k]; !ok {
			return fmt.Errorf("frame %s lacks %q", f.raw, k)
		}
	}
	if _, err := parseID(f.str("id")); err != nil {
		return fmt.Errorf("frame %s: %w", f.raw, err)
	}
	if got := f.str("userId"); got != user {
		return fmt.Errorf("frame %s: userId %q, want %q", f.raw, got, user)
	}
	return checkCreatedAt(f)
}

func checkCreatedAt(f frame) error {
	at := f.str("createdAt")
	ts, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || !strings.HasSuffix(at, "Z") {
		return fmt.Errorf("frame %s: createdAt %q is not RFC 3339 UTC", f.raw, at)
	}
	if d := time.Since(ts); d < -time.Minute || d > 10*time.Minute {
		return fmt.Errorf("frame %s: createdAt %v is not about now", f.raw, ts)
	}
	return nil
}

// readIDs reads n data frames and returns their ids.
func (c *client) readIDs(n int) []uint64 {
	c.t.Helper()
	ids := make([]uint64, 0, n)
	for range n {
		ids = append(ids, c.readMessage().id())
	}
	return ids
}

// expectClose reads until the connection ends and requires a close frame with code.
func (c *client) expectClose(code int) {
	c.t.Helper()
	if err := expectCloseE(c.conn, code, readTimeout); err != nil {
		c.t.Fatalf("user %s: %v", c.user, err)
	}
}

// expectCloseE skips data frames until the close frame and checks its code.
func expectCloseE(conn *websocket.Conn, code int, timeout time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != code {
				return fmt.Errorf("close code %d (%q), want %d", ce.Code, ce.Text, code)
			}
			return nil
		}
		return fmt.Errorf("connection ended without a close frame (want %d): %w", code, err)
	}
}

// sendText writes a text frame from the client.
func (c *client) sendText(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// collector reads data frames on its own goroutine until the stop message, or fails.
type collector struct {
	ids  []uint64
	err  error
	done chan struct{}
}

// stopData is the data of the message that ends a collector.
const stopData = `"stop collecting"`

// collect starts reading data frames of user from conn in the background, up to the first one
// whose data is stopData (publish it with e.publish(user, json.RawMessage(stopData))).
func collect(conn *websocket.Conn, user string) *collector {
	col := &collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for {
			f, err := readFrameE(conn, readTimeout)
			if err == nil {
				err = checkMessageFrame(f, user)
			}
			if err != nil {
				col.err = err
				return
			}
			if string(f.fields["data"]) == stopData {
				return
			}
			col.ids = append(col.ids, f.id())
		}
	}()
	return col
}

// wait returns the ids collected once the collector stopped.
func (col *collector) wait(t testing.TB) []uint64 {
	t.Helper()
	select {
	case <-col.done:
	case <-time.After(2 * readTimeout):
		t.Fatal("collector did not finish")
	}
	if col.err != nil {
		t.Fatalf("collector: %v (after ids %v)", col.err, col.ids)
	}
	return col.ids
}

// requireIncreasingExactly checks that got is want: every id exactly once, in increasing order.
func requireIncreasingExactly(t testing.TB, what string, got, want []uint64) {
	t.Helper()
	if err := sameIDs(got, want); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameIDs(got, want []uint64) error {
	for i := 1; i < len(want); i++ {
		if want[i] <= want[i-1] {
			return fmt.Errorf("test bug: want ids not increasing: %v", want)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d ids %v, want %d ids %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("id #%d is %d, want %d (got %v, want %v)", i, got[i], want[i], got, want)
		}
	}
	return nil
}

// errorBodyOK checks an error response: {"error": "<non-empty>"} and a JSON content type.
func errorBodyOK(b []byte, header http.Header) error {
	if header != nil && !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("error response Content-Type %q, want application/json", header.Get("Content-Type"))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("error body %q is not JSON: %w", b, err)
	}
	var msg string
	if len(m) != 1 || json.Unmarshal(m["error"], &msg) != nil || msg == "" {
		return fmt.Errorf(`error body %s, want {"error": "<reason>"}`, b)
	}
	return nil
}

// smallReadBufferDialer dials with a small kernel receive buffer, so a client that stops reading
// makes the server's writes block after a few hundred KB instead of tens of MB.
func smallReadBufferDialer() *websocket.Dialer {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(16 << 10)
			}
			return c, nil
		},
	}
}

// committed is how many messages the store has committed so far, for any user: every one of them
// passes the commit hook, which counts it. An unchanged value proves that nothing was stored.
func committed(e *env) int64 { return e.committed.Load() }

type clientDetail struct {
	UserID      string `json:"userId"`
	Connections []struct {
		ID           string `json:"id"`
		RemoteAddr   string `json:"remoteAddr"`
		ConnectedAt  string `json:"connectedAt"`
		MessagesSent int64  `json:"messagesSent"`
	} `json:"connections"`
	Pending int `json:"pending"`
}

// pending is the unread-queue size GET /clients/:id reports (-1 when the user is unknown: 404).
func (e *env) pending(user string) int {
	e.t.Helper()
	status, b := e.request(http.MethodGet, "/clients/"+user, nil)
	if status == http.StatusNotFound {
		return -1
	}
	var d clientDetail
	if status != http.StatusOK || json.Unmarshal(b, &d) != nil {
		e.t.Fatalf("GET /clients/%s: status %d, body %s", user, status, b)
	}
	return d.Pending
}

// pump reads a connection on its own goroutine (so control frames are handled: pings, close)
// and hands over every text frame; the read error that ends it arrives on errc. It stops at
// the first error.
type pump struct {
	frames chan frame
	errc   chan error
}

func startPump(conn *websocket.Conn) *pump {
	p := &pump{frames: make(chan frame, 1024), errc: make(chan error, 1)}
	go func() {
		for {
			_ = conn.SetReadDeadline(time.Time{})
			kind, b, err := conn.ReadMessage()
			if err != nil {
				p.errc <- err
				return
			}
			f := frame{raw: b}
			if kind == websocket.TextMessage {
				_ = json.Unmarshal(b, &f.fields)
			}
			p.frames <- f
		}
	}()
	return p
}

// next returns the next frame within timeout or fails the test.
func (p *pump) next(t testing.TB) frame {
	t.Helper()
	select {
	case f := <-p.frames:
		return f
	case err := <-p.errc:
		t.Fatalf("connection ended: %v", err)
	case <-time.After(readTimeout):
		t.Fatal("no frame within the timeout")
	}
	return frame{}
}

// metricValue reads one unlabelled sample from GET /metrics.
func metricValue(t testing.TB, e *env, name string) float64 {
	t.Helper()
	status, b := e.request(http.MethodGet, "/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
