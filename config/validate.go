package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Validate checks every value and returns an *Error naming the first bad key.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}

	if _, _, err := net.SplitHostPort(c.Server.Addr); err != nil {
		return bad("server.addr", "must be host:port or :port, got %q", c.Server.Addr)
	}
	// In the order of the table, so that with several bad keys the same one is named each time.
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"server.shutdownTimeout", c.Server.ShutdownTimeout},
		{"server.readHeaderTimeout", c.Server.ReadHeaderTimeout},
		{"server.readTimeout", c.Server.ReadTimeout},
		{"server.idleTimeout", c.Server.IdleTimeout},
	} {
		if t.d < 0 {
			return bad(t.key, "must not be negative, got %s", t.d)
		}
	}
	if (c.Server.TLS.CertFile == "") != (c.Server.TLS.KeyFile == "") {
		return bad("server.tls.certFile", "server.tls.certFile and server.tls.keyFile must be set together")
	}
	for _, p := range c.Server.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return bad("server.trustedProxies", "%q is not an IP address or CIDR range", p)
			}
		}
	}
	if c.Server.Pprof {
		if _, _, err := net.SplitHostPort(c.Server.PprofAddr); err != nil {
			return bad("server.pprofAddr", "must be host:port, got %q", c.Server.PprofAddr)
		}
	}

	if c.Server.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.Server.MetricsAddr); err != nil {
			return bad("server.metricsAddr", "must be empty (metrics on server.addr) or host:port, got %q", c.Server.MetricsAddr)
		}
	}
	for _, h := range c.Server.AllowedHosts {
		if !validHostName(h) {
			return bad("server.allowedHosts", "%q is not a host name (letters, digits, '-' and '.', no scheme or port)", h)
		}
	}

	ws := c.WebSocket
	if ws.PingInterval <= 0 {
		return bad("websocket.pingInterval", "must be greater than 0, got %s", ws.PingInterval)
	}
	if ws.PongWait <= ws.PingInterval {
		return bad("websocket.pongWait", "must be greater than websocket.pingInterval (%s), got %s", ws.PingInterval, ws.PongWait)
	}
	if ws.WriteWait <= 0 {
		return bad("websocket.writeWait", "must be greater than 0, got %s", ws.WriteWait)
	}
	if ws.MaxMessageBytes < 128 || ws.MaxMessageBytes > 64<<20 {
		return bad("websocket.maxMessageBytes", "must be between 128 and 67108864, got %d", ws.MaxMessageBytes)
	}
	if ws.SendQueue < 1 || ws.SendQueue > 1<<20 {
		return bad("websocket.sendQueue", "must be between 1 and 1048576, got %d", ws.SendQueue)
	}
	if ws.SendQueueBytes < 1024 || ws.SendQueueBytes > 1<<30 {
		return bad("websocket.sendQueueBytes", "must be between 1024 and 1073741824, got %d", ws.SendQueueBytes)
	}
	for _, o := range ws.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("websocket.allowedOrigins", "%q is not an origin (scheme://host[:port]) or \"*\"", o)
		}
	}
	if ws.MaxConnsPerUser < 0 {
		return bad("websocket.maxConnsPerUser", "must be 0 (no limit) or more, got %d", ws.MaxConnsPerUser)
	}
	if ws.MaxConns < 0 {
		return bad("websocket.maxConns", "must be 0 (no limit) or more, got %d", ws.MaxConns)
	}

	if c.Limits.PublishRate < 0 {
		return bad("limits.publishRate", "must be 0 (no limit) or more, got %v", c.Limits.PublishRate)
	}
	if c.Limits.PublishBurst < 1 {
		return bad("limits.publishBurst", "must be at least 1, got %d", c.Limits.PublishBurst)
	}

	if c.Publish.IdempotencyWindow <= 0 {
		return bad("publish.idempotencyWindow", "must be greater than 0, got %s", c.Publish.IdempotencyWindow)
	}

	switch c.Store.Driver {
	case "sqlite":
		if strings.TrimSpace(c.Store.Path) == "" {
			return bad("store.path", "must name the sqlite file")
		}
	case "memory", "redis":
	default:
		return bad("store.driver", "must be sqlite, memory or redis, got %q", c.Store.Driver)
	}
	if c.Store.TTL <= 0 {
		return bad("store.ttl", "must be greater than 0, got %s", c.Store.TTL)
	}
	if c.Store.MaxPerUser < 1 {
		return bad("store.maxPerUser", "must be at least 1, got %d", c.Store.MaxPerUser)
	}
	if c.Store.Sync != "full" && c.Store.Sync != "normal" {
		return bad("store.sync", "must be full or normal, got %q", c.Store.Sync)
	}
	switch c.Broker.Driver {
	case "local":
	case "redis":
		if c.Store.Driver != "redis" {
			return bad("broker.driver", "redis needs store.driver: redis, so that every node reads the same messages (got store.driver %q)", c.Store.Driver)
		}
	default:
		return bad("broker.driver", "must be local or redis, got %q", c.Broker.Driver)
	}
	if c.Redis.DB < 0 {
		return bad("redis.db", "must be 0 or more, got %d", c.Redis.DB)
	}
	if c.Redis.PoolSize < 0 {
		return bad("redis.poolSize", "must be 0 (automatic) or more, got %d", c.Redis.PoolSize)
	}
	if err := c.WebPush.validate(); err != nil {
		return err
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	return nil
}

// validHostName accepts a DNS name as a Host header carries it, without port: labels of
// letters, digits and '-', separated by dots.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
