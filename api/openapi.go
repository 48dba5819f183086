package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"pushlane/docs"
)

// serveOpenAPI is GET /openapi.yaml: docs/openapi.yaml as embedded in the binary.
func serveOpenAPI(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", docs.OpenAPI)
}
