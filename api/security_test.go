package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"pushlane/api/server"
	"pushlane/config"
)

const (
	secKey    = "publisher-key-1"
	secSecret = "a-long-enough-jwt-secret-for-tests"
)

// secNode is one pushlane node on a real listener with a real SQLite file, configured by mutate,
// built by server.New as the binary builds it.
type secNode struct {
	srv  *httptest.Server
	node *server.Node
}

func newSecNode(t *testing.T, mutate func(*config.Config)) *secNode {
	t.Helper()
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(t.TempDir(), "push.db")
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	})
	return &secNode{srv: srv, node: a}
}

func (n *secNode) wsURL(q url.Values) string {
	return "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/getPushNews?" + q.Encode()
}

// dial opens a subscription and returns the connection, or the HTTP status of the refusal.
func (n *secNode) dial(t *testing.T, q url.Values, header http.Header) (*websocket.Conn, int) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(n.wsURL(q), header)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Fatalf("refusal %d has no JSON error body: %q", resp.StatusCode, body)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { conn.Close() })
	return conn, http.StatusSwitchingProtocols
}

func (n *secNode) do(t *testing.T, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := n.send(t, method, path, key, body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if status >= 400 {
		if s, _ := out["error"].(string); s == "" {
			t.Fatalf("%s %s -> %d without a JSON error", method, path, status)
		}
	}
	return status, out
}

// send is do without looking at the answer: the status and the raw body.
func (n *secNode) send(t *testing.T, method, path, key string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.srv.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

func token(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPIKeysGuardPublishAndOpsRoutes(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) { c.Auth.APIKeys = []string{"other-key-0", secKey} })
	pub := map[string]any{"userId": "u1", "data": 1}
	cases := []struct {
		method, path string
		body         any
	}{
		{"POST", "/pushNews", pub},
		{"POST", "/broadcast", map[string]any{"data": 1}},
		{"DELETE", "/deleteClient/u1", nil},
		{"GET", "/clients", nil},
		{"GET", "/clients/u1", nil},
	}
	for _, tc := range cases {
		for _, key := range []string{"", "wrong", secKey + "x", strings.ToUpper(secKey)} {
			if st, _ := n.do(t, tc.method, tc.path, key, tc.body); st != http.StatusUnauthorized {
				t.Errorf("%s %s with key %q: status %d, want 401", tc.method, tc.path, key, st)
			}
		}
		if st, _ := n.do(t, tc.method, tc.path, secKey, tc.body); st == http.StatusUnauthorized {
			t.Errorf("%s %s with the right key: 401", tc.method, tc.path)
		}
	}
	// Nothing was stored by the refused publishes: only the one accepted publish is pending.
	conn, st := n.dial(t, url.Values{"userId": {"u1"}, "since": {"0"}}, nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("subscribe: %d", st)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var f struct{ ID string }
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if err := conn.ReadJSON(&f); err == nil {
		t.Fatalf("a refused publish was stored: got a second message %v", f)
	}
	// Health stays open for probes.
	if st, _ := n.do(t, "GET", "/healthz", "", nil); st != http.StatusOK {
		t.Errorf("healthz: %d", st)
	}
}

func TestSubscriberTokens(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) { c.Auth.JWTSecret = secSecret })
	secret := []byte(secSecret)
	future := time.Now().Add(time.Hour).Unix()
	good := token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": future})
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": future}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// Same claims and secret, another HMAC algorithm.
	hs512 := token(t, jwt.SigningMethodHS512, secret, jwt.MapClaims{"sub": "alice", "exp": future})
	// alg header says HS256 but the signature is of another key.
	wrongKey := token(t, jwt.SigningMethodHS256, []byte("another-secret-of-enough-length"), jwt.MapClaims{"sub": "alice", "exp": future})
	refused := map[string]string{
		"missing":       "",
		"garbage":       "not.a.jwt",
		"expired":       token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}),
		"no exp":        token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice"}),
		"wrong sub":     token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "bob", "exp": future}),
		"no sub":        token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": future}),
		"alg none":      noneTok,
		"alg HS512":     hs512,
		"wrong key":     wrongKey,
		"tampered":      tamper(good),
		"huge":          strings.Repeat("a", 20000),
		"exp string":    token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": "tomorrow"}),
		"nbf in future": token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": future, "nbf": future - 60}),
	}
	for name, tok := range refused {
		q := url.Values{"userId": {"alice"}}
		if tok != "" {
			q.Set("token", tok)
		}
		if _, st := n.dial(t, q, nil); st != http.StatusUnauthorized {
			t.Errorf("%s token: status %d, want 401", name, st)
		}
	}
	if _, st := n.dial(t, url.Values{"userId": {"alice"}, "token": {good}}, nil); st != http.StatusSwitchingProtocols {
		t.Fatalf("good token refused: %d", st)
	}
}

func TestExpiringTokenClosesWith1008(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) {
		c.Auth.JWTSecret = secSecret
		c.WebSocket.PingInterval = 200 * time.Millisecond
		c.WebSocket.PongWait = time.Second
	})
	exp := time.Now().Add(1500 * time.Millisecond)
	tok := token(t, jwt.SigningMethodHS256, []byte(secSecret), jwt.MapClaims{"sub": "carol", "exp": exp.Unix()})
	conn, st := n.dial(t, url.Values{"userId": {"carol"}, "token": {tok}}, nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("subscribe: %d", st)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want a close frame, got %v", err)
		}
		if ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want 1008", ce.Code)
		}
		// exp has one-second resolution; the close comes within pingInterval after it.
		expSecond := time.Unix(exp.Unix(), 0)
		if late := time.Since(expSecond); late > 200*time.Millisecond+300*time.Millisecond {
			t.Fatalf("closed %s after exp, want within pingInterval", late)
		}
		return
	}
}

func TestOrigins(t *testing.T) {
	plain := newSecNode(t, nil)
	host := strings.TrimPrefix(plain.srv.URL, "http://")
	hostOnly, port, _ := strings.Cut(host, ":")
	cases := []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},                                                 // not a browser
		{"http://" + host, http.StatusSwitchingProtocols},                                   // same host
		{"HTTP://" + strings.ToUpper(hostOnly) + ":" + port, http.StatusSwitchingProtocols}, // case-insensitive
		{"http://evil.example", http.StatusForbidden},
		{"http://" + hostOnly, http.StatusForbidden}, // port 80 is not the listener's port
		{"null", http.StatusForbidden},
		{"https://" + host + ".evil.example", http.StatusForbidden},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if _, st := plain.dial(t, url.Values{"userId": {"o1"}}, h); st != tc.want {
			t.Errorf("origin %q: status %d, want %d", tc.origin, st, tc.want)
		}
	}

	listed := newSecNode(t, func(c *config.Config) {
		c.WebSocket.AllowedOrigins = []string{"https://app.example.com", "http://localhost:3000"}
	})
	for origin, want := range map[string]int{
		"https://app.example.com":     http.StatusSwitchingProtocols,
		"https://APP.example.com:443": http.StatusSwitchingProtocols, // default port of https
		"http://localhost:3000":       http.StatusSwitchingProtocols,
		"http://app.example.com":      http.StatusForbidden, // another scheme
		"http://localhost:3001":       http.StatusForbidden,
	} {
		if _, st := listed.dial(t, url.Values{"userId": {"o2"}}, http.Header{"Origin": {origin}}); st != want {
			t.Errorf("listed, origin %q: status %d, want %d", origin, st, want)
		}
	}

	any := newSecNode(t, func(c *config.Config) { c.WebSocket.AllowedOrigins = []string{"*"} })
	if _, st := any.dial(t, url.Values{"userId": {"o3"}}, http.Header{"Origin": {"http://evil.example"}}); st != http.StatusSwitchingProtocols {
		t.Errorf(`"*" refused a foreign origin: %d`, st)
	}
}

func TestPublishRateLimitPerKey(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) {
		c.Auth.APIKeys = []string{secKey, "second-publisher"}
		c.Limits.PublishRate = 1
		c.Limits.PublishBurst = 5
	})
	body := map[string]any{"userId": "rl", "data": "x"}
	got429 := 0
	for i := 0; i < 8; i++ {
		st, _ := n.do(t, "POST", "/pushNews", secKey, body)
		if st == http.StatusTooManyRequests {
			got429++
		} else if st != http.StatusOK {
			t.Fatalf("publish %d: status %d", i, st)
		}
	}
	if got429 < 2 {
		t.Fatalf("burst 5 at 1/s: %d of 8 refused, want at least 2", got429)
	}
	// Another publisher has its own bucket, and the server stays healthy.
	if st, _ := n.do(t, "POST", "/pushNews", "second-publisher", body); st != http.StatusOK {
		t.Fatalf("second publisher: %d", st)
	}
	if st, _ := n.do(t, "GET", "/healthz", "", nil); st != http.StatusOK {
		t.Fatalf("healthz after rate limiting: %d", st)
	}
}

func TestConnectionLimitsKeepOthersServed(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) {
		c.WebSocket.MaxConnsPerUser = 2
		c.WebSocket.MaxConns = 3
	})
	for i := 0; i < 2; i++ {
		if _, st := n.dial(t, url.Values{"userId": {"lim"}}, nil); st != http.StatusSwitchingProtocols {
			t.Fatalf("conn %d: %d", i, st)
		}
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 30)
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, resp, err := websocket.DefaultDialer.Dial(n.wsURL(url.Values{"userId": {"lim"}}), nil)
			if err == nil {
				conn.Close()
				statuses <- 101
				return
			}
			if resp != nil {
				statuses <- resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusTooManyRequests {
			t.Fatalf("over maxConnsPerUser: %d, want 429", st)
		}
	}
	other, st := n.dial(t, url.Values{"userId": {"someone-else"}}, nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("another user within maxConns: %d", st)
	}
	if _, st := n.dial(t, url.Values{"userId": {"fourth"}}, nil); st != http.StatusTooManyRequests {
		t.Fatalf("over maxConns: %d, want 429", st)
	}
	// The admitted connection is served.
	if code, res := n.do(t, "POST", "/pushNews", "", map[string]any{"userId": "someone-else", "data": "hi"}); code != 200 {
		t.Fatalf("publish: %d %v", code, res)
	}
	_ = other.SetReadDeadline(time.Now().Add(3 * time.Second))
	var f struct{ Data string }
	if err := other.ReadJSON(&f); err != nil || f.Data != "hi" {
		t.Fatalf("admitted connection did not receive: %v %v", f, err)
	}
}

func TestBodyLimitIs413(t *testing.T) {
	n := newSecNode(t, func(c *config.Config) { c.WebSocket.MaxMessageBytes = 1024 })
	big := map[string]any{"userId": "b", "data": strings.Repeat("x", 2048)}
	if st, _ := n.do(t, "POST", "/pushNews", "", big); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("publish over the limit: %d", st)
	}
	if st, _ := n.do(t, "POST", "/broadcast", "", map[string]any{"data": strings.Repeat("y", 2048)}); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("broadcast over the limit: %d", st)
	}
}

func TestTailNeedsTheAPIKey(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(logFile, []byte("first line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := newSecNode(t, func(c *config.Config) {
		c.Auth.APIKeys = []string{secKey}
		c.Tail.Files = []string{logFile}
		c.Demo.Enabled = true
	})
	base := "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/tail?file=app.log"
	if _, resp, err := websocket.DefaultDialer.Dial(base, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tail without key: %v %v", resp, err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(base+"&key=wrong", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tail with a wrong key: %v %v", resp, err)
	}
	for _, dial := range []func() (*websocket.Conn, *http.Response, error){
		func() (*websocket.Conn, *http.Response, error) {
			return websocket.DefaultDialer.Dial(base+"&key="+secKey, nil)
		},
		func() (*websocket.Conn, *http.Response, error) {
			return websocket.DefaultDialer.Dial(base, http.Header{"Authorization": {"Bearer " + secKey}})
		},
	} {
		conn, _, err := dial()
		if err != nil {
			t.Fatalf("tail with the key: %v", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, line, err := conn.ReadMessage()
		conn.Close()
		if err != nil || !strings.Contains(string(line), "first line") {
			t.Fatalf("tail line: %q %v", line, err)
		}
	}
	// The other demos need the key too (API.md "Demonstration routes").
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.srv.URL, "http")+"/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("echo without a key: %v %v, want 401", resp, err)
	}
}

// tamper changes the first character of a JWT's signature. (Changing the last characters can
// leave it valid: the last base64url character of an HS256 signature carries 2 unused bits.)
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.') + 1
	replacement := "A"
	if token[i] == 'A' {
		replacement = "B"
	}
	return token[:i] + replacement + token[i+1:]
}
