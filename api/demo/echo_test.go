package demo

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestEchoTextAndBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.dial("/echo")
	frames := []struct {
		kind int
		data []byte
	}{
		{websocket.TextMessage, []byte("hello")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xff, 0xfe, '\n'}},
		{websocket.TextMessage, []byte("")},
		{websocket.TextMessage, []byte("héllo, 世界 {\"json\": true}\n")},
		{websocket.BinaryMessage, bytes.Repeat([]byte{0xab}, 4096)}, // exactly MaxMessageBytes
	}
	for _, f := range frames {
		send(t, c, f.kind, f.data)
	}
	for i, f := range frames {
		kind, data := read(t, c)
		if kind != f.kind || !bytes.Equal(data, f.data) {
			t.Fatalf("frame %d: got kind %d %q, want kind %d %q", i, kind, data, f.kind, f.data)
		}
	}
}

func TestEchoBurstIsNotDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.SendQueue = 2 })
	c := e.dial("/echo")
	const n = 500 // far more than the queue: the reader waits, nothing is lost or reordered
	go func() {
		for i := range n {
			_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
			if c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", i%50)+"|")) != nil {
				return
			}
		}
	}()
	for i := range n {
		if got, want := readText(t, c), strings.Repeat("x", i%50)+"|"; got != want {
			t.Fatalf("frame %d: got %q, want %q", i, got, want)
		}
	}
}

func TestEchoTooBigFrameCloses1009(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.dial("/echo")
	send(t, c, websocket.BinaryMessage, make([]byte, 4097))
	if code := expectClose(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	waitFor(t, "the server to drop the connection", func() bool { return e.d.openConns() == 0 })
}

func TestEchoAnswersPeerClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.dial("/echo")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if code := expectClose(t, c); code != websocket.CloseNormalClosure {
		t.Fatalf("close code %d, want 1000 echoed back", code)
	}
	waitFor(t, "the server to drop the connection", func() bool { return e.d.openConns() == 0 })
}

// A peer that answers the server's pings stays connected well past PongWait.
func TestServerPingsKeepPeerAlive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.PingInterval = 50 * time.Millisecond
		o.PongWait = 2 * time.Second // generous: a loaded -race run delays pongs
	})
	c := e.dial("/echo")
	pings := make(chan struct{}, 1000)
	c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(waitTimeout))
	})
	got := make(chan string, 10)
	go func() { // the only reader; it processes pings, and ends when the cleanup closes c
		defer close(got)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			got <- string(data)
		}
	}()
	timeout := time.After(30 * time.Second)
	for range 90 { // 90 pings: more than twice PongWait
		select {
		case <-pings:
		case <-timeout:
			t.Fatal("fewer than 90 pings from the server")
		}
	}
	send(t, c, websocket.TextMessage, []byte("still here"))
	select {
	case msg := <-got:
		if msg != "still here" {
			t.Fatalf("echo %q", msg)
		}
	case <-timeout:
		t.Fatal("no echo: the connection was dropped")
	}
}

// A peer that never reads never answers a ping: the server cuts it after PongWait.
func TestSilentPeerIsCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.PingInterval = 20 * time.Millisecond
		o.PongWait = 100 * time.Millisecond
	})
	c := e.dial("/echo")
	waitFor(t, "the connection to open", func() bool { return e.d.openConns() == 1 })
	waitFor(t, "the server to cut the silent peer", func() bool { return e.d.openConns() == 0 })
	if code := expectClose(t, c); code != -1 {
		t.Fatalf("close code %d, want none (cut, no close frame)", code)
	}
}

func TestNotWebSocketIs400JSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.TailFiles = []string{t.TempDir() + "/app.log"} })
	for _, path := range []string{"/echo", "/chat", "/tail?file=app.log"} {
		status, body := e.get(path)
		if status != http.StatusBadRequest || body.Error == "" {
			t.Errorf("GET %s: %d %q, want 400 with an error", path, status, body.Error)
		}
	}
}

func TestForeignOriginIs403JSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.TailFiles = []string{t.TempDir() + "/app.log"} })
	for _, path := range []string{"/echo", "/chat", "/tail?file=app.log"} {
		_, status, body, err := e.dialE(path, http.Header{"Origin": {evilOrigin}})
		if err == nil || status != http.StatusForbidden || body.Error == "" {
			t.Errorf("dial %s from %s: %v, %d %q; want 403 with an error", path, evilOrigin, err, status, body.Error)
		}
		if _, _, _, err := e.dialE(path, http.Header{"Origin": {"http://good.example"}}); err != nil {
			t.Errorf("dial %s from an allowed origin: %v", path, err)
		}
	}
}

func TestDefaultOriginPolicyIsSameHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.CheckOrigin = nil })
	if _, status, _, err := e.dialE("/echo", http.Header{"Origin": {"http://good.example"}}); err == nil || status != http.StatusForbidden {
		t.Fatalf("cross-origin dial: %v %d, want 403", err, status)
	}
	if _, _, _, err := e.dialE("/echo", http.Header{"Origin": {e.srv.URL}}); err != nil {
		t.Fatalf("same-origin dial: %v", err)
	}
	if _, _, _, err := e.dialE("/echo", nil); err != nil {
		t.Fatalf("dial without Origin: %v", err)
	}
}
