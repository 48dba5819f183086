package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gin-gonic/gin"
)

// refuseCrossSite answers 403 to a request that changes something (any method but GET, HEAD and
// OPTIONS: POST and DELETE are the ones routed) and carries an Origin header that
// websocket.allowedOrigins does not allow (API.md "Cross-site requests"). A browser sends Origin
// with every such request, and a web page can send a text/plain or form POST to any address
// without a CORS preflight; without this check any page a visitor opens could publish,
// broadcast or disconnect through their browser on a server without API keys. Requests without
// Origin (curl, backends) are not browsers' and pass.
func (h *Handlers) refuseCrossSite(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if c.Request.Header.Get("Origin") != "" && !h.origins.Allowed(c.Request) {
			failWith(c, errCrossSite)
			return
		}
	}
	c.Next()
}

// HostPolicy is the DNS rebinding guard (docs/security.md). A page on an attacker's domain whose
// DNS name is re-pointed at 127.0.0.1 talks to a server on the visitor's loopback as its own
// origin: the Origin check passes (Origin and Host are the attacker's name alike) and same-origin
// GETs carry no Origin at all. What such a request cannot fake is the Host header: it is the
// attacker's name. So on a connection that arrived on a loopback address, while the server
// leaves something open without credentials (auth.apiKeys or auth.jwtSecret empty), only Host
// values that no attacker's DNS can point there are accepted: IP addresses, "localhost" and
// names under ".localhost" (which browsers resolve to loopback themselves), and the names of
// server.allowedHosts (a reverse proxy on the same machine that passes its public Host). A
// server reached beyond loopback, or one that needs credentials for everything, is not
// affected. Safe for concurrent use (read-only).
type HostPolicy struct {
	enabled bool
	allowed map[string]struct{} // lower case
}

// NewHostPolicy builds the guard; open says whether anything is served without credentials.
func NewHostPolicy(open bool, allowedHosts []string) *HostPolicy {
	p := &HostPolicy{enabled: open, allowed: make(map[string]struct{}, len(allowedHosts))}
	for _, h := range allowedHosts {
		p.allowed[strings.ToLower(h)] = struct{}{}
	}
	return p
}

// Allowed reports whether r may be served. http.LocalAddrContextKey is set by net/http on every
// request of a Server ("the local address the connection arrived on"); without it (a handler
// called outside a server) the request is treated as not local.
func (p *HostPolicy) Allowed(r *http.Request) bool {
	if !p.enabled {
		return true
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, ok := local.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" { // HTTP/1.0 without Host: no browser sends that
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true // an address needs no DNS, so it cannot be rebound
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	_, listed := p.allowed[host]
	return listed
}

// guardHost answers 403 to requests the HostPolicy refuses, before any route runs.
func (h *Handlers) guardHost(c *gin.Context) {
	if !h.hosts.Allowed(c.Request) {
		failWith(c, errHostNotAllowed)
		return
	}
	c.Next()
}
