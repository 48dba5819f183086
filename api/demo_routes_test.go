package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// API.md "Demonstration routes": /echo, /chat and /tail exist only with demo.enabled; then they
// count against websocket.maxConns, need the API key when keys are set, and hold at most
// websocket.sendQueueBytes of queued frames per connection.

func (e *env) demoURL(path string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
}

func TestDemosAreOffByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", nil)
	for _, path := range []string{"/echo", "/chat", "/tail?file=x"} {
		_, resp, err := websocket.DefaultDialer.Dial(e.demoURL(path), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s with demo.enabled false: %v (%v), want 404", path, resp, err)
		}
	}
}

func TestDemosNeedTheAPIKey(t *testing.T) {
	t.Parallel()
	const key = "demo-key"
	e := newEnv(t, "memory", func(c *config.Config) {
		c.Demo.Enabled = true
		c.Auth.APIKeys = []string{key}
	})
	for _, path := range []string{"/echo", "/chat"} {
		if _, resp, err := websocket.DefaultDialer.Dial(e.demoURL(path), nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without the key: %v (%v), want 401", path, resp, err)
		}
		conn, _, err := websocket.DefaultDialer.Dial(e.demoURL(path+"?key="+key), nil)
		if err != nil {
			t.Fatalf("%s with ?key=: %v", path, err)
		}
		conn.Close()
		conn, _, err = websocket.DefaultDialer.Dial(e.demoURL(path), http.Header{"Authorization": {"Bearer " + key}})
		if err != nil {
			t.Fatalf("%s with the Authorization header: %v", path, err)
		}
		conn.Close()
	}
}

func TestDemosCountAgainstMaxConns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) {
		c.Demo.Enabled = true
		c.WebSocket.MaxConns = 2
	})
	e.dial("someone", -1)
	echo, _, err := websocket.DefaultDialer.Dial(e.demoURL("/echo"), nil)
	if err != nil {
		t.Fatalf("echo as the second connection: %v", err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(e.demoURL("/chat"), nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("chat as the third connection over maxConns=2: %v (%v), want 429", resp, err)
	}
	if _, resp, err := e.dialE("userId=another", nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a subscriber beside an echo connection over maxConns=2: %v (%v), want 429", resp, err)
	}
	// The slot comes back once the echo connection ends.
	echo.Close()
	waitFor(t, waitTimeout, "the echo connection's slot to be given back", func() bool {
		conn, _, err := e.dialE("userId=another", nil)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// TestEchoHeldToTheByteBound: clients that send large frames to /echo and never read its
// answers. Each connection may hold sendQueueBytes of echoed frames; then its reader waits (TCP
// pushes back on the client) instead of queueing more. (Before: 64 frames of up to 64 KB per
// connection, 4 MB.)
func TestEchoHeldToTheByteBound(t *testing.T) {
	const conns, frames = 12, 80
	e := newEnv(t, "memory", func(c *config.Config) {
		c.Demo.Enabled = true
		c.WebSocket.SendQueueBytes = 256 << 10
	}, smallSendBuffers)
	payload := []byte(strings.Repeat("e", e.cfg.WebSocket.MaxMessageBytes-16))
	before := heapNow()
	done := make(chan struct{})
	for range conns {
		conn, _, err := smallReadBufferDialer().Dial(e.demoURL("/echo"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		go func() {
			// Send until the server stops reading (its queue is full): the write then blocks.
			for range frames {
				_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if err := conn.WriteMessage(websocket.BinaryMessage, payload); err != nil {
					break
				}
			}
			<-done
		}()
	}
	held := growth(before, peakHeap(time.Second))
	close(done)
	bound := uint64(conns) * uint64(e.cfg.WebSocket.SendQueueBytes+e.cfg.WebSocket.MaxMessageBytes+boundSlack)
	t.Logf("heap held for %d echo connections that never read: %.1f MB (%.0f KB per connection; bound %.0f KB)",
		conns, float64(held)/(1<<20), float64(held)/conns/1024, float64(bound)/conns/1024)
	if held > bound {
		t.Fatalf("the server holds %d bytes for %d echo connections, over the bound of %d", held, conns, bound)
	}
}
