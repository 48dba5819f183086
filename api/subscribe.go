package api

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"pushlane/api/transport"
	"pushlane/module"
)

// SubscribeQuery is a validated GET /getPushNews query.
type SubscribeQuery struct {
	UserID  string
	Since   *uint64
	Version int    // 1 or 2
	Epoch   string // version 2 only; "" when not given
	Token   string
}

// ParseSubscribeQuery validates userId, since, v and epoch as API.md defines them.
func ParseSubscribeQuery(values map[string][]string) (SubscribeQuery, string) {
	q := SubscribeQuery{Version: 1}
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
	if v, ok := values["v"]; ok {
		switch {
		case len(v) != 1:
			return q, "v must be given once"
		case v[0] == "1":
		case v[0] == "2":
			q.Version = 2
		default:
			return q, "v must be 1 or 2 (the protocol version)"
		}
	}
	if e, ok := values["epoch"]; ok {
		if len(e) != 1 {
			return q, "epoch must be given once"
		}
		if !module.ValidEpoch(e[0]) {
			return q, module.ErrBadEpoch.Error()
		}
		if q.Version >= 2 {
			q.Epoch = e[0]
		}
	}
	if tok := values["token"]; len(tok) > 0 {
		q.Token = tok[0]
	}
	return q, ""
}

// wantsEventStream reports whether the request asks for Server-Sent Events: an Accept header
// listing text/event-stream (what a browser's EventSource sends).
func wantsEventStream(r *http.Request) bool {
	for _, accept := range r.Header.Values("Accept") {
		for _, part := range strings.Split(accept, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// subscribe is GET /getPushNews, as a WebSocket or as an event stream. Every rejection is plain
// HTTP before the upgrade (or the stream's headers); after it the hub owns the connection.
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
	kind := module.TransportWebSocket
	switch {
	case websocket.IsWebSocketUpgrade(r):
	case wantsEventStream(r):
		kind = module.TransportSSE
		q.Version, q.Epoch = 1, "" // an event stream is a version 1 connection
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			n, err := module.ParseSince(last)
			if err != nil {
				fail(c, http.StatusBadRequest, "Last-Event-ID: "+err.Error())
				return
			}
			if q.Since == nil || n > *q.Since {
				q.Since = &n // when both are given, the greater wins
			}
		}
	default:
		fail(c, http.StatusBadRequest, "this route is a WebSocket or Server-Sent Events endpoint: send a GET with Upgrade: websocket, or with Accept: text/event-stream")
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
	opts := module.ConnectOptions{UserID: q.UserID, Since: q.Since, Epoch: q.Epoch, Version: q.Version,
		Kind: kind, RemoteAddr: r.RemoteAddr, ExpiresAt: expires}
	ticket, err := h.hub.Reserve(r.Context(), opts)
	if err != nil {
		failFrom(c, err)
		return
	}
	if kind == module.TransportSSE {
		transport.ServeSSE(h.hub, ticket, c.Writer, r, h.writeWait)
		return
	}
	transport.ServeWebSocket(h.hub, ticket, &h.upgrader, h.wsOptions, c.Writer, r)
}
