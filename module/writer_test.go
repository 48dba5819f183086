package module_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/module"
)

// After a broadcast a connection's writer stays parked for one to two heartbeat rounds, so a
// stream of broadcasts does not start a goroutine per frame; then it exits, and an idle
// connection holds no writer again. These tests watch the server's goroutines from outside:
// the clients' readers are constant, so every change is a server writer.

const writerConns = 20

// readAll starts a reader per connection that counts frames (it answers pings as it reads) until
// the connection ends; the count of each connection is returned.
func readAll(conns []*websocket.Conn) []*atomic.Int64 {
	counts := make([]*atomic.Int64, len(conns))
	for i, conn := range conns {
		counts[i] = new(atomic.Int64)
		_ = conn.SetReadDeadline(time.Time{})
		go func(n *atomic.Int64) {
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
				n.Add(1)
			}
		}(counts[i])
	}
	return counts
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialMany(t *testing.T, hh *handshakeHub, n int) []*websocket.Conn {
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = hh.dial(t, "w"+strings.Repeat("x", i))
	}
	waitFor(t, "all registered", 5*time.Second, func() bool { return registered(hh.hub) == n })
	return conns
}

func allAtLeast(counts []*atomic.Int64, n int64) func() bool {
	return func() bool {
		for _, c := range counts {
			if c.Load() < n {
				return false
			}
		}
		return true
	}
}

func TestBroadcastWritersParkThenRetire(t *testing.T) {
	// Rounds of 200 ms: a parked writer retires 200-400 ms after its last broadcast. Pongs come
	// back from the readers, so nobody times out.
	hh := newHandshakeHubWith(t, module.HubConfig{PingInterval: 1600 * time.Millisecond}, func(*module.Hub, string) {})
	conns := dialMany(t, hh, writerConns)
	counts := readAll(conns)
	time.Sleep(50 * time.Millisecond)
	idle := runtime.NumGoroutine()

	for i := 0; i < 3; i++ {
		if n := hh.hub.Broadcast(json.RawMessage(`"tick"`), time.Now()); n != writerConns {
			t.Fatalf("broadcast reached %d connections, want %d", n, writerConns)
		}
	}
	waitFor(t, "every connection got 3 broadcasts", 5*time.Second, allAtLeast(counts, 3))
	if n := runtime.NumGoroutine(); n < idle+writerConns {
		t.Fatalf("%d goroutines right after the broadcasts, want at least %d (a parked writer per connection)", n, idle+writerConns)
	}
	// Retired by the heartbeat within two rounds; a ping (1.6 s after each connect) would end
	// them too, which is why the wait is shorter than that.
	waitFor(t, "parked writers retire", 800*time.Millisecond, func() bool { return runtime.NumGoroutine() <= idle })

	// A retired writer is started again by the next frame.
	hh.hub.Broadcast(json.RawMessage(`"again"`), time.Now())
	waitFor(t, "broadcast after retirement", 5*time.Second, allAtLeast(counts, 4))
}

func TestParkedWritersClose(t *testing.T) {
	hh := newHandshakeHubWith(t, module.HubConfig{}, func(*module.Hub, string) {}) // rounds of 1.25 s
	kicked := hh.dial(t, "kicked")
	stays := hh.dial(t, "stays")
	waitFor(t, "both registered", 5*time.Second, func() bool { return registered(hh.hub) == 2 })
	hh.hub.Broadcast(json.RawMessage(`"hello"`), time.Now())
	for _, conn := range []*websocket.Conn{kicked, stays} {
		if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), `"hello"`) {
			t.Fatalf("got %s, %v; want the broadcast", b, err)
		}
	}
	// Both writers are parked now. A kick and a shutdown must wake them to send the close.
	if n := hh.hub.Kick("kicked", module.CloseRemoved, "removed"); n != 1 {
		t.Fatalf("kick closed %d connections, want 1", n)
	}
	expectClose(t, kicked, module.CloseRemoved)
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- hh.hub.Shutdown(ctx)
	}()
	expectClose(t, stays, websocket.CloseGoingAway)
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestParkedWriterOfSilentPeerIsDropped(t *testing.T) {
	// The peer stops reading (so it answers no ping) while its writer is parked: the pong
	// timeout must still end the connection and its writer (goleak checks the goroutines).
	hh := newHandshakeHubWith(t, module.HubConfig{PingInterval: 40 * time.Millisecond, PongWait: 150 * time.Millisecond}, func(*module.Hub, string) {})
	conn := hh.dial(t, "silent")
	waitFor(t, "registered", 5*time.Second, func() bool { return registered(hh.hub) == 1 })
	hh.hub.Broadcast(json.RawMessage(`"last words"`), time.Now())
	if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), "last words") {
		t.Fatalf("got %s, %v; want the broadcast", b, err)
	}
	waitFor(t, "silent peer dropped", 3*time.Second, func() bool { return registered(hh.hub) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hh.hub.WaitIdle(ctx); err != nil {
		t.Fatalf("goroutines of the dropped connection did not end: %v", err)
	}
}
