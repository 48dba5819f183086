package api

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may subscribe (websocket.allowedOrigins): no Origin
// header (not a browser) is allowed, an Origin naming the request's own host:port is allowed,
// listed origins are allowed, "*" allows all. Hosts compare case-insensitively, and a missing
// port is the default of the Origin's scheme. Safe for concurrent use (read-only).
type OriginPolicy struct {
	any     bool
	allowed map[string]struct{} // "scheme://host:port", lower case
}

// NewOriginPolicy compiles the configured list.
func NewOriginPolicy(origins []string) *OriginPolicy {
	p := &OriginPolicy{allowed: make(map[string]struct{})}
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		if u, err := url.Parse(o); err == nil {
			if key, ok := originKey(u.Scheme, u.Host); ok {
				p.allowed[key] = struct{}{}
			}
		}
	}
	return p
}

// Allowed reports whether the request's Origin may subscribe.
func (p *OriginPolicy) Allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	key, ok := originKey(u.Scheme, u.Host)
	if !ok {
		return false
	}
	if _, listed := p.allowed[key]; listed {
		return true
	}
	// Same host: the Host header with the Origin's scheme default for a missing port.
	self, ok := originKey(u.Scheme, r.Host)
	return ok && hostPart(self) == hostPart(key)
}

// originKey normalises scheme and host[:port] to "scheme://host:port" in lower case.
func originKey(scheme, hostport string) (string, bool) {
	scheme = strings.ToLower(scheme)
	var def string
	switch scheme {
	case "http", "ws":
		def = "80"
	case "https", "wss":
		def = "443"
	default:
		return "", false
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, def
	}
	if host == "" {
		return "", false
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	return scheme + "://" + net.JoinHostPort(host, port), true
}

// hostPart drops the scheme: the same-host rule compares host:port only.
func hostPart(key string) string {
	if i := strings.Index(key, "://"); i >= 0 {
		return key[i+3:]
	}
	return key
}
