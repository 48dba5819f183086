package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

const (
	defaultMessagesLimit = 100
	maxMessagesLimit     = 1000
)

// messageJSON is one message of GET /messages (API.md "Message status"). Timestamps are RFC 3339
// with milliseconds in UTC; sentAt, ackedAt and pushedAt appear once known. data is the stored
// JSON value, byte for byte.
type messageJSON struct {
	UserID    string          `json:"userId"`
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	CreatedAt string          `json:"createdAt"`
	ExpiresAt string          `json:"expiresAt"`
	SentAt    string          `json:"sentAt,omitempty"`
	AckedAt   string          `json:"ackedAt,omitempty"`
	PushedAt  string          `json:"pushedAt,omitempty"`
	Data      json.RawMessage `json:"data"`
}

func newMessageJSON(m module.MessageStatus) messageJSON {
	return messageJSON{
		UserID:    m.UserID,
		ID:        module.FormatID(m.ID),
		Status:    m.Status(),
		CreatedAt: module.FormatTime(m.CreatedAt),
		ExpiresAt: module.FormatTime(m.ExpiresAt),
		SentAt:    timeIfKnown(m.SentAt),
		AckedAt:   timeIfKnown(m.AckedAt),
		PushedAt:  timeIfKnown(m.PushedAt),
		Data:      m.Data,
	}
}

// timeIfKnown formats t, or gives "" (the field is left out) when t is zero.
func timeIfKnown(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return module.FormatTime(t)
}

// getMessage is GET /messages/:userId/:id: one stored message with its status; 404 when it is
// not stored.
func (h *Handlers) getMessage(c *gin.Context) {
	userID, ok := userIDParam(c, "userId")
	if !ok {
		return
	}
	id, err := module.ParseID(c.Param("id"))
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	m, err := h.svc.MessageStatus(c.Request.Context(), userID, id)
	if err != nil {
		failFrom(c, err)
		return
	}
	writeJSON(c, http.StatusOK, newMessageJSON(m))
}

// messagesJSON is GET /messages/:userId's answer.
type messagesJSON struct {
	Messages []messageJSON `json:"messages"`
	Epoch    string        `json:"epoch"`
}

// listMessages is GET /messages/:userId?since=&limit=: the user's stored messages above since,
// oldest first, with the store's epoch. An unknown user has none.
func (h *Handlers) listMessages(c *gin.Context) {
	userID, ok := userIDParam(c, "userId")
	if !ok {
		return
	}
	var since uint64
	if v, ok := singleQuery(c, "since"); !ok {
		return
	} else if v != nil {
		n, err := module.ParseSince(*v)
		if err != nil {
			fail(c, http.StatusBadRequest, err.Error())
			return
		}
		since = n
	}
	limit, ok := pageParam(c, "limit", defaultMessagesLimit)
	if !ok {
		return
	}
	msgs, epoch, err := h.svc.MessageStatuses(c.Request.Context(), userID, since, min(limit, maxMessagesLimit))
	if err != nil {
		failFrom(c, err)
		return
	}
	out := messagesJSON{Messages: make([]messageJSON, len(msgs)), Epoch: epoch}
	for i, m := range msgs {
		out.Messages[i] = newMessageJSON(m)
	}
	writeJSON(c, http.StatusOK, out)
}

// userIDParam reads and validates a userId path parameter, answering 400 itself.
func userIDParam(c *gin.Context, name string) (string, bool) {
	userID := c.Param(name)
	if !module.ValidUserID(userID) {
		fail(c, http.StatusBadRequest, "userId: "+module.ErrBadUserID.Error())
		return "", false
	}
	return userID, true
}

// singleQuery returns a query parameter given at most once (nil when absent); given twice is a
// 400, answered here.
func singleQuery(c *gin.Context, name string) (*string, bool) {
	vs, ok := c.GetQueryArray(name)
	switch {
	case !ok:
		return nil, true
	case len(vs) > 1:
		fail(c, http.StatusBadRequest, name+" must be given once")
		return nil, false
	}
	return &vs[0], true
}
