package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"pushlane/api"
	"pushlane/config"
	"pushlane/module"
	redisbroker "pushlane/module/broker/redis"
	redisstore "pushlane/module/store/redis"
	"pushlane/module/store/redis/redistest"
)

// Timeouts are upper bounds that only a broken cluster reaches; nothing waits for them to pass.
const (
	readTimeout = 10 * time.Second
	waitTimeout = 10 * time.Second
	presenceTTL = time.Second
)

// node is one pushlane node, assembled as app.go assembles it with store.driver and broker.driver
// redis, on its own Redis client (as a separate process would be), behind a real listener.
type node struct {
	name   string
	prefix string
	rdb    *goredis.Client
	store  *redisstore.Store
	hub    *module.Hub
	broker *redisbroker.Broker
	srv    *httptest.Server
	http   *http.Client
}

// newCluster starts n nodes sharing a fresh key prefix.
func newCluster(t testing.TB, n int) []*node {
	t.Helper()
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = newNode(t, prefix, fmt.Sprintf("n%d", i+1), redistest.Addr(), true)
	}
	return nodes
}

// newNode starts one node on the Redis at addr; with wait, it returns once the broker is connected.
func newNode(t testing.TB, prefix, name, addr string, wait bool) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Driver = "redis"
	cfg.Broker.Driver = "redis"
	cfg.Redis.KeyPrefix = prefix
	reg := prometheus.NewRegistry()
	metrics := module.NewMetrics(reg)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test-node", name)
	}
	o := redistest.Options()
	o.Addr = addr
	o.ClientName = prefix + name
	n := &node{name: name, prefix: prefix, rdb: goredis.NewClient(o)}
	var err error
	n.store, err = redisstore.New(n.rdb, module.StoreOptions{MaxPerUser: cfg.Store.MaxPerUser, Metrics: metrics},
		redisstore.Options{KeyPrefix: prefix, PublishLive: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ws := cfg.WebSocket
	n.hub = module.NewHub(module.HubConfig{
		PingInterval:    ws.PingInterval,
		PongWait:        ws.PongWait,
		WriteWait:       ws.WriteWait,
		MaxMessageBytes: ws.MaxMessageBytes,
		SendQueue:       ws.SendQueue,
		MaxConnsPerUser: ws.MaxConnsPerUser,
		MaxConns:        ws.MaxConns,
	}, n.store, metrics, log)
	n.broker, err = redisbroker.New(n.rdb, n.hub, redisbroker.Options{KeyPrefix: prefix, NodeID: name, PresenceTTL: presenceTTL, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	n.hub.SetWatcher(n.broker)
	svc := module.NewService(n.store, n.broker, n.hub, metrics, cfg.Store.TTL)
	n.srv = httptest.NewServer(api.NewRouter(api.NewHandlers(api.Deps{Service: svc, Config: cfg, Log: log, Registry: reg})))
	n.http = n.srv.Client()
	n.http.Timeout = 30 * time.Second
	t.Cleanup(func() {
		n.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.hub.Shutdown(ctx)
		n.hub.Close()
		_ = n.broker.Close()
		_ = n.store.Close()
		_ = n.rdb.Close()
	})
	if wait {
		waitFor(t, name+"'s broker to connect", func() bool { return n.broker.Ping(context.Background()) == nil })
	}
	return n
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// kill stops the node as kill -9 would: its Redis connections drop (so its subscriptions go at
// once and its presence expires), its sockets are cut, its listener closes. Nothing is cleaned.
func (n *node) kill() {
	_ = n.rdb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.hub.Shutdown(ctx)
	n.srv.CloseClientConnections()
	n.srv.Close()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do sends a request and returns the status and body.
func (n *node) do(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// doJSON sends a request, wants status want, and decodes the body into out (may be nil).
func (n *node) doJSON(t testing.TB, method, path, body string, want int, out any) {
	t.Helper()
	status, b := n.do(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s on %s = %d %s, want %d", method, path, n.name, status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s on %s: decode %s: %v", method, path, n.name, b, err)
		}
	}
}

type result struct {
	UserID string `json:"userId"`
	ID     string `json:"id"`
	Online bool   `json:"online"`
}

func (n *node) publish(t testing.TB, body string) []result {
	t.Helper()
	var r struct{ Results []result }
	n.doJSON(t, http.MethodPost, "/pushNews", body, http.StatusOK, &r)
	return r.Results
}

// frame is one server-to-client data frame.
type frame struct {
	ID        string          `json:"id"`
	UserID    string          `json:"userId"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"createdAt"`
	Broadcast bool            `json:"broadcast"`
}

func (f frame) id(t testing.TB) uint64 {
	t.Helper()
	id, err := strconv.ParseUint(f.ID, 10, 64)
	if err != nil {
		t.Fatalf("frame id %q: %v", f.ID, err)
	}
	return id
}

type client struct {
	t    testing.TB
	node *node
	user string
	conn *websocket.Conn
}

func wsURL(n *node, user, since string) string {
	u := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/getPushNews?userId=" + user
	if since != "" {
		u += "&since=" + since
	}
	return u
}

// dial subscribes user on n (since "" = none) and closes the connection when the test ends.
func (n *node) dial(t testing.TB, user, since string) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL(n, user, since), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s on %s: %v (status %d)", user, n.name, err, status)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, node: n, user: user, conn: conn}
}

func (c *client) next() frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s on %s: read: %v", c.user, c.node.name, err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("%s on %s: frame %s: %v", c.user, c.node.name, b, err)
	}
	if f.UserID != c.user {
		c.t.Fatalf("%s on %s got a frame of %s", c.user, c.node.name, f.UserID)
	}
	return f
}

// expect reads frames with these ids, in this order.
func (c *client) expect(ids ...uint64) []frame {
	c.t.Helper()
	out := make([]frame, len(ids))
	for i, want := range ids {
		f := c.next()
		if f.Broadcast || f.id(c.t) != want {
			c.t.Fatalf("%s on %s: frame %d is %+v, want id %d", c.user, c.node.name, i, f, want)
		}
		out[i] = f
	}
	return out
}

func (c *client) expectClose(code int) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	_, b, err := c.conn.ReadMessage()
	if err == nil {
		c.t.Fatalf("%s on %s: got %s, want close %d", c.user, c.node.name, b, code)
	}
	if !websocket.IsCloseError(err, code) {
		c.t.Fatalf("%s on %s: %v, want close %d", c.user, c.node.name, err, code)
	}
}

func TestClusterUnicastBatchBroadcast(t *testing.T) {
	n := newCluster(t, 3)
	a1 := n[0].dial(t, "alice", "")
	a2 := n[1].dial(t, "alice", "")
	b3 := n[2].dial(t, "bob", "")

	res := n[2].publish(t, `{"userId":"alice","data":{"n":1}}`)
	if len(res) != 1 || res[0] != (result{"alice", "1", true}) {
		t.Fatalf("publish results = %+v", res)
	}
	for _, c := range []*client{a1, a2} {
		if f := c.expect(1)[0]; string(f.Data) != `{"n":1}` {
			t.Fatalf("data = %s", f.Data)
		}
	}
	res = n[0].publish(t, `{"userIds":["alice","bob","carol"],"data":"batch"}`)
	want := []result{{"alice", "2", true}, {"bob", "1", true}, {"carol", "1", false}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("batch results = %+v, want %+v", res, want)
	}
	a1.expect(2)
	a2.expect(2)
	b3.expect(1)

	var bc struct{ Connections int }
	n[1].doJSON(t, http.MethodPost, "/broadcast", `{"data":{"b":true}}`, http.StatusOK, &bc)
	if bc.Connections != 3 {
		t.Fatalf("broadcast reached %d connections, want 3 (all nodes)", bc.Connections)
	}
	for _, c := range []*client{a1, a2, b3} {
		f := c.next()
		if !f.Broadcast || f.ID != "" || string(f.Data) != `{"b":true}` {
			t.Fatalf("%s: broadcast frame %+v", c.user, f)
		}
	}
}

func TestClusterClientsAndDelete(t *testing.T) {
	n := newCluster(t, 3)
	alice := []*client{n[0].dial(t, "alice", ""), n[1].dial(t, "alice", ""), n[1].dial(t, "alice", "")}
	bob := n[2].dial(t, "bob", "")
	n[0].publish(t, `{"userId":"alice","data":1}`)
	for _, c := range alice {
		c.expect(1)
	}

	for _, nd := range n {
		var list struct {
			Users []module.UserConns
			Total int
		}
		nd.doJSON(t, http.MethodGet, "/clients", "", http.StatusOK, &list)
		if fmt.Sprint(list.Users) != "[{alice 3} {bob 1}]" || list.Total != 2 {
			t.Fatalf("GET /clients on %s = %+v", nd.name, list)
		}
	}
	// Every node lists alice's connections on every node, with their frame counts.
	waitFor(t, "alice's connection details", func() bool {
		var d struct {
			Connections []module.ConnInfo
			Pending     int
		}
		n[2].doJSON(t, http.MethodGet, "/clients/alice", "", http.StatusOK, &d)
		if len(d.Connections) != 3 || d.Pending != 0 {
			return false
		}
		seen := map[string]bool{}
		for _, c := range d.Connections {
			if c.MessagesSent != 1 || seen[c.ID] {
				return false
			}
			seen[c.ID] = true
		}
		return strings.HasPrefix(d.Connections[0].ID, "n1-") && strings.HasPrefix(d.Connections[2].ID, "n2-")
	})

	var del struct {
		UserID string
		Closed int
	}
	n[2].doJSON(t, http.MethodDelete, "/deleteClient/alice", "", http.StatusOK, &del)
	if del.UserID != "alice" || del.Closed != 3 {
		t.Fatalf("deleteClient = %+v, want 3 closed on two other nodes", del)
	}
	for _, c := range alice {
		c.expectClose(module.CloseRemoved)
	}
	n[0].publish(t, `{"userId":"bob","data":2}`)
	bob.expect(1)
	waitFor(t, "alice to leave presence", func() bool {
		var list struct{ Users []module.UserConns }
		n[0].doJSON(t, http.MethodGet, "/clients", "", http.StatusOK, &list)
		return fmt.Sprint(list.Users) == "[{bob 1}]"
	})
	if status, b := n[1].do(t, http.MethodDelete, "/deleteClient/alice", ""); status != http.StatusNotFound {
		t.Fatalf("second delete = %d %s, want 404", status, b)
	}
	// Purge on any node removes the stored messages, connections or not.
	n[0].publish(t, `{"userIds":["zed"],"data":1}`)
	n[0].publish(t, `{"userIds":["zed"],"data":2}`)
	var purged struct{ Closed, Purged int }
	n[1].doJSON(t, http.MethodDelete, "/deleteClient/zed?purge=true", "", http.StatusOK, &purged)
	if purged.Closed != 0 || purged.Purged != 2 {
		t.Fatalf("purge = %+v", purged)
	}
	if res := n[2].publish(t, `{"userId":"zed","data":3}`); res[0].ID != "3" {
		t.Fatalf("id after purge = %s, want 3", res[0].ID)
	}
}

func TestClusterPendingAndSince(t *testing.T) {
	n := newCluster(t, 3)
	for i := 1; i <= 3; i++ {
		if res := n[0].publish(t, fmt.Sprintf(`{"userId":"dave","data":%d}`, i)); res[0].Online {
			t.Fatal("dave is online")
		}
	}
	// The unread queue, on another node.
	c := n[1].dial(t, "dave", "")
	c.expect(1, 2, 3)
	_ = c.conn.Close()
	waitFor(t, "the queue to be marked delivered", func() bool {
		var d struct{ Pending int }
		n[2].doJSON(t, http.MethodGet, "/clients/dave", "", http.StatusOK, &d)
		return d.Pending == 0
	})
	waitFor(t, "dave to go offline", func() bool {
		online, err := n[2].broker.Online(context.Background(), "dave")
		return err == nil && !online
	})
	if res := n[2].publish(t, `{"userId":"dave","data":4}`); res[0].ID != "4" || res[0].Online {
		t.Fatalf("publish while offline = %+v", res)
	}
	pending := n[2].dial(t, "dave", "")
	pending.expect(4)
	since := n[0].dial(t, "dave", "1")
	since.expect(2, 3, 4)
	// Live after the backlog, on both nodes, from a third.
	if res := n[1].publish(t, `{"userId":"dave","data":5}`); res[0].ID != "5" || !res[0].Online {
		t.Fatalf("publish = %+v", res)
	}
	pending.expect(5)
	since.expect(5)
}

// follower is a subscriber that survives its node: when its connection breaks it reconnects to
// the next node with since = the last id it saw. It records every id, per connection, and stops
// once it has seen the target id (set when the publisher is done; done is closed then).
type follower struct {
	user  string
	nodes []*node
	mu    sync.Mutex
	conns [][]uint64 // ids received, per connection
	err   error
}

func (f *follower) run(t *testing.T, target *atomic.Uint64, done <-chan struct{}, deadline time.Time) {
	var last uint64
	reached := func() bool { t := target.Load(); return t != 0 && last >= t }
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			f.fail(fmt.Errorf("%s: deadline with last id %d", f.user, last))
			return
		}
		nd := f.nodes[min(i, len(f.nodes)-1)]
		since := ""
		if i > 0 {
			since = strconv.FormatUint(last, 10)
		}
		conn, _, err := websocket.DefaultDialer.Dial(wsURL(nd, f.user, since), nil)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, nil)
		idx := len(f.conns) - 1
		f.mu.Unlock()
		frames := make(chan []byte, 256)
		stop := make(chan struct{})
		go func() {
			defer close(frames)
			for {
				_, b, err := conn.ReadMessage()
				if err != nil {
					return
				}
				select {
				case frames <- b:
				case <-stop:
					return
				}
			}
		}()
		doneNow := done
		broken := false
		for !broken && !reached() {
			select {
			case b, ok := <-frames:
				if !ok {
					broken = true // read error: reconnect
					break
				}
				var fr frame
				if err := json.Unmarshal(b, &fr); err != nil || fr.UserID != f.user {
					f.fail(fmt.Errorf("%s: bad frame %s", f.user, b))
					broken = true
					break
				}
				id, _ := strconv.ParseUint(fr.ID, 10, 64)
				f.mu.Lock()
				f.conns[idx] = append(f.conns[idx], id)
				f.mu.Unlock()
				last = max(last, id)
			case <-doneNow:
				doneNow = nil // the target is set: check it
			case <-time.After(time.Until(deadline)):
				broken = true
			}
		}
		close(stop)
		_ = conn.Close()
		if reached() {
			return
		}
	}
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// check: on every connection ids strictly increase, and together the connections saw every id
// in answered (each connection resumes where the previous one stopped).
func (f *follower) check(t *testing.T, answered []uint64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		t.Fatal(f.err)
	}
	seen := map[uint64]bool{}
	for i, ids := range f.conns {
		for j := 1; j < len(ids); j++ {
			if ids[j] <= ids[j-1] {
				t.Fatalf("%s connection %d: id %d after %d (ids %v)", f.user, i, ids[j], ids[j-1], ids)
			}
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	for _, id := range answered {
		if !seen[id] {
			t.Fatalf("%s: id %d was answered 200 and never arrived (connections %v)", f.user, id, f.conns)
		}
	}
}

// followerGroup is one follower per user and route, each reading until it has the last id
// answered to its user.
type followerGroup struct {
	targets   map[string]*atomic.Uint64
	all       []*follower
	wg        sync.WaitGroup
	published chan struct{}
}

// startFollowers starts, for every user, one follower on each route; they give up at timeout.
func startFollowers(t *testing.T, users []string, routes [][]*node, timeout time.Duration) *followerGroup {
	g := &followerGroup{targets: map[string]*atomic.Uint64{}, published: make(chan struct{})}
	deadline := time.Now().Add(timeout)
	for _, u := range users {
		target := &atomic.Uint64{}
		g.targets[u] = target
		for _, route := range routes {
			f := &follower{user: u, nodes: route}
			g.all = append(g.all, f)
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				f.run(t, target, g.published, deadline)
			}()
		}
	}
	return g
}

// donePublishing tells every follower the last id answered to its user: nothing more is coming.
func (g *followerGroup) donePublishing(answered map[string][]uint64) {
	for u, target := range g.targets {
		if ids := answered[u]; len(ids) > 0 {
			target.Store(ids[len(ids)-1])
		}
	}
	close(g.published)
}

// waitOpen waits until every follower's first connection is open (its dial returned, so the
// server has registered it and read where its backlog starts) and each user has want
// connections across the nodes. Presence or hub.Count alone is not enough: both count a
// connection from just before its upgrade, and a message published in that window is owed to
// it only if it is still pending.
func waitOpen(t *testing.T, nodes []*node, followers []*follower, users []string, want int) {
	t.Helper()
	waitFor(t, "every follower to connect", func() bool {
		for _, f := range followers {
			f.mu.Lock()
			open := len(f.conns) > 0
			f.mu.Unlock()
			if !open {
				return false
			}
		}
		for _, u := range users {
			got := 0
			for _, nd := range nodes {
				got += nd.hub.Count(u)
			}
			if got != want {
				return false
			}
		}
		return true
	})
}

// publisher publishes rounds of one message per user from one node, recording the ids answered
// 200, and calls during(i) before round i.
func publisher(t *testing.T, nd *node, users []string, rounds int, during func(i int)) map[string][]uint64 {
	t.Helper()
	answered := map[string][]uint64{}
	quoted := make([]string, len(users))
	for i, u := range users {
		quoted[i] = strconv.Quote(u)
	}
	for i := range rounds {
		if during != nil {
			during(i)
		}
		status, b := nd.do(t, http.MethodPost, "/pushNews", fmt.Sprintf(`{"userIds":[%s],"data":{"i":%d}}`, strings.Join(quoted, ","), i))
		if status != http.StatusOK {
			continue // not accepted: nothing is owed
		}
		var r struct{ Results []result }
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		for _, res := range r.Results {
			id, _ := strconv.ParseUint(res.ID, 10, 64)
			answered[res.UserID] = append(answered[res.UserID], id)
		}
		time.Sleep(time.Millisecond)
	}
	return answered
}

// TestClusterNodeFailure: a node dies mid-stream; its users reconnect to another node with
// since and get everything that was answered 200, in order; its presence expires.
func TestClusterNodeFailure(t *testing.T) {
	n := newCluster(t, 3)
	users := []string{"u0", "u1", "u2", "u3"}
	// One follower starts on the victim (n1) and falls back to n2; a witness stays on n2.
	g := startFollowers(t, users, [][]*node{{n[0], n[1]}, {n[1], n[2]}}, 40*time.Second)
	waitOpen(t, n, g.all, users, 2)
	answered := publisher(t, n[2], users, 120, func(i int) {
		if i == 40 {
			n[0].kill()
		}
	})
	for _, u := range users {
		if len(answered[u]) != 120 {
			t.Fatalf("%s: %d of 120 publishes answered", u, len(answered[u]))
		}
	}
	g.donePublishing(answered)
	g.wg.Wait()
	for _, f := range g.all {
		f.check(t, answered[f.user])
		f.mu.Lock()
		if f.nodes[0] == n[0] && len(f.conns) < 2 {
			t.Errorf("%s never reconnected after its node died", f.user)
		}
		f.mu.Unlock()
	}
	// The dead node's users leave presence within its ttl.
	waitFor(t, "the dead node to leave presence", func() bool {
		var list struct{ Total int }
		n[1].doJSON(t, http.MethodGet, "/clients", "", http.StatusOK, &list)
		online, _ := n[1].broker.Online(context.Background(), "u0")
		return list.Total == 0 && !online
	})
}

// TestClusterPubSubOutage: the Pub/Sub connection of the node holding the subscribers is cut
// several times while another node publishes steadily (Redis drops subscribers the same way
// when it restarts). The node reconnects, catches every connection up from the store, and every
// message answered 200 arrives, in order, on every connection.
func TestClusterPubSubOutage(t *testing.T) {
	n := newCluster(t, 2)
	users := []string{"v0", "v1", "v2"}
	// Two followers per user, only on n1: a reconnect would hide a loss behind since.
	g := startFollowers(t, users, [][]*node{{n[0]}, {n[0]}}, 40*time.Second)
	waitOpen(t, n, g.all, users, 2)
	admin := redistest.Client(t)
	cuts := 0
	answered := publisher(t, n[1], users, 200, func(i int) {
		if i%50 == 25 {
			redisbroker.KillPubSub(t, admin, n[0].prefix+n[0].name)
			cuts++
		}
	})
	g.donePublishing(answered)
	g.wg.Wait()
	for _, f := range g.all {
		f.check(t, answered[f.user])
		f.mu.Lock()
		if len(f.conns) != 1 {
			t.Errorf("%s reconnected %d times: the subscriber must not notice the outage", f.user, len(f.conns)-1)
		}
		f.mu.Unlock()
	}
	if err := n[0].broker.Ping(context.Background()); err != nil {
		t.Fatalf("broker after %d cuts: %v", cuts, err)
	}
}

// TestClusterCatchUpAfterReconnect: a message published while a node's Pub/Sub connection is
// down, with nothing published after it (so no later message reveals the gap), still reaches
// the node's connections: after reconnecting, the node catches them up from the store.
func TestClusterCatchUpAfterReconnect(t *testing.T) {
	n := newCluster(t, 2)
	users := []string{"w0", "w1", "w2", "w3"}
	clients := make([]*client, len(users))
	for i, u := range users {
		clients[i] = n[0].dial(t, u, "")
	}
	waitOpen(t, n, nil, users, 1)
	admin := redistest.Client(t)
	ctx := context.Background()
	for round := uint64(1); round <= 5; round++ {
		redisbroker.KillPubSub(t, admin, n[0].prefix+n[0].name)
		// At once, from the other node: most likely before n1 has subscribed again.
		drafts := make([]module.Draft, len(users))
		for i, u := range users {
			drafts[i] = module.Draft{UserID: u, Data: json.RawMessage(`"during the cut"`), TTL: time.Hour}
		}
		if _, err := n[1].store.Append(ctx, drafts); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			c.expect(round)
		}
	}
}

// TestClusterRedisDown: a node whose Redis is unreachable accepts nothing (503), says so on
// /healthz, and refuses subscribers before the upgrade.
func TestClusterRedisDown(t *testing.T) {
	redistest.Client(t) // fail or skip like every Redis test
	nd := newNode(t, "down:", "n1", "127.0.0.1:1", false)
	if status, b := nd.do(t, http.MethodPost, "/pushNews", `{"userId":"u","data":1}`); status != http.StatusServiceUnavailable {
		t.Fatalf("publish = %d %s, want 503", status, b)
	}
	status, b := nd.do(t, http.MethodGet, "/healthz", "")
	var h map[string]string
	_ = json.Unmarshal(b, &h)
	if status != http.StatusServiceUnavailable || h["store"] == "ok" || h["broker"] == "ok" {
		t.Fatalf("healthz = %d %s", status, b)
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(nd, "u", ""), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("subscribe without Redis: %v, %v", err, resp)
	}
}

// BenchmarkCrossNodeDelivery measures publish-to-receive latency across nodes: a subscriber on
// n1, POST /pushNews on n2, time until the frame is read. Reports p50 and p99.
func BenchmarkCrossNodeDelivery(b *testing.B) {
	n := newCluster(b, 2)
	c := n[0].dial(b, "bench", "")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		n[1].publish(b, fmt.Sprintf(`{"userId":"bench","data":%d}`, i))
		c.next()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkCrossNodeThroughput: 16 concurrent publishers on n2, each to its own subscriber on
// n1, so every message crosses nodes. Reports delivered messages per second.
func BenchmarkCrossNodeThroughput(b *testing.B) {
	n := newCluster(b, 2)
	const pubs = 16
	clients := make([]*client, pubs)
	for i := range clients {
		clients[i] = n[0].dial(b, fmt.Sprintf("t%d", i), "")
	}
	per := max(b.N/pubs, 1)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range pubs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range per {
				body := fmt.Sprintf(`{"userId":"t%d","data":%d}`, i, j)
				resp, err := n[1].http.Post(n[1].srv.URL+"/pushNews", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			c := clients[i]
			for range per {
				_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
				if _, _, err := c.conn.ReadMessage(); err != nil {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d publishes or reads failed", failed.Load())
	}
	b.ReportMetric(float64(per*pubs)/time.Since(start).Seconds(), "msgs/s")
}
