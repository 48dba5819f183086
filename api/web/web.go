// Package web serves pushlane's browser side: the console (GET /), a single page to subscribe, publish
// and operate a server by hand, and pushlane.js (GET /pushlane.js), the dependency-free browser client the
// console itself uses. Every asset is embedded in the binary; nothing is fetched from elsewhere.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

//go:embed index.html console.css console.js pushlane.js pushlane-sw.js
var files embed.FS

// ContentSecurityPolicy is sent with the console: scripts and styles from this server only (no
// inline code, so an injected string cannot run), fetch and WebSocket to this server (ws:/wss: are
// listed because CSP level 2 browsers do not match WebSocket URLs against 'self'), no frames, no
// plugins, no forms posting elsewhere. The favicon is an inline data: image.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// asset is one embedded file with its precomputed headers.
type asset struct {
	name        string
	contentType string
	body        []byte
	etag        string
	page        bool // the HTML document: gets the CSP and framing headers
}

// Register adds the console and pushlane.js to r:
//
//	GET /                     the console (text/html)
//	GET /pushlane.js             the browser client (application/javascript)
//	GET /console/console.js   the console's script
//	GET /console/console.css  the console's style sheet
//	GET /pushlane-sw.js       the Web Push service worker (at the root, so that it may control
//	                          every page of the site)
//
// HEAD works on each. Responses carry an ETag and "Cache-Control: no-cache", so a browser
// revalidates (304) and never runs a stale console after an upgrade.
func Register(r gin.IRoutes) {
	routes := []struct {
		path string
		a    asset
	}{
		{"/", load("index.html", "text/html; charset=utf-8", true)},
		{"/pushlane.js", load("pushlane.js", "application/javascript; charset=utf-8", false)},
		{"/console/console.js", load("console.js", "application/javascript; charset=utf-8", false)},
		{"/console/console.css", load("console.css", "text/css; charset=utf-8", false)},
		{"/pushlane-sw.js", load("pushlane-sw.js", "application/javascript; charset=utf-8", false)},
	}
	for _, rt := range routes {
		h := rt.a.serve
		r.GET(rt.path, h)
		r.HEAD(rt.path, h)
	}
}

// load reads an embedded file; a missing one is a build mistake, caught by the package's tests.
func load(name, contentType string, page bool) asset {
	body, err := files.ReadFile(name)
	if err != nil {
		panic("web: embedded asset missing: " + name)
	}
	sum := sha256.Sum256(body)
	return asset{
		name:        name,
		contentType: contentType,
		body:        body,
		etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		page:        page,
	}
}

func (a asset) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Referrer-Policy", "no-referrer")
	if a.page {
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	}
	// ServeContent answers If-None-Match with 304, HEAD without a body, and Range requests.
	http.ServeContent(c.Writer, c.Request, a.name, time.Time{}, bytes.NewReader(a.body))
}
