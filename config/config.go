// Package config holds pushlane's typed configuration. Load reads config.yaml (or the file given with
// --config) through its own viper instance, applies PUSH_* environment overrides and validates every
// value, naming the offending key exactly as API.md spells it.
package config

import "time"

// Config is the whole configuration of one pushlane node.
type Config struct {
	Server    Server
	WebSocket WebSocket
	Auth      Auth
	Limits    Limits
	Publish   Publish
	Store     Store
	Broker    Broker
	Redis     Redis
	Log       Log
	Tail      Tail
	Demo      Demo
	WebPush   WebPush
}

// Server is the HTTP listener.
type Server struct {
	Addr              string
	ShutdownTimeout   time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	TLS               TLS
	TrustedProxies    []string // proxies whose X-Forwarded-For is believed (client IP for limits and logs)
	Pprof             bool
	PprofAddr         string
	// MetricsAddr serves GET /metrics on a listener of its own (and not on Addr); "" = on Addr,
	// behind the API key when auth.apiKeys is set.
	MetricsAddr string
	// AllowedHosts are Host names accepted besides loopback names and IP addresses on a
	// connection that arrived on a loopback address while auth.apiKeys or auth.jwtSecret is
	// empty (the DNS rebinding guard, docs/security.md).
	AllowedHosts []string
}

// TLS enables HTTPS and wss:// when both files are set.
type TLS struct {
	CertFile string
	KeyFile  string
}

// Enabled reports whether the listener serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// WebSocket tunes subscriber connections.
type WebSocket struct {
	PingInterval    time.Duration
	PongWait        time.Duration
	WriteWait       time.Duration
	MaxMessageBytes int
	SendQueue       int
	SendQueueBytes  int
	AllowedOrigins  []string
	MaxConnsPerUser int
	MaxConns        int
}

// Auth holds the credentials of publishers (API keys) and subscribers (JWT secret).
type Auth struct {
	APIKeys   []string
	JWTSecret string
}

// Limits bounds what one client may ask of the server.
type Limits struct {
	PublishRate  float64 // requests per second per API key or client IP; 0 = no limit
	PublishBurst int
}

// Publish tunes POST /pushNews.
type Publish struct {
	IdempotencyWindow time.Duration // how long an Idempotency-Key is remembered
}

// Store selects and tunes the message store.
type Store struct {
	Driver     string
	Path       string
	TTL        time.Duration
	MaxPerUser int
	Sync       string // sqlite: "full" (fsync per commit) or "normal" (fsync at checkpoints)
}

// Broker selects how messages reach connections: in-process or across nodes.
type Broker struct {
	Driver string
}

// Redis is the connection used by the redis store and broker.
type Redis struct {
	Addr      string
	Password  string
	DB        int
	KeyPrefix string
	TLS       bool
	PoolSize  int
}

// Log selects the log format and level.
type Log struct {
	Format string // text or json
	Level  string // debug, info, warn, error
}

// Demo turns on the demonstration routes (/echo, /chat, /tail).
type Demo struct {
	Enabled bool
}

// WebPush sends a message that stays unread to the user's browsers through their push services
// (API.md "Web Push to closed tabs").
type WebPush struct {
	Enabled         bool
	VAPIDPublicKey  string // base64url uncompressed P-256 point
	VAPIDPrivateKey string // base64url 32-byte scalar
	Subject         string // mailto: or https: contact for push services
	Delay           time.Duration
	MaxPerUser      int
	// AllowedEndpointOrigins are push-service origins (scheme://host[:port]) allowed besides
	// public https:// hosts: a private push service, a test's own.
	AllowedEndpointOrigins []string
}

// Tail lists the log files GET /tail may stream, by name.
type Tail struct {
	Files []string
}
