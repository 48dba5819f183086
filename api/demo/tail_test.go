package demo

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// tailEnv serves /tail with dir/app.log configured (not necessarily existing).
func tailEnv(t *testing.T, mutate func(*Options)) (*env, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.log")
	e := newEnv(t, func(o *Options) {
		o.TailFiles = []string{path}
		o.MaxMessageBytes = 64
		if mutate != nil {
			mutate(o)
		}
	})
	return e, path
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func expectLines(t *testing.T, c *websocket.Conn, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := readText(t, c); got != w {
			t.Fatalf("got line %q, want %q", got, w)
		}
	}
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func TestTailSendsLastLinesThenAppended(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, nil)
	appendFile(t, path, strings.Join(numbered("line", 1, 15), "\n")+"\n")
	c := e.dial("/tail?file=app.log")
	expectLines(t, c, numbered("line", 6, 15)...) // the last 10

	appendFile(t, path, "line 16\r\nline 17\n\n")
	expectLines(t, c, "line 16", "line 17", "")

	appendFile(t, path, "parti") // an unfinished line waits for its end
	appendFile(t, path, "al\n")
	expectLines(t, c, "partial")

	// A line over MaxMessageBytes (64) is cut; one with invalid UTF-8 is repaired.
	appendFile(t, path, strings.Repeat("x", 63)+"é"+strings.Repeat("y", 500)+"\n")
	appendFile(t, path, "bad \xff byte\n")
	expectLines(t, c, strings.Repeat("x", 63), "bad \uFFFD byte")
}

func TestTailLastLinesKeepsUnfinishedLine(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, func(o *Options) { o.TailLines = 2 })
	appendFile(t, path, "a\nb\nc\nunfini")
	c := e.dial("/tail?file=app.log")
	expectLines(t, c, "b", "c")
	appendFile(t, path, "shed\n")
	expectLines(t, c, "unfinished")
}

func TestTailHandlesTruncation(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, nil)
	appendFile(t, path, strings.Join(numbered("old", 1, 5), "\n")+"\n")
	c := e.dial("/tail?file=app.log")
	expectLines(t, c, numbered("old", 1, 5)...)
	// copytruncate: the same file, shorter than what was read.
	if err := os.WriteFile(path, []byte("new 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectLines(t, c, "new 1")
	appendFile(t, path, "new 2\n")
	expectLines(t, c, "new 2")
}

func TestTailFollowsRotation(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, nil)
	appendFile(t, path, "before\n")
	c := e.dial("/tail?file=app.log")
	expectLines(t, c, "before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	// The new file is longer than the old one: only the identity change reveals the rotation.
	appendFile(t, path, "rotated 1\nrotated 2 is longer\n")
	expectLines(t, c, "rotated 1", "rotated 2 is longer")
	appendFile(t, path, "rotated 3\n")
	expectLines(t, c, "rotated 3")
}

func TestTailWaitsForMissingFile(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, nil)
	c := e.dial("/tail?file=app.log")
	waitFor(t, "the connection to open", func() bool { return e.d.openConns() == 1 })
	appendFile(t, path, "first\nsecond\n") // a file that appears is new: all of it is sent
	expectLines(t, c, "first", "second")
}

func TestTailDuplicateBaseNameServesFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a", "app.log"), filepath.Join(dir, "b", "app.log")
	for _, p := range []string{first, second} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		appendFile(t, p, p+"\n")
	}
	e := newEnv(t, func(o *Options) { o.TailFiles = []string{first, second} })
	c := e.dial("/tail?file=app.log")
	expectLines(t, c, first)
}

func TestTailRefusesEverythingButListedNames(t *testing.T) {
	t.Parallel()
	e, path := tailEnv(t, nil)
	appendFile(t, path, "secret-free\n")
	cases := []struct {
		query  string
		status int
	}{
		{"", http.StatusBadRequest},
		{"?file=", http.StatusBadRequest},
		{"?other=app.log", http.StatusBadRequest},
		{"?file=../../etc/passwd", http.StatusBadRequest},
		{"?file=/etc/passwd", http.StatusBadRequest},
		{"?file=a/b", http.StatusBadRequest},
		{"?file=..", http.StatusBadRequest},
		{"?file=.", http.StatusBadRequest},
		{"?file=%2e%2e", http.StatusBadRequest},
		{"?file=%2e%2e%2fapp.log", http.StatusBadRequest},
		{"?file=..%5capp.log", http.StatusBadRequest},
		{"?file=app.log%00", http.StatusBadRequest},
		{"?file=app.log%0a", http.StatusBadRequest},
		{"?file=%ff", http.StatusBadRequest},
		{"?file=%zz", http.StatusBadRequest},
		{"?file=app.log&file=app.log", http.StatusBadRequest},
		{"?file=" + url.QueryEscape(path), http.StatusBadRequest}, // the configured path itself
		{"?file=" + strings.Repeat("a", 256), http.StatusBadRequest},
		{"?file=passwd", http.StatusForbidden},
		{"?file=other.log", http.StatusForbidden},
		{"?file=APP.LOG", http.StatusForbidden},
		{"?file=app.log.1", http.StatusForbidden},
		{"?file=%252e%252e", http.StatusForbidden}, // "%2e%2e" literally: no such name
	}
	for _, tc := range cases {
		// A plain GET and a WebSocket handshake get the same answer, before any upgrade.
		if status, body := e.get("/tail" + tc.query); status != tc.status || body.Error == "" {
			t.Errorf("GET /tail%s: %d %q, want %d with an error", tc.query, status, body.Error, tc.status)
		}
		_, status, body, err := e.dialE("/tail"+tc.query, nil)
		if err == nil || status != tc.status || body.Error == "" {
			t.Errorf("dial /tail%s: %v %d %q, want %d with an error", tc.query, err, status, body.Error, tc.status)
		}
	}
	if n := e.d.openConns(); n != 0 {
		t.Fatalf("%d connections opened by refused requests", n)
	}
}

func TestTailNames(t *testing.T) {
	t.Parallel()
	got := tailNames([]string{"", "/var/log/app.log", "logs/./web.log", "/other/app.log", "/", ".", "rel/../x.log"}, slog.New(slog.DiscardHandler))
	want := map[string]string{"app.log": "/var/log/app.log", "web.log": "logs/web.log", "x.log": "x.log"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
