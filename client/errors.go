package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinels for the statuses the API documents; an *Error matches the one of its status with
// errors.Is.
var (
	ErrBadRequest      = &statusError{http.StatusBadRequest}            // 400: malformed request, bad id
	ErrUnauthorized    = &statusError{http.StatusUnauthorized}          // 401: missing or wrong API key or token
	ErrForbidden       = &statusError{http.StatusForbidden}             // 403: origin not allowed
	ErrNotFound        = &statusError{http.StatusNotFound}              // 404: no such user, message or route
	ErrConflict        = &statusError{http.StatusConflict}              // 409: the same Idempotency-Key is in progress
	ErrTooLarge        = &statusError{http.StatusRequestEntityTooLarge} // 413: body over websocket.maxMessageBytes
	ErrUnprocessable   = &statusError{http.StatusUnprocessableEntity}   // 422: an Idempotency-Key reused with another body
	ErrTooManyRequests = &statusError{http.StatusTooManyRequests}       // 429: a rate or connection limit
	ErrUnavailable     = &statusError{http.StatusServiceUnavailable}    // 503: store unavailable or shutting down
)

// statusError is the sentinel of one status.
type statusError struct{ status int }

func (s *statusError) Error() string {
	return fmt.Sprintf("%d %s", s.status, http.StatusText(s.status))
}

// Error is an answer of the server with a status other than 2xx.
type Error struct {
	StatusCode int           // the HTTP status
	Message    string        // the server's reason: the "error" field of its JSON body
	Method     string        // of the request
	Path       string        // of the request, without the query (which may hold a token)
	RetryAfter time.Duration // from a Retry-After header in seconds (429, 503), else 0
}

func (e *Error) Error() string {
	return fmt.Sprintf("pushlane: %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and the like true for an *Error of that status.
func (e *Error) Is(target error) bool {
	s, ok := target.(*statusError)
	return ok && s.status == e.StatusCode
}

func newError(method, path string, resp *http.Response, body []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, Message: reason(body), Method: method, Path: path}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// reason is the text of an {"error": "..."} body, or the body itself (shortened) when it has
// another shape (a proxy's HTML page, say).
func reason(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
