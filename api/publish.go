package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"pushd/module"
)

type publishResult struct {
	UserID string `json:"userId"`
	ID     string `json:"id"`
	Online bool   `json:"online"`
}

type publishResponse struct {
	Results []publishResult `json:"results"`
}

// publish is POST /pushNews: validate, store durably, deliver, then answer.
func (h *Handlers) publish(c *gin.Context) {
	body, ok := h.readBody(c)
	if !ok {
		return
	}
	req, err := ParsePublish(body)
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	results, err := h.svc.Publish(c.Request.Context(), req.UserIDs, req.Data, req.TTL)
	if err != nil {
		failFrom(c, err)
		return
	}
	resp := publishResponse{Results: make([]publishResult, len(results))}
	for i, r := range results {
		resp.Results[i] = publishResult{UserID: r.UserID, ID: module.FormatID(r.ID), Online: r.Online}
	}
	c.JSON(http.StatusOK, resp)
}

// broadcast is POST /broadcast: live-only, to every connection on every node.
func (h *Handlers) broadcast(c *gin.Context) {
	body, ok := h.readBody(c)
	if !ok {
		return
	}
	data, err := ParseBroadcast(body)
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	n, err := h.svc.Broadcast(c.Request.Context(), data)
	if err != nil {
		failFrom(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"connections": n})
}

// readBody reads the body within websocket.maxMessageBytes, answering 413 or 400 itself.
func (h *Handlers) readBody(c *gin.Context) ([]byte, bool) {
	limit := h.cfg.WebSocket.MaxMessageBytes
	body, err := readBody(c.Writer, c.Request, limit)
	if errors.Is(err, errBodyTooLarge) {
		fail(c, http.StatusRequestEntityTooLarge, "body is larger than websocket.maxMessageBytes")
		return nil, false
	}
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return body, true
}
