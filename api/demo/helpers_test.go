package demo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

// waitTimeout bounds every wait of these tests; nothing waits without a deadline.
const waitTimeout = 5 * time.Second

const evilOrigin = "http://evil.example"

type env struct {
	t   *testing.T
	d   *Demos
	srv *httptest.Server
}

// newEnv serves the demos on a real listener. Cleanups run in reverse: the test's client
// connections close first, then Demos.Close, then the listener.
func newEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	o := Options{
		MaxMessageBytes: 4096,
		WriteWait:       time.Second,
		PingInterval:    time.Second,
		PongWait:        3 * time.Second,
		TailPoll:        10 * time.Millisecond,
		CheckOrigin:     func(r *http.Request) bool { return r.Header.Get("Origin") != evilOrigin },
		Log:             slog.New(slog.DiscardHandler),
	}
	if mutate != nil {
		mutate(&o)
	}
	d := New(o)
	r := gin.New()
	d.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(d.Close)
	return &env{t: t, d: d, srv: srv}
}

func (e *env) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
}

// dialE opens a WebSocket; on a refused handshake it returns the HTTP status and error body.
func (e *env) dialE(path string, header http.Header) (*websocket.Conn, int, errorBody, error) {
	return e.dialWith(websocket.Dialer{HandshakeTimeout: waitTimeout}, path, header)
}

func (e *env) dialWith(dialer websocket.Dialer, path string, header http.Header) (*websocket.Conn, int, errorBody, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := dialer.DialContext(ctx, e.wsURL(path), header)
	var body errorBody
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if err != nil {
			b, _ := io.ReadAll(resp.Body)
			_ = json.Unmarshal(b, &body)
		}
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, status, body, err
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c, status, body, nil
}

func (e *env) dial(path string) *websocket.Conn {
	e.t.Helper()
	c, status, body, err := e.dialE(path, nil)
	if err != nil {
		e.t.Fatalf("dial %s: %v (status %d, %q)", path, err, status, body.Error)
	}
	return c
}

// get sends a plain HTTP GET and decodes the JSON error body.
func (e *env) get(pathAndQuery string) (int, errorBody) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+pathAndQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body errorBody
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("GET %s: content type %q, want JSON", pathAndQuery, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("GET %s: body is not JSON: %v", pathAndQuery, err)
	}
	return resp.StatusCode, body
}

// openConns counts the connections Demos holds.
func (d *Demos) openConns() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

func read(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	kind, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return kind, data
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	kind, data := read(t, c)
	if kind != websocket.TextMessage {
		t.Fatalf("got frame kind %d, want text", kind)
	}
	return string(data)
}

func send(t *testing.T, c *websocket.Conn, kind int, data []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := c.WriteMessage(kind, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectClose reads (dropping data frames) until the connection ends and returns the close code;
// -1 when it ended without a close frame.
func expectClose(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", waitTimeout)
		}
		return -1
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}
