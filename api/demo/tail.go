package demo

import (
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// tailNames maps the names clients may ask for (base names) to the configured paths of
// tail.files. The client never supplies a path: only these paths are ever opened.
func tailNames(paths []string, log *slog.Logger) map[string]string {
	names := make(map[string]string, len(paths))
	for _, p := range paths {
		if p == "" {
			continue
		}
		clean := filepath.Clean(p)
		name := filepath.Base(clean)
		if name == "." || name == ".." || name == string(filepath.Separator) {
			log.Warn("tail.files: entry names no file; ignored", "path", p)
			continue
		}
		if first, dup := names[name]; dup {
			log.Warn("tail.files: base name already used by an earlier entry; ignored", "path", p, "name", name, "kept", first)
			continue
		}
		names[name] = clean
	}
	return names
}

// TailName validates the file query value of GET /tail: given exactly once, a bare file name
// (no '/' or '\', not "." or "..", no control characters or NUL, UTF-8, at most 255 bytes). It
// says nothing about whether the name is configured; that is the 403 check.
func TailName(values url.Values) (string, string) {
	files, ok := values["file"]
	switch {
	case !ok || len(files) == 0:
		return "", "file is required: the name of one of the files in tail.files"
	case len(files) > 1:
		return "", "file must be given once"
	}
	name := files[0]
	switch {
	case name == "":
		return "", "file must not be empty"
	case len(name) > 255:
		return "", "file is longer than 255 bytes"
	case name == "." || name == "..", strings.ContainsAny(name, `/\`):
		return "", "file must be a bare file name as listed in tail.files, not a path"
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return "", "file contains invalid characters"
	}
	return name, ""
}

// tail is GET /tail?file=NAME: the last lines of the configured file NAME, then every line
// appended to it, one text frame per line.
func (d *Demos) tail(c *gin.Context) {
	// Not c.Query: it drops pairs it cannot decode, so "file=%zz&file=app.log" would pass.
	values, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		fail(c, http.StatusBadRequest, "malformed query string: "+err.Error())
		return
	}
	name, problem := TailName(values)
	if problem != "" {
		fail(c, http.StatusBadRequest, problem)
		return
	}
	path, listed := d.files[name]
	if !listed {
		fail(c, http.StatusForbidden, "file is not listed in tail.files")
		return
	}
	if !d.precheck(c) {
		return
	}
	o := d.opts
	d.serve(c, handler{
		name: "/tail",
		follow: func(cn *conn) {
			f := newFollower(path, o.MaxMessageBytes, d.log, func(line []byte) bool {
				return cn.push(outFrame{kind: websocket.TextMessage, data: line})
			})
			f.run(cn.done, o.TailPoll, o.TailLines)
		},
	})
}
