package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// publish is POST /pushNews: validate, store durably, deliver, then answer.
// With an Idempotency-Key, a retry of a request that was stored answers the first answer again
// (header Idempotent-Replayed: true) and stores and delivers nothing.
func (h *Handlers) publish(c *gin.Context) {
	idemKey, ok := idempotencyKeyHeader(c)
	if !ok {
		return
	}
	body, ok := h.readBody(c)
	if !ok {
		return
	}
	req, err := ParsePublish(body)
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	if idemKey != "" {
		out, replayed, err := h.svc.PublishOnce(c.Request.Context(), h.idempotencyKey(c, idemKey, req),
			req.UserIDs, req.Data, req.TTL, renderPublishResponse)
		if err != nil {
			failFrom(c, err)
			return
		}
		if replayed {
			c.Header(headerReplayed, "true")
		}
		c.Data(http.StatusOK, jsonContentType, out)
		return
	}
	results, err := h.svc.Publish(c.Request.Context(), req.UserIDs, req.Data, req.TTL)
	if err != nil {
		failFrom(c, err)
		return
	}
	c.Data(http.StatusOK, jsonContentType, renderPublishResponse(results))
}

// renderPublishResponse is the 200 body of a publish.
func renderPublishResponse(results []module.PublishResult) []byte {
	return appendPublishResponse(make([]byte, 0, 32+48*len(results)), results)
}

const jsonContentType = "application/json; charset=utf-8"

// appendPublishResponse writes {"results":[{"userId":"U","id":"42","online":true},...]} by hand:
// it answers every publish, and user ids need no escaping (module.ValidUserID's alphabet).
func appendPublishResponse(dst []byte, results []module.PublishResult) []byte {
	dst = append(dst, `{"results":[`...)
	for i, r := range results {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"userId":"`...)
		dst = append(dst, r.UserID...)
		dst = append(dst, `","id":"`...)
		dst = strconv.AppendUint(dst, r.ID, 10)
		dst = append(dst, `","online":`...)
		dst = strconv.AppendBool(dst, r.Online)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
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
		failWith(c, errBodyTooLarge413)
		return nil, false
	}
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return body, true
}
