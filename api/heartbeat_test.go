package api

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// These tests measure time; they are not parallel so that other tests do not starve them.

// TestHeartbeat: server pings arrive every pingInterval; a client that answers them stays
// connected long past pongWait; a client that never answers is dropped after pongWait and leaves
// GET /clients.
func TestHeartbeat(t *testing.T) {
	// Wide margins: the bounds below only fail a broken heartbeat, not a loaded machine.
	const pingInterval, pongWait = 200 * time.Millisecond, 2 * time.Second
	e := newEnv(t, "sqlite", func(c *config.Config) {
		c.WebSocket.PingInterval = pingInterval
		c.WebSocket.PongWait = pongWait
	})

	// The answering client records when pings arrive and answers them, as browsers do.
	alive := e.dial("hb-alive", -1)
	var mu sync.Mutex
	var pings []time.Time
	alive.conn.SetPingHandler(func(payload string) error {
		mu.Lock()
		pings = append(pings, time.Now())
		mu.Unlock()
		return alive.conn.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(time.Second))
	})
	alivePump := startPump(alive.conn)

	// The silent client reads (so it sees pings) but never answers them.
	silentStart := time.Now()
	silent := e.dial("hb-silent", -1)
	var silentPings int
	silent.conn.SetPingHandler(func(string) error { silentPings++; return nil })
	silentDone := make(chan error, 1)
	go func() {
		for {
			_ = silent.conn.SetReadDeadline(time.Now().Add(10 * pongWait))
			if _, _, err := silent.conn.ReadMessage(); err != nil {
				silentDone <- err
				return
			}
		}
	}()

	select {
	case err := <-silentDone:
		dropped := time.Since(silentStart)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			t.Logf("silent client got close %d", ce.Code)
		}
		if dropped < pongWait {
			t.Fatalf("silent client dropped after %v, before pongWait %v", dropped, pongWait)
		}
		if dropped > pongWait+5*time.Second {
			t.Fatalf("silent client dropped after %v, want about pongWait %v", dropped, pongWait)
		}
		if silentPings == 0 {
			t.Fatal("the silent client saw no ping before it was dropped")
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("silent client was never dropped: %v", err)
		}
	case <-time.After(10 * pongWait):
		t.Fatal("silent client was not dropped")
	}
	e.waitConns("hb-silent", 0)
	var list clientsList
	e.getJSON("/clients", 200, &list)
	for _, u := range list.Users {
		if u.UserID == "hb-silent" {
			t.Fatalf("GET /clients still lists the dropped client: %+v", list)
		}
	}

	// By now the answering client has lived through pongWait at least once; let it see enough
	// pings to measure the interval (at least 2*pongWait in all), then check it is still served.
	waitFor(t, waitTimeout, "12 pings", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(pings) >= 12
	})
	mu.Lock()
	got := append([]time.Time(nil), pings...)
	mu.Unlock()
	// Averaged over the run: one late ping must not fail the test, a wrong period must.
	avg := got[len(got)-1].Sub(got[0]) / time.Duration(len(got)-1)
	if avg < pingInterval*3/4 || avg > 3*pingInterval {
		t.Errorf("pings came every %v on average, want about pingInterval %v", avg, pingInterval)
	}
	if e.hub.Count("hb-alive") != 1 {
		t.Fatal("the client that answers pings was dropped")
	}
	id := e.publish("hb-alive", "still here")
	if f := alivePump.next(t); f.id() != id {
		t.Fatalf("alive client got %s, want message %d", f.raw, id)
	}
	var list2 clientsList
	e.getJSON("/clients", 200, &list2)
	if list2.Total != 1 || len(list2.Users) != 1 || list2.Users[0].UserID != "hb-alive" {
		t.Fatalf("GET /clients = %+v, want only hb-alive", list2)
	}
}

// TestAppPingAndIgnoredFrames: {"type":"ping"} is answered with {"type":"pong"}; binary frames,
// garbage and other JSON are ignored without an answer and without closing the connection.
func TestAppPingAndIgnoredFrames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	c := e.dial("app-ping", -1)
	e.waitConns("app-ping", 1)

	c.sendText(`{"type":"ping"}`)
	if f := c.readFrame(); string(f.raw) != `{"type":"pong"}` {
		t.Fatalf(`got %s, want {"type":"pong"}`, f.raw)
	}
	// Ignored: each would be answered (or close the connection) before the next pong otherwise.
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{0xff, 0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"garbage", "", "{", `{"type":"PING"}`, `{"type":"pong"}`, `{"type":1}`,
		`{"type":null}`, `[]`, `null`, `"ping"`, `{"type":"ack","id":"1"}`, "\xff\xfe not utf-8",
		`{"type":"ping","pad":"` + strings.Repeat("x", 100) + `"}`, strings.Repeat("z", 5000)} {
		c.sendText(s)
	}
	c.sendText(`{"type":"ping"}`)
	if f := c.readFrame(); string(f.raw) != `{"type":"pong"}` {
		t.Fatalf(`after ignored frames got %s, want {"type":"pong"}`, f.raw)
	}
	id := e.publish("app-ping", "still served")
	if f := c.readMessage(); f.id() != id {
		t.Fatalf("got %s, want message %d", f.raw, id)
	}
}

// TestClientFrameTooBig: a client frame of maxMessageBytes is fine (ignored); one byte more
// closes the connection with 1009 and unregisters it.
func TestClientFrameTooBig(t *testing.T) {
	t.Parallel()
	const limit = 4096
	e := newEnv(t, "sqlite", func(c *config.Config) { c.WebSocket.MaxMessageBytes = limit })
	c := e.dial("too-big", -1)
	e.waitConns("too-big", 1)

	c.sendText(strings.Repeat("a", limit))
	c.sendText(`{"type":"ping"}`)
	if f := c.readFrame(); string(f.raw) != `{"type":"pong"}` {
		t.Fatalf(`a frame of exactly maxMessageBytes: got %s, want {"type":"pong"}`, f.raw)
	}
	c.sendText(strings.Repeat("b", limit+1))
	c.expectClose(websocket.CloseMessageTooBig)
	e.waitConns("too-big", 0)
	// Then the server closes the TCP connection (a client such as a browser waits for that).
	nc := c.conn.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(readTimeout))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("after the 1009 close frame the server did not close the connection: %v", err)
	}
}

// TestReadingClientSurvivesLongBacklog: a client that reads a long backlog steadily, but slowly
// enough that writing it takes longer than pongWait, is pinged between backlog pages (pings are
// not queued behind the messages) and so is not dropped for silence. Small socket buffers make
// the writer go at the reader's pace, as a slow network would.
func TestReadingClientSurvivesLongBacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) {
		c.WebSocket.PingInterval = 100 * time.Millisecond
		c.WebSocket.PongWait = 2 * time.Second
	}, smallSendBuffers)
	const stored = 50
	data := strings.Repeat("x", 60<<10)
	for range stored {
		e.publish("slow-reader", data)
	}
	c := e.dialWith(subQuery("slow-reader", 0), "slow-reader", smallReadBufferDialer())
	start := time.Now()
	for i := range stored {
		// gorilla's client answers pings from inside ReadMessage.
		if _, err := readFrameE(c.conn, readTimeout); err != nil {
			t.Fatalf("after %d of %d messages (%v): %v", i, stored, time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond) // a slow reader: the backlog takes over twice pongWait
	}
}
