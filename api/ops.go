package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// deleteClient is DELETE /deleteClient/:id[?purge=true].
func (h *Handlers) deleteClient(c *gin.Context) {
	userID := c.Param("id")
	if !module.ValidUserID(userID) {
		fail(c, http.StatusBadRequest, "userId: "+module.ErrBadUserID.Error())
		return
	}
	purge := false
	if v, ok := c.GetQuery("purge"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(c, http.StatusBadRequest, "purge must be true or false")
			return
		}
		purge = b
	}
	res, err := h.svc.Kick(c.Request.Context(), userID, purge)
	if err != nil {
		failFrom(c, err)
		return
	}
	if res.Closed == 0 && res.Purged == 0 {
		msg := "user has no live connection"
		if purge {
			msg += " and no stored message"
		}
		fail(c, http.StatusNotFound, msg)
		return
	}
	body := gin.H{"userId": userID, "closed": res.Closed}
	if purge {
		body["purged"] = res.Purged
	}
	c.JSON(http.StatusOK, body)
}

const (
	defaultClientsLimit = 100
	maxClientsLimit     = 1000
)

// listClients is GET /clients?limit=&offset=.
func (h *Handlers) listClients(c *gin.Context) {
	limit, ok := pageParam(c, "limit", defaultClientsLimit)
	if !ok {
		return
	}
	offset, ok := pageParam(c, "offset", 0)
	if !ok {
		return
	}
	limit = min(limit, maxClientsLimit)
	users, err := h.svc.Users(c.Request.Context())
	if err != nil {
		failFrom(c, err)
		return
	}
	total := len(users)
	page := []module.UserConns{}
	if offset < total {
		page = users[offset:min(total, offset+limit)]
	}
	c.JSON(http.StatusOK, gin.H{"users": page, "total": total})
}

// pageParam parses a non-negative integer query parameter; values too large for an int are
// capped (limit is capped to 1000 anyway, and such an offset is past the end).
func pageParam(c *gin.Context, name string, def int) (int, bool) {
	v, ok := c.GetQuery(name)
	if !ok {
		return def, true
	}
	if v == "" {
		fail(c, http.StatusBadRequest, name+" must be a non-negative integer")
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			fail(c, http.StatusBadRequest, name+" must be a non-negative integer")
			return 0, false
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > 1<<30 {
		n = 1 << 30
	}
	return n, true
}

// getClient is GET /clients/:id.
func (h *Handlers) getClient(c *gin.Context) {
	userID := c.Param("id")
	if !module.ValidUserID(userID) {
		fail(c, http.StatusBadRequest, "userId: "+module.ErrBadUserID.Error())
		return
	}
	d, err := h.svc.User(c.Request.Context(), userID)
	if err != nil {
		failFrom(c, err)
		return
	}
	if len(d.Connections) == 0 && d.Stats.Stored == 0 {
		fail(c, http.StatusNotFound, "user has no live connection and no stored message")
		return
	}
	c.JSON(http.StatusOK, gin.H{"userId": userID, "connections": d.Connections, "pending": d.Stats.Pending})
}

// healthz is GET /healthz: 200 when the store and broker answer, 503 naming the failing part.
func (h *Handlers) healthz(c *gin.Context) {
	storeErr, brokerErr := h.svc.Health(c.Request.Context())
	body := gin.H{"status": "ok", "store": "ok", "broker": "ok"}
	status := http.StatusOK
	if storeErr != nil {
		body["store"], body["status"], status = storeErr.Error(), "unavailable", http.StatusServiceUnavailable
	}
	if brokerErr != nil {
		body["broker"], body["status"], status = brokerErr.Error(), "unavailable", http.StatusServiceUnavailable
	}
	c.JSON(status, body)
}
