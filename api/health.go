package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// healthTimeout bounds one health check: a load balancer's probe must get an answer (503) from a
// store that hangs, not a timeout of its own.
const healthTimeout = 3 * time.Second

// unavailableReason is all a caller without the API key learns about a failing part: no address,
// path or driver message (those go to the log).
const unavailableReason = "unavailable"

// healthBody is GET /healthz's answer.
type healthBody struct {
	Status string `json:"status"`
	Store  string `json:"store"`
	Broker string `json:"broker"`
}

// healthz is GET and HEAD /healthz (API.md "Health"): 200 when the store can accept writes and
// the broker answers, else 503 with the failing part set to a short reason. Only a caller that
// shows a valid API key (when keys are set) reads the cause; everyone else, and everyone when
// keys are off, reads "unavailable".
func (h *Handlers) healthz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), healthTimeout)
	defer cancel()
	storeErr, brokerErr := h.svc.Health(ctx)
	h.health.note(h.log, storeErr, brokerErr)

	detail := false
	if key, ok := bearer(c.Request); ok && h.keys.Enabled() {
		detail = h.keys.Match(key)
	}
	reason := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case detail:
			return strings.Join(strings.Fields(err.Error()), " ")
		}
		return unavailableReason
	}
	body := healthBody{Status: "ok", Store: reason(storeErr), Broker: reason(brokerErr)}
	status := http.StatusOK
	if storeErr != nil || brokerErr != nil {
		body.Status, status = unavailableReason, http.StatusServiceUnavailable
	}
	c.Header("Cache-Control", "no-store")
	writeJSON(c, status, body)
}

// healthLog writes the cause of a failing health check to the log when the set of failing parts
// changes (a load balancer probing every second must not flood the log), and says when the node
// is healthy again. Safe for concurrent use.
type healthLog struct {
	mu      sync.Mutex
	failing string // "", "store", "broker" or "store+broker"
}

func (l *healthLog) note(log *slog.Logger, storeErr, brokerErr error) {
	var parts []string
	if storeErr != nil {
		parts = append(parts, "store")
	}
	if brokerErr != nil {
		parts = append(parts, "broker")
	}
	failing := strings.Join(parts, "+")
	l.mu.Lock()
	changed := failing != l.failing
	l.failing = failing
	l.mu.Unlock()
	switch {
	case !changed:
	case failing == "":
		log.Info("health check ok again")
	default:
		log.Warn("health check failing", "parts", failing, "store", errText(storeErr), "broker", errText(brokerErr))
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
