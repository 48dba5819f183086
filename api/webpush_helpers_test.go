package api_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pushlane/api/server"
	"pushlane/api/webpush/webpushtest"
	"pushlane/config"
	"pushlane/internal/vapidkey"
	"pushlane/module/store/redis/redistest"
	"pushlane/module/webpush"
)

// The Web Push tests run real nodes (server.New, as main builds them) behind real listeners,
// with a push service of their own on 127.0.0.1 over TLS (webpushtest: it decrypts every push
// and verifies its VAPID token), and a clock they move by hand: a push comes due only when the
// test says so, so no test waits for time to pass.

const (
	wpSubject = "mailto:ops@example.com"
	wpDelay   = time.Hour // webpush.delay of the tests: nothing is due until the clock moves
)

// wpClock is the nodes' Web Push clock: real time plus an offset the test advances.
type wpClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *wpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *wpClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// wpWorld is one push service, one VAPID pair and one clock, shared by the nodes of a test.
type wpWorld struct {
	t        *testing.T
	pair     vapidkey.Pair
	svc      *webpushtest.Service
	clock    *wpClock
	roots    *x509.CertPool
	resolver webpush.Resolver // nil: the system's
}

func newWPWorld(t *testing.T) *wpWorld {
	t.Helper()
	pair, err := vapidkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	w := &wpWorld{t: t, pair: pair, clock: &wpClock{}}
	w.svc = webpushtest.New(t, webpushtest.Options{VAPIDPublicKey: pair.Public, Subject: wpSubject, TLS: true, Now: w.clock.Now})
	w.roots = x509.NewCertPool()
	w.roots.AddCert(w.svc.Server().Certificate())
	return w
}

// wpNode is one node with Web Push on.
type wpNode struct {
	t     *testing.T
	url   string
	node  *server.Node
	close func()
}

// node starts a node whose config is the Web Push defaults of the tests changed by mutate.
func (w *wpWorld) node(mutate func(*config.Config)) *wpNode {
	t := w.t
	t.Helper()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	cfg.WebPush = config.WebPush{Enabled: true, VAPIDPublicKey: w.pair.Public, VAPIDPrivateKey: w.pair.Private,
		Subject: wpSubject, Delay: wpDelay, MaxPerUser: 10, AllowedEndpointOrigins: []string{w.svc.URL()}}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := server.New(cfg, slog.New(slog.DiscardHandler), server.WithWebPush(server.WebPushTuning{
		Now: w.clock.Now, PollInterval: 5 * time.Millisecond, MinBackoff: time.Second, MaxBackoff: 10 * time.Second,
		RootCAs: w.roots, Resolver: w.resolver}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	var once sync.Once
	node := &wpNode{t: t, url: srv.URL, node: n}
	node.close = func() {
		once.Do(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
	}
	t.Cleanup(node.close)
	return node
}

// redisCluster is the mutation for a node of a redis cluster under prefix.
func redisCluster(prefix string) func(*config.Config) {
	return func(c *config.Config) {
		c.Store.Driver, c.Broker.Driver = "redis", "redis"
		c.Redis.Addr, c.Redis.KeyPrefix = redistest.Addr(), prefix
	}
}

// driverNode starts a node on the given store driver.
func (w *wpWorld) driverNode(driver string) *wpNode {
	w.t.Helper()
	switch driver {
	case "redis":
		rdb := redistest.Client(w.t)
		prefix := redistest.Prefix(w.t, rdb)
		return w.node(func(c *config.Config) {
			c.Store.Driver, c.Redis.Addr, c.Redis.KeyPrefix = "redis", redistest.Addr(), prefix
		})
	default:
		return w.node(func(c *config.Config) { c.Store.Driver = driver })
	}
}

// do sends one request and returns the status and body.
func (n *wpNode) do(method, path string, h http.Header, body string) (int, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// register registers b for user and returns the status and the id.
func (n *wpNode) register(user string, b *webpushtest.Browser) (int, string) {
	n.t.Helper()
	status, body := n.do(http.MethodPost, "/webpush/subscriptions?userId="+user, nil, b.SubscriptionJSON())
	var out struct{ ID string }
	_ = json.Unmarshal(body, &out)
	if (status == http.StatusCreated || status == http.StatusOK) && out.ID == "" {
		n.t.Fatalf("register: %d %s without an id", status, body)
	}
	return status, out.ID
}

// mustRegister registers b for user and expects 201.
func (n *wpNode) mustRegister(user string, b *webpushtest.Browser) string {
	n.t.Helper()
	status, id := n.register(user, b)
	if status != http.StatusCreated {
		n.t.Fatalf("register %s for %s: %d, want 201", b.Name, user, status)
	}
	return id
}

// publish stores data for user (ttl "" = the default) and returns the message id.
func (n *wpNode) publish(user, data, ttl string) string {
	n.t.Helper()
	body := fmt.Sprintf(`{"userId":%q,"data":%s}`, user, data)
	if ttl != "" {
		body = fmt.Sprintf(`{"userId":%q,"data":%s,"ttl":%q}`, user, data, ttl)
	}
	status, b := n.do(http.MethodPost, "/pushNews", nil, body)
	var out struct{ Results []struct{ ID string } }
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 {
		n.t.Fatalf("publish: %d %s", status, b)
	}
	return out.Results[0].ID
}

// status reads GET /messages/user/id.
func (n *wpNode) status(user, id string) map[string]any {
	n.t.Helper()
	status, b := n.do(http.MethodGet, "/messages/"+user+"/"+id, nil, "")
	var out map[string]any
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil {
		n.t.Fatalf("status of %s/%s: %d %s", user, id, status, b)
	}
	return out
}

// due counts the due pushes in the node's store.
func (n *wpNode) due() int {
	n.t.Helper()
	c, err := n.node.WebPush().Due(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// metric reads one sample of /metrics, "name{labels}" as the text format writes it; 0 when absent.
func (n *wpNode) metric(sample string) float64 {
	n.t.Helper()
	status, b := n.do(http.MethodGet, "/metrics", nil, "")
	if status != http.StatusOK {
		n.t.Fatalf("GET /metrics: %d", status)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				n.t.Fatalf("metric %s: %q", sample, rest)
			}
			return v
		}
	}
	return 0
}

// waitMetric waits until the sample reaches want.
func (n *wpNode) waitMetric(sample string, want float64) {
	n.t.Helper()
	waitFor(n.t, 20*time.Second, fmt.Sprintf("%s = %v", sample, want), func() bool { return n.metric(sample) >= want })
}

// waitNoDue waits until the store holds no due push: everything due was sent, dropped or
// removed, and nothing can be sent any more.
func (n *wpNode) waitNoDue() {
	n.t.Helper()
	waitFor(n.t, 20*time.Second, "no due pushes", func() bool { return n.due() == 0 })
}

// frame is a stored message's WebSocket frame, built from GET /messages/user/id.
func (n *wpNode) frame(user, id string) string {
	n.t.Helper()
	status, b := n.do(http.MethodGet, "/messages/"+user+"/"+id, nil, "")
	var m struct {
		ID, UserID, CreatedAt string
		Data                  json.RawMessage
	}
	if status != http.StatusOK || json.Unmarshal(b, &m) != nil {
		n.t.Fatalf("status of %s/%s: %d %s", user, id, status, b)
	}
	return fmt.Sprintf(`{"id":%q,"userId":%q,"data":%s,"createdAt":%q}`, m.ID, m.UserID, m.Data, m.CreatedAt)
}

// checkPush fails the test when the push service found the request malformed.
func checkPush(t *testing.T, p webpushtest.Push) {
	t.Helper()
	if len(p.Problems) > 0 {
		t.Fatalf("push to %s is not what a push service accepts: %v", p.Browser, p.Problems)
	}
}

// signToken is an HS256 token for user, valid for an hour.
func signToken(t *testing.T, secret, user string) string {
	t.Helper()
	return token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
}
