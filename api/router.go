package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pushlane/api/web"
)

// NewRouter returns the whole HTTP surface; every route is listed here.
func NewRouter(h *Handlers) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// ClientIP (rate limits, logs) trusts X-Forwarded-For only from server.trustedProxies.
	_ = r.SetTrustedProxies(h.cfg.Server.TrustedProxies)
	// The host and cross-site guards run before every route, 404s included.
	r.Use(h.recoverJSON, h.observe, h.guardHost, h.refuseCrossSite)
	r.NoRoute(func(c *gin.Context) { failWith(c, errNoRoute) })
	r.NoMethod(func(c *gin.Context) { failWith(c, errNoMethod) })

	r.GET("/getPushNews", h.subscribe) // token checked in the handler, before the upgrade
	r.GET("/healthz", h.healthz)
	r.HEAD("/healthz", h.healthz)

	publish := r.Group("/", h.requireAPIKey, h.limitPublish)
	publish.POST("/pushNews", h.publish)
	publish.POST("/broadcast", h.broadcast)

	ops := r.Group("/", h.requireAPIKey)
	ops.DELETE("/deleteClient/:id", h.deleteClient)
	ops.GET("/clients", h.listClients)
	ops.GET("/clients/:id", h.getClient)
	ops.GET("/messages/:userId", h.listMessages)
	ops.GET("/messages/:userId/:id", h.getMessage)

	// Web Push (webpush.go): 404 while webpush.enabled is false. Subscribers call these
	// routes, so they take userId and token like GET /getPushNews, and answer CORS for the
	// origins websocket.allowedOrigins lists.
	push := r.Group("/webpush", h.webpushCORS)
	push.GET("/vapidPublicKey", h.vapidPublicKey)
	push.POST("/subscriptions", h.registerPushSubscription)
	push.GET("/subscriptions", h.listPushSubscriptions)
	push.DELETE("/subscriptions/:id", h.deletePushSubscription)
	for _, path := range []string{"/vapidPublicKey", "/subscriptions", "/subscriptions/:id"} {
		push.OPTIONS(path, h.webpushPreflight)
	}

	// The classic demos, only with demo.enabled: they take the API key like the ops routes (also
	// as ?key=, because browsers cannot set headers on a WebSocket) and count as connections.
	if h.cfg.Demo.Enabled {
		h.demos.Register(r.Group("/", h.requireKeyForDemos))
	} else {
		for _, path := range []string{"/echo", "/chat", "/tail"} {
			r.GET(path, demosOff)
		}
	}

	// The web console (GET /) and the browser client (GET /pushlane.js), embedded in the binary.
	web.Register(r)

	r.GET("/openapi.yaml", serveOpenAPI) // docs/openapi.yaml, embedded
	// With server.metricsAddr set, /metrics is served there (api/server) and not here.
	if h.cfg.Server.MetricsAddr == "" {
		r.GET("/metrics", h.requireAPIKey, gin.WrapH(MetricsHandler(h.registry)))
	}
	return r
}

// MetricsHandler serves the registry in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
