package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// publicError is an error answer whose text is fixed: all a client ever reads about a failure
// that is not its own input. The cause (an address, a path, a driver's message) goes to the log
// (failCause), never into the body. Every value is predeclared below, so the whole set can be
// listed for operators (docs/operating.md) and checked by a test.
type publicError struct {
	status int
	msg    string
}

func (e *publicError) Error() string { return e.msg }

// The public errors that do not come from validating the request's own input. Validation
// problems (400) are described one by one by the parsers, in fixed texts that name the field.
var (
	errNoRoute          = &publicError{http.StatusNotFound, "no such route"}
	errNoMethod         = &publicError{http.StatusMethodNotAllowed, "method not allowed on this route"}
	errMissingAPIKey    = &publicError{http.StatusUnauthorized, "missing API key: send Authorization: Bearer <key>"}
	errBadAPIKey        = &publicError{http.StatusUnauthorized, "invalid API key"}
	errCrossSite        = &publicError{http.StatusForbidden, "cross-site request refused: origin not allowed (websocket.allowedOrigins)"}
	errHostNotAllowed   = &publicError{http.StatusForbidden, "host not allowed: a server without credentials on loopback answers loopback names only (server.allowedHosts)"}
	errBodyTooLarge413  = &publicError{http.StatusRequestEntityTooLarge, "body is larger than websocket.maxMessageBytes"}
	errUserUnknown      = &publicError{http.StatusNotFound, "user has no live connection and no stored message"}
	errUserNotOnline    = &publicError{http.StatusNotFound, "user has no live connection"}
	errMessageNotFound  = &publicError{http.StatusNotFound, "message not stored (never was, expired, trimmed or purged)"}
	errBadIdempotency   = &publicError{http.StatusBadRequest, "Idempotency-Key must be given once, 1 to 255 characters of printable ASCII (0x21-0x7E)"}
	errIdemInProgress   = &publicError{http.StatusConflict, "a request with this Idempotency-Key is still being processed"}
	errIdemMismatch     = &publicError{http.StatusUnprocessableEntity, "this Idempotency-Key was used with a different request"}
	errRateLimited      = &publicError{http.StatusTooManyRequests, "publish rate limit exceeded (limits.publishRate)"}
	errTooManyConns     = &publicError{http.StatusTooManyRequests, "too many connections on this server (websocket.maxConns)"}
	errTooManyUserConns = &publicError{http.StatusTooManyRequests, "too many connections for this user (websocket.maxConnsPerUser)"}
	errInternal         = &publicError{http.StatusInternalServerError, "internal error"}
	errUnavailable      = &publicError{http.StatusServiceUnavailable, "service unavailable: try again (a publish with the same Idempotency-Key is stored once)"}
	errShuttingDown     = &publicError{http.StatusServiceUnavailable, "server is shutting down"}
	errWebPushOff       = &publicError{http.StatusNotFound, "Web Push is off (webpush.enabled)"}
	errNoSubscription   = &publicError{http.StatusNotFound, "user has no such push subscription"}
)

// publicErrors lists every predeclared public error, for the documentation test.
var publicErrors = []*publicError{
	errNoRoute, errNoMethod, errMissingAPIKey, errBadAPIKey, errCrossSite, errHostNotAllowed,
	errBodyTooLarge413, errUserUnknown, errUserNotOnline, errMessageNotFound,
	errBadIdempotency, errIdemInProgress, errIdemMismatch, errRateLimited, errTooManyConns,
	errTooManyUserConns, errInternal, errUnavailable, errShuttingDown, errWebPushOff, errNoSubscription,
}

// errorBody is the one shape of every error response: {"error": "<reason>"}.
type errorBody struct {
	Error string `json:"error"`
}

// fail answers with status and {"error": msg} and stops the handler chain. msg is a fixed text
// or the description of a problem with the request's own input, never an internal error.
func fail(c *gin.Context, status int, msg string) {
	c.Abort()
	c.Data(status, jsonContentType, errorJSON(msg))
}

// failWith answers with a predeclared public error.
func failWith(c *gin.Context, e *publicError) { fail(c, e.status, e.msg) }

// failCause answers with a predeclared public error and keeps cause for the request log
// (observe writes it with slog).
func failCause(c *gin.Context, e *publicError, cause error) {
	_ = c.Error(cause)
	failWith(c, e)
}

// failFrom maps a core error to its public answer: unavailable parts are 503 (nothing was
// accepted, or not known to be), limits 429, anything unexpected 500. The core's text goes to
// the log only.
func failFrom(c *gin.Context, err error) {
	switch {
	case errors.Is(err, module.ErrTooManyConns):
		failWith(c, errTooManyConns)
	case errors.Is(err, module.ErrTooManyUserConns):
		failWith(c, errTooManyUserConns)
	case errors.Is(err, module.ErrShuttingDown):
		failWith(c, errShuttingDown)
	case errors.Is(err, module.ErrIdempotencyInProgress):
		failWith(c, errIdemInProgress)
	case errors.Is(err, module.ErrIdempotencyMismatch):
		failWith(c, errIdemMismatch)
	case errors.Is(err, module.ErrNotFound):
		failWith(c, errMessageNotFound)
	case errors.Is(err, module.ErrUnavailable), errors.Is(err, module.ErrClosed):
		failCause(c, errUnavailable, err)
	default:
		failCause(c, errInternal, err)
	}
}

// errorJSON renders {"error": msg} with a trailing newline. HTML is not escaped: the body is
// JSON for programs, and "<key>" must read as "<key>", not "\u003ckey\u003e".
func errorJSON(msg string) []byte {
	b, err := marshalNoEscape(errorBody{Error: msg})
	if err != nil { // a struct of one string always encodes
		return []byte(`{"error":"internal error"}` + "\n")
	}
	return b
}

// marshalNoEscape is json.Marshal without HTML escaping (and with a trailing newline).
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON answers status with v encoded without HTML escaping: data published as "<b>" is
// returned as "<b>", byte for byte.
func writeJSON(c *gin.Context, status int, v any) {
	b, err := marshalNoEscape(v)
	if err != nil {
		failCause(c, errInternal, err)
		return
	}
	c.Data(status, jsonContentType, b)
}

// writeJSONError writes {"error": msg} outside Gin (the upgrader's error hook).
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(status)
	_, _ = w.Write(errorJSON(msg))
}
