package demo

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// TestCloseEndsEveryConnectionAndGoroutine opens connections on every endpoint, calls Close and
// checks that each peer got 1001, new connections are refused, and no goroutine is left.
// Not parallel: it looks at every goroutine of the process (parallel tests are parked meanwhile).
func TestCloseEndsEveryConnectionAndGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	path := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, path, "one\ntwo\n")
	e := newEnv(t, func(o *Options) { o.TailFiles = []string{path} })

	conns := []*websocket.Conn{e.dial("/echo"), e.dial("/tail?file=app.log")}
	conns = append(conns, dialMembers(t, e, 3)...)
	waitFor(t, "5 open connections", func() bool { return e.d.openConns() == len(conns) })

	// Each peer reads (as a live client does), so it answers the close frame at once.
	codes := make(chan int, len(conns))
	for _, c := range conns {
		go func() { codes <- expectCloseCode(c) }()
	}
	e.d.Close()
	for range conns {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}
	if n := e.d.openConns(); n != 0 {
		t.Fatalf("%d connections left after Close", n)
	}
	e.d.Close() // idempotent
	if _, status, body, err := e.dialE("/echo", nil); err == nil || status != http.StatusServiceUnavailable || body.Error == "" {
		t.Fatalf("dial after Close: %v %d %q, want 503", err, status, body.Error)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	e.srv.Close()
	goleak.VerifyNone(t, before)
}

// expectCloseCode is expectClose for another goroutine: no t.Fatal.
func expectCloseCode(c *websocket.Conn) int {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code
			}
			return -1
		}
	}
}
