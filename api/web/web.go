// Package web serves pushlane's browser side: the console (GET /), a single page to subscribe, publish
// and operate a server by hand, and pushlane.js (GET /pushlane.js), the dependency-free browser client the
// console itself uses. Every asset is embedded in the binary; nothing is fetched from elsewhere.
//
// pushlane.js lives in pushlane/, which is also the npm package "pushlane" (package.json,
// pushlane.d.ts): the server serves the package's file byte for byte.
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

//go:embed index.html console.css console.js console-webpush.js pushlane/pushlane.js pushlane-sw.js
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
	public      bool // readable by pages of any origin (CORS): the browser client, imported as a module
}

// Register adds the console and pushlane.js to r:
//
//	GET /                     the console (text/html)
//	GET /pushlane.js          the browser client, an ES module (application/javascript)
//	GET /console/console.js   the console's script
//	GET /console/console.css  the console's style sheet
//	GET /console/webpush.js   the console's Web Push card
//	GET /pushlane-sw.js       the Web Push service worker (at the root, so that it may control
//	                          every page of the site)
//
// HEAD works on each. Responses carry an ETag and "Cache-Control: no-cache", so a browser
// revalidates (304) and never runs a stale console after an upgrade. pushlane.js carries
// "Access-Control-Allow-Origin: *": a page on another origin imports it as a module, and module
// scripts are fetched with CORS. It is public code, fetched without credentials.
func Register(r gin.IRoutes) {
	routes := []struct {
		path string
		a    asset
	}{
		{"/", load("index.html", "text/html; charset=utf-8", true)},
		{"/pushlane.js", loadPublic("pushlane/pushlane.js", "application/javascript; charset=utf-8")},
		{"/console/console.js", load("console.js", "application/javascript; charset=utf-8", false)},
		{"/console/console.css", load("console.css", "text/css; charset=utf-8", false)},
		{"/console/webpush.js", load("console-webpush.js", "application/javascript; charset=utf-8", false)},
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

// loadPublic is load for an asset any origin may read.
func loadPublic(name, contentType string) asset {
	a := load(name, contentType, false)
	a.public = true
	return a
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
	if a.public {
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	}
	// ServeContent answers If-None-Match with 304, HEAD without a body, and Range requests.
	http.ServeContent(c.Writer, c.Request, a.name, time.Time{}, bytes.NewReader(a.body))
}
