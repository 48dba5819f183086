package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"pushlane/config"
)

// crossSite sends what a browser sends for a page on origin: the body with the content type a
// form or a no-preflight fetch may use, and the Origin header.
func (e *env) crossSite(method, path, contentType, origin, body string) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCrossSiteRequestsRefused: on a server without API keys, a web page on another site cannot
// publish, broadcast or disconnect through a visitor's browser: text/plain and form POSTs and a
// DELETE carrying a foreign Origin are 403 and change nothing. Requests without Origin, from the
// server's own origin, or from an allowed one go through.
func TestCrossSiteRequestsRefused(t *testing.T) {
	e := newEnv(t, "memory", nil)
	victim := e.dial("victim", -1)
	e.waitConns("victim", 1)
	before := committed(e)

	const (
		pub   = `{"userId":"victim","data":"from a foreign page"}`
		bcast = `{"data":"from a foreign page"}`
		plain = "text/plain"
		form  = "application/x-www-form-urlencoded"
	)
	for _, origin := range []string{"http://evil.example", "null", "http://" + strings.TrimPrefix(e.srv.URL, "http://") + ".evil.example"} {
		for _, tc := range []struct{ method, path, ctype, body string }{
			{http.MethodPost, "/pushNews", plain, pub},
			{http.MethodPost, "/pushNews", form, pub},
			{http.MethodPost, "/broadcast", plain, bcast},
			{http.MethodPost, "/broadcast", form, bcast},
			{http.MethodDelete, "/deleteClient/victim", "", ""},
			{http.MethodDelete, "/deleteClient/victim?purge=true", form, ""},
		} {
			if got := e.crossSite(tc.method, tc.path, tc.ctype, origin, tc.body); got != http.StatusForbidden {
				t.Errorf("%s %s (%s) from %s: %d, want 403", tc.method, tc.path, tc.ctype, origin, got)
			}
		}
	}
	if got := committed(e); got != before {
		t.Fatalf("a cross-site publish was stored: %d messages committed, %d before", got, before)
	}
	if n := e.hub.Count("victim"); n != 1 {
		t.Fatalf("a cross-site DELETE closed the victim's connection: %d connections", n)
	}

	// The server's own origin and requests without Origin are served; the first frame the victim
	// sees is this publish, so no refused broadcast or publish reached it before.
	self := e.srv.URL
	if got := e.crossSite(http.MethodPost, "/pushNews", "application/json", self, `{"userId":"victim","data":"same origin"}`); got != http.StatusOK {
		t.Fatalf("publish from the server's own origin: %d, want 200", got)
	}
	if f := victim.readMessage(); string(f.fields["data"]) != `"same origin"` {
		t.Fatalf("victim's first frame %s, want the same-origin publish", f.raw)
	}
	if got := e.crossSite(http.MethodPost, "/broadcast", "application/json", "", `{"data":"no origin"}`); got != http.StatusOK {
		t.Fatalf("broadcast without Origin: %d, want 200", got)
	}

	// Listed origins and "*" follow websocket.allowedOrigins.
	listed := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.AllowedOrigins = []string{"https://app.example.com"} })
	if got := listed.crossSite(http.MethodPost, "/pushNews", plain, "https://app.example.com", pub); got != http.StatusOK {
		t.Errorf("publish from a listed origin: %d, want 200", got)
	}
	if got := listed.crossSite(http.MethodPost, "/pushNews", plain, "https://other.example.com", pub); got != http.StatusForbidden {
		t.Errorf("publish from an origin not listed: %d, want 403", got)
	}
	star := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.AllowedOrigins = []string{"*"} })
	if got := star.crossSite(http.MethodPost, "/broadcast", plain, "http://evil.example", bcast); got != http.StatusOK {
		t.Errorf(`broadcast from any origin with "*": %d, want 200`, got)
	}
}

// withHost sends a request whose Host header is host, as a page on a rebinding DNS name would.
func (e *env) withHost(method, path, host string, header http.Header, body string) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDNSRebindingGuard: a server on loopback without credentials answers only Host values no
// attacker's DNS can point at it (IP addresses, localhost names, server.allowedHosts); a page
// on a rebound name gets 403 for reads, publishes and subscriptions alike.
func TestDNSRebindingGuard(t *testing.T) {
	e := newEnv(t, "memory", func(c *config.Config) { c.Server.AllowedHosts = []string{"push.example.com"} })
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.srv.URL, "http://"))
	evil := "evil.example:" + port
	sameOrigin := http.Header{"Origin": {"http://" + evil}, "Content-Type": {"text/plain"}}
	for _, tc := range []struct {
		method, path string
		header       http.Header
		body         string
	}{
		{http.MethodGet, "/clients", nil, ""},
		{http.MethodGet, "/clients/victim", nil, ""},
		{http.MethodGet, "/healthz", nil, ""},
		{http.MethodPost, "/pushNews", sameOrigin, `{"userId":"victim","data":1}`},
		{http.MethodDelete, "/deleteClient/victim", sameOrigin, ""},
	} {
		for _, host := range []string{evil, "evil.example", "EVIL.example.:" + port} {
			if got := e.withHost(tc.method, tc.path, host, tc.header, tc.body); got != http.StatusForbidden {
				t.Errorf("%s %s with Host %s: %d, want 403", tc.method, tc.path, host, got)
			}
		}
	}
	conn, resp, err := testDialer.Dial(e.wsURL("userId=victim"), http.Header{"Host": {evil}, "Origin": {"http://" + evil}})
	if err == nil {
		conn.Close()
		t.Fatal("subscribe with a rebound Host was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("subscribe with a rebound Host: %v, want 403", err)
	}

	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LocalHost", "app.localhost:" + port,
		"localhost.:" + port, "[::1]:" + port, "192.0.2.7", "push.example.com:" + port, "PUSH.example.com"} {
		if got := e.withHost(http.MethodGet, "/clients", host, nil, ""); got != http.StatusOK {
			t.Errorf("GET /clients with Host %s: %d, want 200", host, got)
		}
	}

	// With every route behind credentials there is nothing for a rebinding page to use: the
	// guard is off and the key decides.
	closed := newEnv(t, "memory", func(c *config.Config) {
		c.Auth.APIKeys = []string{"k"}
		c.Auth.JWTSecret = "a-long-enough-jwt-secret-for-tests"
	})
	if got := closed.withHost(http.MethodGet, "/clients", "evil.example", nil, ""); got != http.StatusUnauthorized {
		t.Errorf("GET /clients on a server with credentials, rebound Host: %d, want 401", got)
	}
}

// TestHostPolicyBeyondLoopback: a request that arrived on an address other than loopback is not
// subject to the guard (the server is then reached by its real names).
func TestHostPolicyBeyondLoopback(t *testing.T) {
	p := NewHostPolicy(true, nil)
	r, err := http.NewRequest(http.MethodGet, "http://push.example.com/clients", nil)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8080}
	if !p.Allowed(r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))) {
		t.Error("a request that arrived on 192.0.2.10 was refused for its Host")
	}
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}
	if p.Allowed(r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, loop))) {
		t.Error("a request for push.example.com that arrived on loopback was allowed")
	}
}
