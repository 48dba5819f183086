package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"pushlane/module"
)

// errorBody is the one shape of every error response: {"error": "<reason>"}.
type errorBody struct {
	Error string `json:"error"`
}

// fail answers with status and {"error": msg} and stops the handler chain.
func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

// failFrom maps a core error to its status: unavailable parts are 503 (nothing was accepted),
// limits 429, anything unexpected 500.
func failFrom(c *gin.Context, err error) {
	switch {
	case errors.Is(err, module.ErrTooManyConns), errors.Is(err, module.ErrTooManyUserConns):
		fail(c, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, module.ErrShuttingDown):
		fail(c, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, module.ErrUnavailable), errors.Is(err, module.ErrClosed):
		_ = c.Error(err)
		fail(c, http.StatusServiceUnavailable, "service unavailable: "+err.Error())
	default:
		_ = c.Error(err)
		fail(c, http.StatusInternalServerError, "internal error")
	}
}
