package api_test

// The OpenAPI document (docs/openapi.yaml) against the real server: every case sends a real
// request to a real node and validates the answer (status, headers, body schema) with
// kin-openapi's openapi3filter; then every route and every documented status must have been
// provoked or be listed in notProvoked with the reason. So the document cannot drift from the code.

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"pushlane/api/server"
	"pushlane/config"
	"pushlane/docs"
	"pushlane/internal/vapidkey"
)

// notProvoked lists documented statuses this test cannot provoke on one node, with why.
var notProvoked = map[string]string{
	"GET /getPushNews 503":  "only while the server shuts down (TestDrainingRefusesSubscribers, TestProcessSIGTERMDrains)",
	"POST /broadcast 503":   "only with the redis broker cut off from Redis (module/broker/redis tests)",
	"GET /clients 503":      "only with the redis broker cut off from Redis (module/broker/redis tests)",
	"GET /echo 429":         "as GET /getPushNews 429 (websocket.maxConns), covered by api/demo tests",
	"GET /chat 429":         "as GET /getPushNews 429 (websocket.maxConns), covered by api/demo tests",
	"GET /tail 429":         "as GET /getPushNews 429 (websocket.maxConns), covered by api/demo tests",
	"POST /pushNews 409":    "needs a request held in the middle of processing under the same key (Idempotency tests of the store and harden branches)",
	"GET /clients/{id} 503": "the memory of who is online never fails on one node; the store is read only for pending",
}

const (
	apiKey    = "openapi-test-key"
	jwtSecret = "openapi-test-secret-0123456789abcdef"
	origin    = "https://app.example.com"
)

// oaNode is one real node for the document test.
type oaNode struct {
	url  string
	node *server.Node
}

func startNode(t *testing.T, tune func(*config.Config)) *oaNode {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	if tune != nil {
		tune(&cfg)
	}
	n, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return &oaNode{url: srv.URL, node: n}
}

// oaCase is one request and the status it must get.
type oaCase struct {
	name   string
	node   *oaNode
	method string
	path   string // with the query
	header http.Header
	body   string
	ws     bool // dial a WebSocket
	want   int
	before func(t *testing.T)
}

func TestOpenAPIDocumentMatchesTheServer(t *testing.T) {
	ctx := t.Context()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatal("docs/openapi.yaml is not OpenAPI 3.1")
	}

	open := startNode(t, nil)
	keyed := startNode(t, func(c *config.Config) {
		c.Auth.APIKeys = []string{apiKey}
		c.Auth.JWTSecret = jwtSecret
		c.WebSocket.AllowedOrigins = []string{origin}
		c.WebSocket.MaxMessageBytes = 512
		c.WebSocket.MaxConnsPerUser = 1
		c.Tail.Files = []string{filepath.Join(t.TempDir(), "app.log")}
		c.Demo.Enabled = true
	})
	demos := startNode(t, func(c *config.Config) { c.Demo.Enabled = true })
	limited := startNode(t, func(c *config.Config) {
		c.Limits.PublishRate = 0.001
		c.Limits.PublishBurst = 1
	})
	broken := startNode(t, nil) // its store is closed below: store errors are 503
	if err := broken.node.Store().Close(); err != nil {
		t.Fatal(err)
	}
	// Web Push: on, with a push service origin that needs no DNS; keyed: with a token and origins.
	pair, err := vapidkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	const pushOrigin = "https://push.example.test"
	pushOn := func(c *config.Config) {
		c.WebPush = config.WebPush{Enabled: true, VAPIDPublicKey: pair.Public, VAPIDPrivateKey: pair.Private,
			Subject: "mailto:ops@example.com", Delay: time.Hour, MaxPerUser: 10, AllowedEndpointOrigins: []string{pushOrigin}}
	}
	push := startNode(t, pushOn)
	pushKeyed := startNode(t, func(c *config.Config) {
		pushOn(c)
		c.Auth.JWTSecret = jwtSecret
		c.WebSocket.AllowedOrigins = []string{origin}
	})
	pushBroken := startNode(t, pushOn)
	if err := pushBroken.node.Store().Close(); err != nil {
		t.Fatal(err)
	}
	subscription := func(name string) string {
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return `{"endpoint":"` + pushOrigin + `/push/` + name + `","keys":{"p256dh":"` +
			base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()) + `","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}`
	}
	again := subscription("again")
	var subID string
	registerOne := func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, push.url+"/webpush/subscriptions?userId=oa-push", strings.NewReader(subscription("deleted")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %d %v", resp.StatusCode, err)
		}
		subID = out.ID
	}

	key := http.Header{"Authorization": {"Bearer " + apiKey}}
	tok := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Stored messages and live connections for the cases below.
	var stored string
	storeOne := func(t *testing.T) {
		res, err := open.node.Service().Publish(ctx, []string{"oa-user"}, []byte(`{"n":1}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		stored = strconv.FormatUint(res[0].ID, 10)
	}
	var holdMu sync.Mutex
	var held []*websocket.Conn
	hold := func(n *oaNode, query string) func(t *testing.T) {
		return func(t *testing.T) {
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(n.url)+"/getPushNews?"+query, nil)
			if err != nil {
				t.Fatalf("hold a connection: %v", err)
			}
			holdMu.Lock()
			held = append(held, ws)
			holdMu.Unlock()
			user := strings.TrimPrefix(strings.Split(query, "&")[0], "userId=")
			waitFor(t, 10*time.Second, "the held connection", func() bool { return n.node.Hub().Count(user) >= 1 })
		}
	}
	t.Cleanup(func() {
		for _, ws := range held {
			ws.Close()
		}
	})
	pub := `{"userId":"oa-user","data":{"title":"hi"}}`
	cases := []oaCase{
		// subscribe
		{name: "subscribe", node: open, method: "GET", path: "/getPushNews?userId=oa-sub&since=0", ws: true, want: 101},
		{name: "subscribe v=2", node: open, method: "GET", path: "/getPushNews?userId=oa-sub&v=2&since=0", ws: true, want: 101},
		{name: "subscribe bad userId", node: open, method: "GET", path: "/getPushNews?userId=a%20b", ws: true, want: 400},
		{name: "subscribe bad since", node: open, method: "GET", path: "/getPushNews?userId=oa&since=007", ws: true, want: 400},
		{name: "subscribe not a WebSocket", node: open, method: "GET", path: "/getPushNews?userId=oa", want: 400},
		{name: "subscribe no token", node: keyed, method: "GET", path: "/getPushNews?userId=oa", ws: true, want: 401},
		{name: "subscribe foreign origin", node: keyed, method: "GET", path: "/getPushNews?userId=oa&token=" + tok("oa"), header: http.Header{"Origin": {"https://evil.example"}}, ws: true, want: 403},
		{name: "subscribe over maxConnsPerUser", node: keyed, method: "GET", path: "/getPushNews?userId=oa-full&token=" + tok("oa-full"), ws: true, want: 429, before: hold(keyed, "userId=oa-full&token="+tok("oa-full"))},
		{name: "subscribe SSE", node: open, method: "GET", path: "/getPushNews?userId=oa-sse", header: http.Header{"Accept": {"text/event-stream"}}, want: 200},
		// publish
		{name: "publish", node: open, method: "POST", path: "/pushNews", body: pub, want: 200},
		{name: "publish many with ttl", node: open, method: "POST", path: "/pushNews", body: `{"userIds":["a","b"],"data":[1],"ttl":"1h"}`, want: 200},
		{name: "publish with key", node: keyed, method: "POST", path: "/pushNews", header: key, body: pub, want: 200},
		{name: "publish replayed", node: open, method: "POST", path: "/pushNews", header: http.Header{"Idempotency-Key": {"oa-replay"}}, body: pub, want: 200,
			before: func(t *testing.T) {
				send(t, open, "POST", "/pushNews", http.Header{"Idempotency-Key": {"oa-replay"}}, pub)
			}},
		{name: "publish key reused with another body", node: open, method: "POST", path: "/pushNews", header: http.Header{"Idempotency-Key": {"oa-422"}}, body: `{"userId":"oa-user","data":"other"}`, want: 422,
			before: func(t *testing.T) {
				send(t, open, "POST", "/pushNews", http.Header{"Idempotency-Key": {"oa-422"}}, pub)
			}},
		{name: "publish malformed", node: open, method: "POST", path: "/pushNews", body: `{"userId":"oa-user"}`, want: 400},
		{name: "publish no key", node: keyed, method: "POST", path: "/pushNews", body: pub, want: 401},
		{name: "publish cross-site", node: open, method: "POST", path: "/pushNews", header: http.Header{"Origin": {"https://evil.example"}}, body: pub, want: 403},
		{name: "publish too large", node: keyed, method: "POST", path: "/pushNews", header: key, body: `{"userId":"oa","data":"` + strings.Repeat("x", 600) + `"}`, want: 413},
		{name: "publish over the rate", node: limited, method: "POST", path: "/pushNews", body: pub, want: 429, before: func(t *testing.T) { send(t, limited, "POST", "/pushNews", nil, pub) }},
		{name: "publish with the store down", node: broken, method: "POST", path: "/pushNews", body: pub, want: 503},
		// broadcast
		{name: "broadcast", node: open, method: "POST", path: "/broadcast", body: `{"data":"all"}`, want: 200},
		{name: "broadcast malformed", node: open, method: "POST", path: "/broadcast", body: `{"data":"all","ttl":"1h"}`, want: 400},
		{name: "broadcast no key", node: keyed, method: "POST", path: "/broadcast", body: `{"data":1}`, want: 401},
		{name: "broadcast cross-site", node: open, method: "POST", path: "/broadcast", header: http.Header{"Origin": {"https://evil.example"}}, body: `{"data":1}`, want: 403},
		{name: "broadcast too large", node: keyed, method: "POST", path: "/broadcast", header: key, body: `{"data":"` + strings.Repeat("x", 600) + `"}`, want: 413},
		{name: "broadcast over the rate", node: limited, method: "POST", path: "/broadcast", body: `{"data":1}`, want: 429},
		// operate
		{name: "kick", node: open, method: "DELETE", path: "/deleteClient/oa-kick?purge=true", want: 200, before: hold(open, "userId=oa-kick")},
		{name: "kick bad id", node: open, method: "DELETE", path: "/deleteClient/a%20b", want: 400},
		{name: "kick no key", node: keyed, method: "DELETE", path: "/deleteClient/oa", want: 401},
		{name: "kick cross-site", node: open, method: "DELETE", path: "/deleteClient/oa-kick", header: http.Header{"Origin": {"https://evil.example"}}, want: 403},
		{name: "kick nobody", node: open, method: "DELETE", path: "/deleteClient/nobody", want: 404},
		{name: "clients", node: open, method: "GET", path: "/clients?limit=5&offset=0", want: 200, before: hold(open, "userId=oa-online")},
		{name: "clients bad limit", node: open, method: "GET", path: "/clients?limit=-1", want: 400},
		{name: "clients no key", node: keyed, method: "GET", path: "/clients", want: 401},
		{name: "client", node: open, method: "GET", path: "/clients/oa-online", want: 200},
		{name: "client bad id", node: open, method: "GET", path: "/clients/a%20b", want: 400},
		{name: "client no key", node: keyed, method: "GET", path: "/clients/oa", want: 401},
		{name: "client unknown", node: open, method: "GET", path: "/clients/nobody", want: 404},
		{name: "kick with the store down", node: broken, method: "DELETE", path: "/deleteClient/oa?purge=true", want: 503},
		// message status
		{name: "message status", node: open, method: "GET", path: "/messages/oa-user/{stored}", want: 200, before: storeOne},
		{name: "message status bad id", node: open, method: "GET", path: "/messages/oa-user/0", want: 400},
		{name: "message status no key", node: keyed, method: "GET", path: "/messages/oa-user/1", want: 401},
		{name: "message status unknown", node: open, method: "GET", path: "/messages/oa-user/999999", want: 404},
		{name: "message status store down", node: broken, method: "GET", path: "/messages/oa-user/1", want: 503},
		{name: "messages", node: open, method: "GET", path: "/messages/oa-user?since=0&limit=10", want: 200, before: storeOne},
		{name: "messages bad limit", node: open, method: "GET", path: "/messages/oa-user?limit=x", want: 400},
		{name: "messages no key", node: keyed, method: "GET", path: "/messages/oa-user", want: 401},
		{name: "messages store down", node: broken, method: "GET", path: "/messages/oa-user", want: 503},
		// health, metrics, documents, pages
		{name: "health", node: open, method: "GET", path: "/healthz", want: 200},
		{name: "health with the store down", node: broken, method: "GET", path: "/healthz", want: 503},
		{name: "health HEAD", node: open, method: "HEAD", path: "/healthz", want: 200},
		{name: "health HEAD store down", node: broken, method: "HEAD", path: "/healthz", want: 503},
		{name: "metrics", node: open, method: "GET", path: "/metrics", want: 200},
		{name: "openapi", node: open, method: "GET", path: "/openapi.yaml", want: 200},
		{name: "console", node: open, method: "GET", path: "/", want: 200},
		{name: "browser client", node: open, method: "GET", path: "/pushlane.js", want: 200},
		// web push
		{name: "service worker", node: open, method: "GET", path: "/pushlane-sw.js", want: 200},
		{name: "vapid key off", node: open, method: "GET", path: "/webpush/vapidPublicKey", want: 404},
		{name: "vapid key", node: push, method: "GET", path: "/webpush/vapidPublicKey", want: 200},
		{name: "push subscribe", node: push, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: subscription("new"), want: 201},
		{name: "push subscribe again", node: push, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: again, want: 200,
			before: func(t *testing.T) { send(t, push, "POST", "/webpush/subscriptions?userId=oa-push", nil, again) }},
		{name: "push subscribe private endpoint", node: push, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: strings.Replace(subscription("x"), pushOrigin, "https://127.0.0.1:6379", 1), want: 400},
		{name: "push subscribe no token", node: pushKeyed, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: subscription("x"), want: 401},
		{name: "push subscribe cross-site", node: pushKeyed, method: "POST", path: "/webpush/subscriptions?userId=oa-push&token=" + tok("oa-push"), header: http.Header{"Origin": {"https://evil.example"}}, body: subscription("x"), want: 403},
		{name: "push subscribe off", node: open, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: subscription("x"), want: 404},
		{name: "push subscribe store down", node: pushBroken, method: "POST", path: "/webpush/subscriptions?userId=oa-push", body: subscription("x"), want: 503},
		{name: "push subscriptions", node: push, method: "GET", path: "/webpush/subscriptions?userId=oa-push", want: 200},
		{name: "push subscriptions bad userId", node: push, method: "GET", path: "/webpush/subscriptions?userId=a%20b", want: 400},
		{name: "push subscriptions no token", node: pushKeyed, method: "GET", path: "/webpush/subscriptions?userId=oa-push", want: 401},
		{name: "push subscriptions foreign origin", node: pushKeyed, method: "GET", path: "/webpush/subscriptions?userId=oa-push&token=" + tok("oa-push"), header: http.Header{"Origin": {"https://evil.example"}}, want: 403},
		{name: "push subscriptions off", node: open, method: "GET", path: "/webpush/subscriptions?userId=oa-push", want: 404},
		{name: "push subscriptions store down", node: pushBroken, method: "GET", path: "/webpush/subscriptions?userId=oa-push", want: 503},
		{name: "push unsubscribe", node: push, method: "DELETE", path: "/webpush/subscriptions/{subscription}?userId=oa-push", want: 204, before: registerOne},
		{name: "push unsubscribe bad userId", node: push, method: "DELETE", path: "/webpush/subscriptions/x?userId=a%20b", want: 400},
		{name: "push unsubscribe no token", node: pushKeyed, method: "DELETE", path: "/webpush/subscriptions/x?userId=oa-push", want: 401},
		{name: "push unsubscribe cross-site", node: pushKeyed, method: "DELETE", path: "/webpush/subscriptions/x?userId=oa-push&token=" + tok("oa-push"), header: http.Header{"Origin": {"https://evil.example"}}, want: 403},
		{name: "push unsubscribe unknown", node: push, method: "DELETE", path: "/webpush/subscriptions/nope?userId=oa-push", want: 404},
		{name: "push unsubscribe store down", node: pushBroken, method: "DELETE", path: "/webpush/subscriptions/x?userId=oa-push", want: 503},
		// demos
		{name: "echo", node: demos, method: "GET", path: "/echo", ws: true, want: 101},
		{name: "echo not a WebSocket", node: demos, method: "GET", path: "/echo", want: 400},
		{name: "echo no key", node: keyed, method: "GET", path: "/echo", ws: true, want: 401},
		{name: "echo foreign origin", node: keyed, method: "GET", path: "/echo", header: http.Header{"Origin": {"https://evil.example"}, "Authorization": key["Authorization"]}, ws: true, want: 403},
		{name: "echo off", node: open, method: "GET", path: "/echo", ws: true, want: 404},
		{name: "chat", node: demos, method: "GET", path: "/chat", ws: true, want: 101},
		{name: "chat not a WebSocket", node: demos, method: "GET", path: "/chat", want: 400},
		{name: "chat no key", node: keyed, method: "GET", path: "/chat", ws: true, want: 401},
		{name: "chat foreign origin", node: keyed, method: "GET", path: "/chat", header: http.Header{"Origin": {"https://evil.example"}, "Authorization": key["Authorization"]}, ws: true, want: 403},
		{name: "chat off", node: open, method: "GET", path: "/chat", ws: true, want: 404},
		{name: "tail", node: keyed, method: "GET", path: "/tail?file=app.log", header: key, ws: true, want: 101},
		{name: "tail bad name", node: keyed, method: "GET", path: "/tail?file=..%2Fapp.log", header: key, ws: true, want: 400},
		{name: "tail no key", node: keyed, method: "GET", path: "/tail?file=app.log", ws: true, want: 401},
		{name: "tail unlisted", node: keyed, method: "GET", path: "/tail?file=other.log", header: key, ws: true, want: 403},
		{name: "tail off", node: open, method: "GET", path: "/tail?file=app.log", ws: true, want: 404},
	}

	var mu sync.Mutex
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(t)
			}
			path := strings.ReplaceAll(strings.ReplaceAll(tc.path, "{stored}", stored), "{subscription}", subID)
			resp, body := do(t, tc, path)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: status %d, want %d; body %.300s", tc.method, path, resp.StatusCode, tc.want, body)
			}
			route := validate(t, doc, tc, path, resp, body)
			mu.Lock()
			covered[route+" "+strconv.Itoa(resp.StatusCode)] = true
			mu.Unlock()
		})
	}

	// Every route, every documented status: provoked or explained.
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				k := method + " " + path + " " + status
				if covered[k] || notProvoked[k] != "" {
					continue
				}
				missing = append(missing, k)
			}
		}
	}
	for k := range notProvoked {
		if covered[k] {
			t.Errorf("%q is provoked now: delete it from notProvoked", k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented but neither provoked nor explained (add a case, or a reason to notProvoked):\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("%d route-status pairs provoked and validated", len(covered))
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") }

// send makes one request whose answer does not matter (setting the stage).
func send(t *testing.T, n *oaNode, method, path string, h http.Header, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, n.url+path, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// do sends the case's request (a WebSocket handshake for ws) and returns the response with its
// body (empty for 101 and for an event stream, which does not end).
func do(t *testing.T, tc oaCase, path string) (*http.Response, []byte) {
	t.Helper()
	if tc.ws {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(tc.node.url)+path, tc.header)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	req, err := http.NewRequest(tc.method, tc.node.url+path, strings.NewReader(tc.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range tc.header {
		req.Header[k] = v
	}
	if tc.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// validate checks the response against the document and returns "METHOD /template".
func validate(t *testing.T, doc *openapi3.T, tc oaCase, path string, resp *http.Response, body []byte) string {
	t.Helper()
	d := *doc
	d.Servers = openapi3.Servers{{URL: tc.node.url}}
	router, err := gorillamux.NewRouter(&d)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(tc.method, tc.node.url+path, nil)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in docs/openapi.yaml: %v", tc.method, path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		in.Options.ExcludeResponseBody = true
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not match docs/openapi.yaml: %v\nbody: %.500s", tc.method, path, resp.StatusCode, err, body)
	}
	if tc.method == http.MethodHead && resp.StatusCode != tc.want {
		t.Errorf("HEAD status %d", resp.StatusCode)
	}
	if path == "/openapi.yaml" && !bytes.Equal(body, docs.OpenAPI) {
		t.Error("GET /openapi.yaml does not serve docs/openapi.yaml")
	}
	return tc.method + " " + route.Path
}

// waitFor polls cond until it holds, or fails the test naming what it waited for.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
