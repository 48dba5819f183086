package api

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"pushlane/module"
	"pushlane/module/webpush"
)

// maxPushSubscriptionBytes bounds a POST /webpush/subscriptions body; a browser's is about 400
// bytes.
const maxPushSubscriptionBytes = 16 << 10

// pushUser runs the checks every /webpush/subscriptions route shares with GET /getPushNews, in
// the same order: Web Push on (404), userId (400), origin (403), token when auth.jwtSecret is set
// (401). It answers itself and reports false on a refusal.
func (h *Handlers) pushUser(c *gin.Context) (string, bool) {
	if h.push == nil {
		failWith(c, errWebPushOff)
		return "", false
	}
	values, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		fail(c, http.StatusBadRequest, "malformed query string: "+err.Error())
		return "", false
	}
	ids := values["userId"]
	switch {
	case len(ids) == 0:
		fail(c, http.StatusBadRequest, "userId is required")
		return "", false
	case len(ids) > 1:
		fail(c, http.StatusBadRequest, "userId must be given once")
		return "", false
	case !module.ValidUserID(ids[0]):
		fail(c, http.StatusBadRequest, "userId: "+module.ErrBadUserID.Error())
		return "", false
	}
	if !h.origins.Allowed(c.Request) {
		fail(c, http.StatusForbidden, "origin not allowed (websocket.allowedOrigins)")
		return "", false
	}
	if h.tokens.Enabled() {
		var token string
		if t := values["token"]; len(t) > 0 {
			token = t[0]
		}
		if _, err := h.tokens.Verify(token, ids[0]); err != nil {
			fail(c, http.StatusUnauthorized, err.Error())
			return "", false
		}
	}
	return ids[0], true
}

// vapidPublicKey is GET /webpush/vapidPublicKey: the key browsers subscribe with.
func (h *Handlers) vapidPublicKey(c *gin.Context) {
	if h.push == nil {
		failWith(c, errWebPushOff)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"publicKey": h.push.PublicKey()})
}

// registerPushSubscription is POST /webpush/subscriptions?userId=U[&token=JWT] with the browser's
// PushSubscription JSON: 201 with the new id, 200 with the id the same endpoint already has.
func (h *Handlers) registerPushSubscription(c *gin.Context) {
	userID, ok := h.pushUser(c)
	if !ok {
		return
	}
	body, err := readBody(c.Writer, c.Request, maxPushSubscriptionBytes)
	switch {
	case errors.Is(err, errBodyTooLarge):
		fail(c, http.StatusBadRequest, "push subscription body is larger than 16384 bytes")
		return
	case err != nil:
		fail(c, http.StatusBadRequest, "could not read the body")
		return
	}
	sub, created, err := h.push.Register(c.Request.Context(), userID, body)
	switch {
	case errors.Is(err, webpush.ErrBadSubscription):
		fail(c, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		failFrom(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(c, status, gin.H{"id": sub.ID})
}

// pushSubscriptionJSON is one subscription as GET /webpush/subscriptions shows it: the push
// service's origin, not the endpoint (a capability URL).
type pushSubscriptionJSON struct {
	ID        string `json:"id"`
	Origin    string `json:"origin"`
	CreatedAt string `json:"createdAt"`
}

// listPushSubscriptions is GET /webpush/subscriptions?userId=U[&token=JWT]: the user's
// subscriptions, oldest first (for the console; not in API.md).
func (h *Handlers) listPushSubscriptions(c *gin.Context) {
	userID, ok := h.pushUser(c)
	if !ok {
		return
	}
	subs, err := h.push.List(c.Request.Context(), userID)
	if err != nil {
		failFrom(c, err)
		return
	}
	out := make([]pushSubscriptionJSON, len(subs))
	for i, s := range subs {
		out[i] = pushSubscriptionJSON{ID: s.ID, Origin: s.Origin(), CreatedAt: module.FormatTime(s.CreatedAt)}
	}
	writeJSON(c, http.StatusOK, gin.H{"subscriptions": out})
}

// deletePushSubscription is DELETE /webpush/subscriptions/:id?userId=U[&token=JWT]: 204, or 404
// when the user has no such subscription.
func (h *Handlers) deletePushSubscription(c *gin.Context) {
	userID, ok := h.pushUser(c)
	if !ok {
		return
	}
	id := c.Param("id")
	if !validSubscriptionID(id) {
		failWith(c, errNoSubscription)
		return
	}
	found, err := h.push.Delete(c.Request.Context(), userID, id)
	switch {
	case err != nil:
		failFrom(c, err)
	case !found:
		failWith(c, errNoSubscription)
	default:
		c.Status(http.StatusNoContent)
	}
}

// validSubscriptionID accepts what the server hands out: 1-64 bytes of base64url.
func validSubscriptionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// webpushCORS lets a page on an origin listed in websocket.allowedOrigins (another site than
// the server's) call the /webpush routes with fetch: it answers with that origin in
// Access-Control-Allow-Origin. Same-origin pages need nothing; other origins get no CORS header,
// so their page cannot read the answer (and POST and DELETE are refused by refuseCrossSite).
// "*" in websocket.allowedOrigins is reflected the same way; no credentials are involved.
func (h *Handlers) webpushCORS(c *gin.Context) {
	if origin := c.GetHeader("Origin"); origin != "" && h.origins.Allowed(c.Request) {
		c.Header("Access-Control-Allow-Origin", origin)
		c.Header("Vary", "Origin")
	}
	c.Next()
}

// webpushPreflight answers a CORS preflight of a /webpush route: 204, with the methods and the
// Content-Type header allowed when the origin is (webpushCORS set Allow-Origin).
func (h *Handlers) webpushPreflight(c *gin.Context) {
	if c.Writer.Header().Get("Access-Control-Allow-Origin") != "" {
		c.Header("Access-Control-Allow-Methods", "GET, POST, DELETE")
		c.Header("Access-Control-Allow-Headers", "Content-Type")
		c.Header("Access-Control-Max-Age", "600")
	}
	c.Status(http.StatusNoContent)
}
