package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// field is one configuration key: its name as API.md writes it, its default, and how a raw value
// (from YAML or from an environment string) lands in Config.
type field struct {
	key string
	def any
	set func(c *Config, raw any) error
}

// fields is the single list of keys; config.yaml, the README table and the env names follow it.
var fields = []field{
	{"server.addr", ":8080", str(func(c *Config) *string { return &c.Server.Addr })},
	{"server.shutdownTimeout", "10s", dur(func(c *Config) *time.Duration { return &c.Server.ShutdownTimeout })},
	{"server.readHeaderTimeout", "5s", dur(func(c *Config) *time.Duration { return &c.Server.ReadHeaderTimeout })},
	{"server.readTimeout", "30s", dur(func(c *Config) *time.Duration { return &c.Server.ReadTimeout })},
	{"server.idleTimeout", "120s", dur(func(c *Config) *time.Duration { return &c.Server.IdleTimeout })},
	{"server.tls.certFile", "", str(func(c *Config) *string { return &c.Server.TLS.CertFile })},
	{"server.tls.keyFile", "", str(func(c *Config) *string { return &c.Server.TLS.KeyFile })},
	{"server.trustedProxies", []string{}, list(func(c *Config) *[]string { return &c.Server.TrustedProxies })},
	{"server.pprof", false, boolean(func(c *Config) *bool { return &c.Server.Pprof })},
	{"server.pprofAddr", "127.0.0.1:6060", str(func(c *Config) *string { return &c.Server.PprofAddr })},
	{"server.metricsAddr", "", str(func(c *Config) *string { return &c.Server.MetricsAddr })},
	{"server.allowedHosts", []string{}, list(func(c *Config) *[]string { return &c.Server.AllowedHosts })},

	{"websocket.pingInterval", "10s", dur(func(c *Config) *time.Duration { return &c.WebSocket.PingInterval })},
	{"websocket.pongWait", "30s", dur(func(c *Config) *time.Duration { return &c.WebSocket.PongWait })},
	{"websocket.writeWait", "10s", dur(func(c *Config) *time.Duration { return &c.WebSocket.WriteWait })},
	{"websocket.maxMessageBytes", 65536, integer(func(c *Config) *int { return &c.WebSocket.MaxMessageBytes })},
	{"websocket.sendQueue", 256, integer(func(c *Config) *int { return &c.WebSocket.SendQueue })},
	{"websocket.sendQueueBytes", 1048576, integer(func(c *Config) *int { return &c.WebSocket.SendQueueBytes })},
	{"websocket.allowedOrigins", []string{}, list(func(c *Config) *[]string { return &c.WebSocket.AllowedOrigins })},
	{"websocket.maxConnsPerUser", 16, integer(func(c *Config) *int { return &c.WebSocket.MaxConnsPerUser })},
	{"websocket.maxConns", 0, integer(func(c *Config) *int { return &c.WebSocket.MaxConns })},

	{"auth.apiKeys", []string{}, list(func(c *Config) *[]string { return &c.Auth.APIKeys })},
	{"auth.jwtSecret", "", str(func(c *Config) *string { return &c.Auth.JWTSecret })},

	{"limits.publishRate", 0, float(func(c *Config) *float64 { return &c.Limits.PublishRate })},
	{"limits.publishBurst", 100, integer(func(c *Config) *int { return &c.Limits.PublishBurst })},

	{"publish.idempotencyWindow", "24h", dur(func(c *Config) *time.Duration { return &c.Publish.IdempotencyWindow })},

	{"store.driver", "sqlite", str(func(c *Config) *string { return &c.Store.Driver })},
	{"store.path", "data/push.db", str(func(c *Config) *string { return &c.Store.Path })},
	{"store.ttl", "72h", dur(func(c *Config) *time.Duration { return &c.Store.TTL })},
	{"store.maxPerUser", 1000, integer(func(c *Config) *int { return &c.Store.MaxPerUser })},
	{"store.sync", "full", str(func(c *Config) *string { return &c.Store.Sync })},

	{"broker.driver", "local", str(func(c *Config) *string { return &c.Broker.Driver })},

	{"redis.addr", "127.0.0.1:6379", str(func(c *Config) *string { return &c.Redis.Addr })},
	{"redis.password", "", str(func(c *Config) *string { return &c.Redis.Password })},
	{"redis.db", 0, integer(func(c *Config) *int { return &c.Redis.DB })},
	{"redis.keyPrefix", "pushlane:", str(func(c *Config) *string { return &c.Redis.KeyPrefix })},
	{"redis.tls", false, boolean(func(c *Config) *bool { return &c.Redis.TLS })},
	{"redis.poolSize", 0, integer(func(c *Config) *int { return &c.Redis.PoolSize })},

	{"log.format", "text", str(func(c *Config) *string { return &c.Log.Format })},
	{"log.level", "info", str(func(c *Config) *string { return &c.Log.Level })},

	{"tail.files", []string{}, list(func(c *Config) *[]string { return &c.Tail.Files })},

	{"demo.enabled", false, boolean(func(c *Config) *bool { return &c.Demo.Enabled })},

	{"webpush.enabled", false, boolean(func(c *Config) *bool { return &c.WebPush.Enabled })},
	{"webpush.vapidPublicKey", "", str(func(c *Config) *string { return &c.WebPush.VAPIDPublicKey })},
	{"webpush.vapidPrivateKey", "", str(func(c *Config) *string { return &c.WebPush.VAPIDPrivateKey })},
	{"webpush.subject", "", str(func(c *Config) *string { return &c.WebPush.Subject })},
	{"webpush.delay", "0s", dur(func(c *Config) *time.Duration { return &c.WebPush.Delay })},
	{"webpush.maxPerUser", 10, integer(func(c *Config) *int { return &c.WebPush.MaxPerUser })},
	{"webpush.allowedEndpointOrigins", []string{}, list(func(c *Config) *[]string { return &c.WebPush.AllowedEndpointOrigins })},
}

func str(at func(*Config) *string) func(*Config, any) error {
	return func(c *Config, raw any) error {
		switch v := raw.(type) {
		case string:
			*at(c) = v
		case nil:
			*at(c) = ""
		case int, int64, float64, bool:
			*at(c) = fmt.Sprint(v)
		default:
			return fmt.Errorf("must be a string, got %T", raw)
		}
		return nil
	}
}

func dur(at func(*Config) *time.Duration) func(*Config, any) error {
	return func(c *Config, raw any) error {
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("must be a duration string such as \"10s\", got %v", raw)
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (use a Go duration such as \"10s\" or \"1h30m\")", s)
		}
		*at(c) = d
		return nil
	}
}

func integer(at func(*Config) *int) func(*Config, any) error {
	return func(c *Config, raw any) error {
		switch v := raw.(type) {
		case int:
			*at(c) = v
		case int64:
			if v > math.MaxInt32 || v < math.MinInt32 {
				return fmt.Errorf("%d is out of range", v)
			}
			*at(c) = int(v)
		case uint64:
			if v > math.MaxInt32 {
				return fmt.Errorf("%d is out of range", v)
			}
			*at(c) = int(v)
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > math.MaxInt32 {
				return fmt.Errorf("must be a whole number, got %v", v)
			}
			*at(c) = int(v)
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
				return fmt.Errorf("must be a whole number, got %q", v)
			}
			*at(c) = n
		default:
			return fmt.Errorf("must be a whole number, got %v", raw)
		}
		return nil
	}
}

func float(at func(*Config) *float64) func(*Config, any) error {
	return func(c *Config, raw any) error {
		switch v := raw.(type) {
		case int:
			*at(c) = float64(v)
		case int64:
			*at(c) = float64(v)
		case uint64:
			*at(c) = float64(v)
		case float64:
			*at(c) = v
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("must be a number, got %q", v)
			}
			*at(c) = f
		default:
			return fmt.Errorf("must be a number, got %v", raw)
		}
		return nil
	}
}

func boolean(at func(*Config) *bool) func(*Config, any) error {
	return func(c *Config, raw any) error {
		switch v := raw.(type) {
		case bool:
			*at(c) = v
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("must be true or false, got %q", v)
			}
			*at(c) = b
		default:
			return fmt.Errorf("must be true or false, got %v", raw)
		}
		return nil
	}
}

// list accepts a YAML list of strings, or one comma-separated string (as environment overrides are).
func list(at func(*Config) *[]string) func(*Config, any) error {
	return func(c *Config, raw any) error {
		out := []string{}
		switch v := raw.(type) {
		case nil:
		case []string:
			for _, s := range v {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return fmt.Errorf("must be a list of strings, got an item %v", item)
				}
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		case string:
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		default:
			return fmt.Errorf("must be a list of strings, got %v", raw)
		}
		*at(c) = out
		return nil
	}
}
