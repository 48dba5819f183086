// Package docs holds the documents the server serves itself: the OpenAPI description of its HTTP
// API (GET /openapi.yaml).
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, embedded at build time.
//
//go:embed openapi.yaml
var OpenAPI []byte
