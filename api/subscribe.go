package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"pushlane/module"
)

// SubscribeQuery is a validated GET /getPushNews query.
type SubscribeQuery struct {
	UserID string
	Since  *uint64
	Token  string
}

// ParseSubscribeQuery validates userId and since as API.md defines them.
func ParseSubscribeQuery(values map[string][]string) (SubscribeQuery, string) {
	var q SubscribeQuery
	ids := values["userId"]
	if len(ids) == 0 {
		return q, "userId is required"
	}
	if len(ids) > 1 {
		return q, "userId must be given once"
	}
	if !module.ValidUserID(ids[0]) {
		return q, "userId: " + module.ErrBadUserID.Error()
	}
	q.UserID = ids[0]
	if since, ok := values["since"]; ok {
		if len(since) != 1 {
			return q, "since must be given once"
		}
		n, err := module.ParseSince(since[0])
		if err != nil {
			return q, err.Error()
		}
		q.Since = &n
	}
	if tok := values["token"]; len(tok) > 0 {
		q.Token = tok[0]
	}
	return q, ""
}

// subscribe is GET /getPushNews: every rejection is plain HTTP before the upgrade; after it the
// hub owns the connection and this handler returns, so net/http frees its per-request state.
func (h *Handlers) subscribe(c *gin.Context) {
	r := c.Request
	// Not r.URL.Query(): it drops pairs it cannot decode, so "since=%zz" would connect without since.
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		fail(c, http.StatusBadRequest, "malformed query string: "+err.Error())
		return
	}
	q, problem := ParseSubscribeQuery(values)
	if problem != "" {
		fail(c, http.StatusBadRequest, problem)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		fail(c, http.StatusBadRequest, "this route is a WebSocket endpoint: send a GET with Upgrade: websocket")
		return
	}
	if !h.origins.Allowed(r) {
		fail(c, http.StatusForbidden, "origin not allowed (websocket.allowedOrigins)")
		return
	}
	var expires time.Time
	if h.tokens.Enabled() {
		exp, err := h.tokens.Verify(q.Token, q.UserID)
		if err != nil {
			fail(c, http.StatusUnauthorized, err.Error())
			return
		}
		expires = exp
	}
	if h.draining.Load() {
		fail(c, http.StatusServiceUnavailable, module.ErrShuttingDown.Error())
		return
	}
	opts := module.ConnectOptions{UserID: q.UserID, Since: q.Since, RemoteAddr: r.RemoteAddr, ExpiresAt: expires}
	ticket, err := h.hub.Reserve(r.Context(), opts)
	if err != nil {
		failFrom(c, err)
		return
	}
	conn, err := h.upgrader.Upgrade(module.BatchWrites(c.Writer), r, nil)
	if err != nil {
		ticket.Cancel() // the upgrader has answered the client already
		return
	}
	h.hub.Connect(ticket, conn)
}
