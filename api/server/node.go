// Package server assembles one pushlane node (store, hub, broker, service, HTTP handlers) from its
// configuration and serves it until its context ends, then drains it.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"pushlane/api"
	"pushlane/config"
	"pushlane/module"
	redisbroker "pushlane/module/broker/redis"
	"pushlane/module/store/memory"
	redisstore "pushlane/module/store/redis"
	"pushlane/module/store/sqlite"
)

// Node is one assembled pushlane node: store, hub, broker, service and HTTP handlers.
type Node struct {
	cfg      config.Config
	log      *slog.Logger
	store    module.Store
	hub      *module.Hub
	broker   module.Broker
	svc      *module.Service
	redis    *goredis.Client // shared by the redis store and broker; nil when neither is used
	handlers *api.Handlers
	handler  http.Handler
	registry *prometheus.Registry
	push     *nodePush // nil when webpush.enabled is false
}

// New builds a node from cfg. Close releases it. Options are for tests.
func New(cfg config.Config, log *slog.Logger, options ...Option) (*Node, error) {
	var o nodeOptions
	for _, opt := range options {
		opt(&o)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := module.NewMetrics(reg)

	a := &Node{cfg: cfg, log: log, registry: reg}
	// The store calls the broker in commit order; the broker exists before any publish can.
	storeOpts := module.StoreOptions{
		MaxPerUser: cfg.Store.MaxPerUser,
		Metrics:    metrics,
		OnCommit:   func(msgs []module.Message) { a.broker.Deliver(msgs) },
	}
	if cfg.WebPush.Enabled {
		storeOpts.WebPush = &module.PushSchedule{Delay: cfg.WebPush.Delay}
	}
	if cfg.Store.Driver == "redis" || cfg.Broker.Driver == "redis" {
		a.redis = newRedisClient(cfg.Redis, log)
	}
	switch cfg.Store.Driver {
	case "redis":
		// With the redis broker, the append script PUBLISHes each message as it numbers it, and
		// that is the only delivery path (OnCommit is not called); with the local broker,
		// OnCommit delivers.
		s, err := redisstore.New(a.redis, storeOpts, redisstore.Options{
			KeyPrefix:   cfg.Redis.KeyPrefix,
			PublishLive: cfg.Broker.Driver == "redis",
			Log:         log,
		})
		if err != nil {
			a.closeRedis()
			return nil, fmt.Errorf("store.driver redis: %w", err)
		}
		a.store = s
	case "memory":
		a.store = memory.New(storeOpts)
	case "sqlite":
		s, err := sqlite.Open(cfg.Store.Path, storeOpts, sqlite.WithSync(sqlite.Sync(cfg.Store.Sync)))
		if err != nil {
			a.closeRedis()
			// A file that cannot be created or opened is the operator's to fix in store.path:
			// a configuration error (exit 2), named like every other.
			return nil, &config.Error{Key: "store.path", Msg: strings.Join(strings.Fields(err.Error()), " ")}
		}
		a.store = s
	default:
		a.closeRedis()
		return nil, fmt.Errorf("store.driver %q is not available in this build", cfg.Store.Driver)
	}
	ws := cfg.WebSocket
	a.hub = module.NewHub(module.HubConfig{
		PingInterval:    ws.PingInterval,
		PongWait:        ws.PongWait,
		WriteWait:       ws.WriteWait,
		MaxMessageBytes: ws.MaxMessageBytes,
		SendQueue:       ws.SendQueue,
		SendQueueBytes:  ws.SendQueueBytes,
		MaxConnsPerUser: ws.MaxConnsPerUser,
		MaxConns:        ws.MaxConns,
	}, a.store, metrics, log)
	switch cfg.Broker.Driver {
	case "redis":
		b, err := redisbroker.New(a.redis, a.hub, redisbroker.Options{
			KeyPrefix: cfg.Redis.KeyPrefix,
			NodeID:    redisbroker.NewNodeID(),
			Log:       log,
		})
		if err != nil {
			a.hub.Close()
			_ = a.store.Close()
			a.closeRedis()
			return nil, fmt.Errorf("broker.driver redis: %w", err)
		}
		a.hub.SetWatcher(b)
		a.broker = b
		log.Info("cluster node", "node", b.NodeID(), "redis", cfg.Redis.Addr, "keyPrefix", cfg.Redis.KeyPrefix)
	default:
		a.broker = module.NewLocalBroker(a.hub)
	}
	a.svc = module.NewService(a.store, a.broker, a.hub, metrics, cfg.Store.TTL)
	deps := api.Deps{Service: a.svc, Config: cfg, Log: log, Registry: reg}
	if cfg.WebPush.Enabled {
		push, err := newNodePush(cfg, a.store, reg, log, o.webPush)
		if err != nil {
			_ = a.broker.Close()
			a.hub.Close()
			_ = a.store.Close()
			a.closeRedis()
			return nil, err
		}
		a.push = push
		deps.WebPush = push.service
	}
	a.handlers = api.NewHandlers(deps)
	a.handler = api.NewRouter(a.handlers)
	return a, nil
}

// Close drains the connections within ctx, then closes the demos, the broker and the store. It
// returns the hub's error when the drain did not finish in time (connections were cut off).
func (a *Node) Close(ctx context.Context) error {
	drainErr := a.Drain(ctx)
	a.hub.Close()
	a.handlers.Close()
	if a.push != nil {
		a.push.close() // before the store: it hands its claimed pushes back to it
	}
	if err := a.broker.Close(); err != nil {
		a.log.Warn("broker close", "err", err)
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("store close", "err", err)
	}
	a.closeRedis()
	return drainErr
}

// Drain refuses new subscriber connections and closes every open one (WebSocket and event
// stream) with 1001 once its queue is written, waiting until ctx ends; then stragglers are cut.
// Close drains too; calling Drain first (beside http.Server.Shutdown) is what lets event streams,
// which are HTTP requests, end before the HTTP server gives up on them. Idempotent.
func (a *Node) Drain(ctx context.Context) error {
	err := a.hub.Shutdown(ctx)
	if err != nil {
		a.log.Warn("connections did not drain", "err", err)
	}
	return err
}

func (a *Node) closeRedis() {
	if a.redis != nil {
		if err := a.redis.Close(); err != nil {
			a.log.Warn("redis client close", "err", err)
		}
	}
}

// newRedisClient builds the client of the redis store and broker from redis.*. Commands are
// never retried (MaxRetries -1): a retried append script could store one publish twice; the
// store and broker report failures instead (503) and reconnect on their own. Losing and
// regaining Redis is logged once each (redisLink).
func newRedisClient(cfg config.Redis, log *slog.Logger) *goredis.Client {
	opt := &goredis.Options{
		Addr:            cfg.Addr,
		Password:        cfg.Password,
		DB:              cfg.DB,
		PoolSize:        cfg.PoolSize, // 0: go-redis default, 10 per CPU
		Protocol:        2,            // RESP2: plain Pub/Sub frames, no client-side push handling
		MaxRetries:      -1,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     3 * time.Second,
		WriteTimeout:    3 * time.Second,
		DisableIdentity: true, // no CLIENT SETINFO: works with older and managed Redis alike
	}
	if cfg.TLS {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host = cfg.Addr
		}
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	goredis.SetLogger(redisDebugLog{log: log})
	c := goredis.NewClient(opt)
	c.AddHook(newRedisLink(log, cfg.Addr))
	return c
}

// warnIfOpen says what is open to anyone when the listener is reachable from other machines.
func (a *Node) warnIfOpen(addr net.Addr) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() {
		return
	}
	if len(a.cfg.Auth.APIKeys) == 0 {
		a.log.Warn("auth.apiKeys is empty and the server listens beyond loopback: anyone who reaches it can publish, broadcast, list and disconnect clients", "addr", addr.String())
	}
	if a.cfg.Auth.JWTSecret == "" {
		a.log.Warn("auth.jwtSecret is empty and the server listens beyond loopback: anyone who reaches it can subscribe as any user", "addr", addr.String())
	}
}

// Handler is the node's HTTP surface.
func (a *Node) Handler() http.Handler { return a.handler }

// Hub is the node's connection registry.
func (a *Node) Hub() *module.Hub { return a.hub }

// Service is the node's publish/broadcast/kick core.
func (a *Node) Service() *module.Service { return a.svc }

// MetricsHandler serves the node's Prometheus registry (for server.metricsAddr).
func (a *Node) MetricsHandler() http.Handler { return api.MetricsHandler(a.registry) }

// Store is the node's message store.
func (a *Node) Store() module.Store { return a.store }
