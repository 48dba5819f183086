package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// deleteClient is DELETE /deleteClient/:id[?purge=true].
func (h *Handlers) deleteClient(c *gin.Context) {
	userID, ok := userIDParam(c, "id")
	if !ok {
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
		if purge {
			failWith(c, errUserUnknown)
		} else {
			failWith(c, errUserNotOnline)
		}
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
	userID, ok := userIDParam(c, "id")
	if !ok {
		return
	}
	d, err := h.svc.User(c.Request.Context(), userID)
	if err != nil {
		failFrom(c, err)
		return
	}
	if len(d.Connections) == 0 && d.Stats.Stored == 0 {
		failWith(c, errUserUnknown)
		return
	}
	conns := make([]connJSON, len(d.Connections))
	for i, cn := range d.Connections {
		conns[i] = connJSON{ID: cn.ID, RemoteAddr: cn.RemoteAddr, ConnectedAt: module.FormatTime(cn.ConnectedAt), MessagesSent: cn.MessagesSent}
	}
	c.JSON(http.StatusOK, gin.H{"userId": userID, "connections": conns, "pending": d.Stats.Pending})
}

// connJSON is one connection of GET /clients/:id; connectedAt is RFC 3339 with milliseconds in
// UTC, like every timestamp of the API (createdAt).
type connJSON struct {
	ID           string `json:"id"`
	RemoteAddr   string `json:"remoteAddr"`
	ConnectedAt  string `json:"connectedAt"`
	MessagesSent int64  `json:"messagesSent"`
}
