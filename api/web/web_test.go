package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func newEngine() *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	Register(r)
	return r
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRoutesServeAssets(t *testing.T) {
	t.Parallel()
	r := newEngine()
	cases := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>pushlane console</title>"},
		{"/pushlane.js", "application/javascript; charset=utf-8", "class PushClient"},
		{"/console/console.js", "application/javascript; charset=utf-8", "new PushClient("},
		{"/console/console.css", "text/css; charset=utf-8", ".badge"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			rec := get(t, r, http.MethodGet, tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: status %d", tc.path, rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body of %s does not contain %q", tc.path, tc.contains)
			}
			if rec.Header().Get("ETag") == "" || rec.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("want an ETag and Cache-Control: no-cache, got %v", rec.Header())
			}

			head := get(t, r, http.MethodHead, tc.path, nil)
			if head.Code != http.StatusOK || head.Body.Len() != 0 {
				t.Errorf("HEAD %s: status %d, %d body bytes", tc.path, head.Code, head.Body.Len())
			}
		})
	}
}

func TestConsoleSecurityHeaders(t *testing.T) {
	t.Parallel()
	rec := get(t, newEngine(), http.MethodGet, "/", nil)
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"connect-src 'self' ws: wss:",
		"frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if got := rec.Header().Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q", got)
	}
	if got := rec.Header().Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy = %q", got)
	}
}

// The CSP forbids inline code, so the page must not contain any: an inline script or style or
// an on* handler attribute would silently not run in a browser.
func TestConsoleHasNoInlineCode(t *testing.T) {
	t.Parallel()
	body := get(t, newEngine(), http.MethodGet, "/", nil).Body.String()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script(\s[^>]*)?>[^<\s]`), // a script element with content
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\son[a-z]+\s*=`),
		regexp.MustCompile(`\sstyle\s*=`),
		regexp.MustCompile(`https?://(?:[^"'\s]*\.)?(?:cdn|googleapis|gstatic|unpkg|jsdelivr)`),
	} {
		if m := re.FindString(body); m != "" {
			t.Errorf("index.html contains %q, which the CSP or the no-CDN rule forbids", m)
		}
	}
	for _, src := range []string{`<script type="module" src="console/console.js">`, `href="console/console.css"`} {
		if !strings.Contains(body, src) {
			t.Errorf("index.html does not reference %s", src)
		}
	}
}

// Nothing in the console may write HTML from strings: message data is untrusted.
func TestConsoleScriptDoesNotWriteHTML(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/console/console.js", "/pushlane.js"} {
		body := get(t, newEngine(), http.MethodGet, path, nil).Body.String()
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s uses %s", path, bad)
			}
		}
	}
}

func TestConditionalGet(t *testing.T) {
	t.Parallel()
	r := newEngine()
	first := get(t, r, http.MethodGet, "/pushlane.js", nil)
	etag := first.Header().Get("ETag")
	again := get(t, r, http.MethodGet, "/pushlane.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match %s: status %d, want 304", etag, again.Code)
	}
}

func TestOtherRoutesUntouched(t *testing.T) {
	t.Parallel()
	r := newEngine()
	for _, path := range []string{"/console/", "/console/missing.js", "/index.html", "/pushlane.js/x"} {
		if rec := get(t, r, http.MethodGet, path, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, rec.Code)
		}
	}
	if rec := get(t, r, http.MethodPost, "/", nil); rec.Code == http.StatusOK {
		t.Errorf("POST / answered 200")
	}
}

// The server serves the npm package's file byte for byte (issue 14: one client, served and
// packaged), readable by pages of any origin, which import it as a module with CORS.
func TestServedClientIsThePackageFile(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join("pushlane", "pushlane.js"))
	if err != nil {
		t.Fatal(err)
	}
	rec := get(t, newEngine(), http.MethodGet, "/pushlane.js", map[string]string{"Origin": "https://app.example"})
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("GET /pushlane.js (%d bytes) differs from pushlane/pushlane.js (%d bytes)", rec.Body.Len(), len(want))
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
	}
	if got := get(t, newEngine(), http.MethodGet, "/", nil).Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("the console page carries Access-Control-Allow-Origin %q; only pushlane.js may", got)
	}
}

// package.json names files that exist, and its entry points are the served file and the types.
func TestPackageManifest(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("pushlane", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Type    string `json:"type"`
		Types   string `json:"types"`
		Exports map[string]json.RawMessage
		Files   []string `json:"files"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Name != "pushlane" || pkg.Type != "module" || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(pkg.Version) {
		t.Errorf("name %q, type %q, version %q: want pushlane, module, x.y.z", pkg.Name, pkg.Type, pkg.Version)
	}
	var root struct{ Types, Default string }
	if err := json.Unmarshal(pkg.Exports["."], &root); err != nil {
		t.Fatalf(`exports["."]: %v`, err)
	}
	if root.Default != "./pushlane.js" || root.Types != "./pushlane.d.ts" || pkg.Types != "./pushlane.d.ts" {
		t.Errorf(`exports["."] = %+v, types %q`, root, pkg.Types)
	}
	for _, f := range pkg.Files {
		if _, err := os.Stat(filepath.Join("pushlane", f)); err != nil {
			t.Errorf("files lists %s: %v", f, err)
		}
	}
}
