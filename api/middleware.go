package api

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_http_requests_total",
			Help: "HTTP requests by route and status."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pushlane_http_request_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// observe counts and logs every request. Successful requests log at debug level so a busy
// publisher does not flood the log; client errors at info, server errors at warn.
func (h *Handlers) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	h.metrics.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	h.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
	level := slog.LevelDebug
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status >= 400:
		level = slog.LevelInfo
	}
	if !h.log.Enabled(c, level) {
		return
	}
	attrs := []any{"method", c.Request.Method, "route", route, "status", status,
		"duration", elapsed, "remote", c.ClientIP()}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "err", strings.Join(c.Errors.Errors(), "; "))
	}
	h.log.Log(c, level, "http request", attrs...)
}

// recoverJSON turns a panic in a handler into a 500 JSON error and a log line, never a crash.
func (h *Handlers) recoverJSON(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("handler panic", "panic", p, "route", c.FullPath(), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				failWith(c, errInternal)
			}
		}
	}()
	c.Next()
}
