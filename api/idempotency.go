package api

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// Idempotent publish headers (API.md "Idempotent publish").
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
	maxIdempotencyKeyLen = 255
)

// idempotencyKeyHeader returns the request's Idempotency-Key ("" when absent). A header given
// more than once, empty, longer than 255 bytes or holding anything but printable ASCII
// (0x21-0x7E) is answered 400 here.
func idempotencyKeyHeader(c *gin.Context) (string, bool) {
	vs := c.Request.Header.Values(headerIdempotencyKey)
	switch {
	case len(vs) == 0:
		return "", true
	case len(vs) > 1 || !validIdempotencyKey(vs[0]):
		failWith(c, errBadIdempotency)
		return "", false
	}
	return vs[0], true
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// publishFingerprint is a digest of what a publish asks for, so that a key reused for another
// request is told apart (422) from a retry: the route, the ttl, the distinct user ids in order
// and the data as compacted by the parser. Whitespace and `"userId":"u"` against
// `"userIds":["u"]` do not change it, since they ask for the same thing. The parts are separated
// unambiguously: user ids cannot hold a newline, and the data comes last.
func publishFingerprint(route string, req PublishRequest) string {
	h := sha256.New()
	buf := make([]byte, 0, 64)
	buf = append(buf, route...)
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, int64(req.TTL), 10)
	buf = append(buf, '\n')
	h.Write(buf)
	for _, u := range req.UserIDs {
		h.Write([]byte(u))
		h.Write([]byte{'\n'})
	}
	h.Write([]byte{'\n'})
	h.Write(req.Data)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// idempotencyKey scopes the header to the caller: the digest of the API key it sent, or "" for
// everyone when keys are off.
func (h *Handlers) idempotencyKey(c *gin.Context, key string, req PublishRequest) module.IdempotencyKey {
	return module.IdempotencyKey{
		Scope:       c.GetString(ctxKeyScope),
		Key:         key,
		Fingerprint: publishFingerprint(c.FullPath(), req),
		Window:      h.cfg.Publish.IdempotencyWindow,
	}
}
