// Package api is pushlane's HTTP surface: Gin routes, middleware and handlers. Handlers are methods
// on Handlers, which holds every dependency; nothing here keeps package-level state.
package api

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"pushlane/api/demo"
	"pushlane/api/transport"
	"pushlane/config"
	"pushlane/module"
	"pushlane/module/webpush"
)

// Deps is what the router needs, built once in main.
type Deps struct {
	Service  *module.Service
	Config   config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry // served on /metrics and given the HTTP instruments
	WebPush  *webpush.WebPush     // nil when webpush.enabled is false: the /webpush routes answer 404
}

// Handlers serves every route. Safe for concurrent use.
type Handlers struct {
	svc       *module.Service
	hub       *module.Hub
	cfg       config.Config
	log       *slog.Logger
	origins   *OriginPolicy
	hosts     *HostPolicy
	keys      *APIKeys
	tokens    *TokenVerifier
	limiter   *RateLimiter
	upgrader  websocket.Upgrader
	wsOptions transport.WebSocketOptions
	writeWait time.Duration // websocket.writeWait: bounds an event stream's response head too
	metrics   *httpMetrics
	registry  *prometheus.Registry
	demos     *demo.Demos
	push      *webpush.WebPush // nil: Web Push is off
	draining  atomic.Bool
	health    healthLog
}

// NewHandlers builds the handlers from their dependencies.
func NewHandlers(d Deps) *Handlers {
	h := &Handlers{
		svc:     d.Service,
		hub:     d.Service.Hub(),
		cfg:     d.Config,
		log:     d.Log,
		origins: NewOriginPolicy(d.Config.WebSocket.AllowedOrigins),
		hosts: NewHostPolicy(len(d.Config.Auth.APIKeys) == 0 || d.Config.Auth.JWTSecret == "",
			d.Config.Server.AllowedHosts),
		keys:     NewAPIKeys(d.Config.Auth.APIKeys),
		tokens:   NewTokenVerifier(d.Config.Auth.JWTSecret),
		limiter:  NewRateLimiter(d.Config.Limits.PublishRate, d.Config.Limits.PublishBurst),
		metrics:  newHTTPMetrics(d.Registry),
		registry: d.Registry,
		push:     d.WebPush,
	}
	h.upgrader = websocket.Upgrader{
		// 128 bytes: clients send little (pongs, app pings, acks); a small read buffer is most
		// of the per-connection memory saved against gorilla's 4 KB default. It still holds any
		// control frame whole (a payload is at most 125 bytes), and larger messages are read
		// through it in pieces.
		ReadBufferSize: 128,
		// Write buffers are borrowed per message and returned, so idle connections hold none.
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: d.Config.Server.ReadHeaderTimeout,
		CheckOrigin:      h.origins.Allowed,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeJSONError(w, status, reason.Error())
		},
	}
	h.writeWait = d.Config.WebSocket.WriteWait
	h.wsOptions = transport.WebSocketOptions{
		MaxMessageBytes: d.Config.WebSocket.MaxMessageBytes,
		CloseGrace:      min(d.Config.WebSocket.WriteWait, 2*time.Second),
	}
	h.demos = demo.New(demo.Options{
		SendQueueBytes:  d.Config.WebSocket.SendQueueBytes,
		Admit:           h.hub.Admit,
		TailFiles:       d.Config.Tail.Files,
		MaxMessageBytes: d.Config.WebSocket.MaxMessageBytes,
		WriteWait:       d.Config.WebSocket.WriteWait,
		PingInterval:    d.Config.WebSocket.PingInterval,
		PongWait:        d.Config.WebSocket.PongWait,
		CheckOrigin:     h.origins.Allowed,
		Log:             d.Log,
	})
	return h
}

// Close ends the demo connections (echo, chat, tail); the push connections belong to the hub.
func (h *Handlers) Close() { h.demos.Close() }

// SetDraining makes new subscribe attempts answer 503 during shutdown.
func (h *Handlers) SetDraining() { h.draining.Store(true) }
