package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
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
	r.Use(h.recoverJSON, h.observe)
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "no such route") })
	r.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method not allowed on this route") })

	r.GET("/getPushNews", h.subscribe) // token checked in the handler, before the upgrade
	r.GET("/healthz", h.healthz)

	publish := r.Group("/", h.requireAPIKey, h.limitPublish)
	publish.POST("/pushNews", h.publish)
	publish.POST("/broadcast", h.broadcast)

	ops := r.Group("/", h.requireAPIKey)
	ops.DELETE("/deleteClient/:id", h.deleteClient)
	ops.GET("/clients", h.listClients)
	ops.GET("/clients/:id", h.getClient)

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

	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{})))
	return r
}
