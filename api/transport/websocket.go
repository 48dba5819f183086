// Package transport holds the adapters between the push core (module.Transport) and the
// connections it serves: WebSocket (gorilla/websocket) and Server-Sent Events (net/http).
// The core decides what to write and when; an adapter only encodes and writes, and runs the
// connection's reader.
package transport

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/module"
)

// WebSocketOptions tune the WebSocket adapter.
type WebSocketOptions struct {
	MaxMessageBytes int           // largest client frame; larger ones close with 1009
	CloseGrace      time.Duration // how long to read the rest of a too-big frame before cutting
}

// ServeWebSocket upgrades the request and hands the connection to the hub under ticket. It
// answers the upgrade's own failures itself (through up.Error) and gives the ticket back; after
// a successful upgrade the hub owns the connection and the request's goroutine may return: the
// connection's reader runs on a goroutine of its own.
func ServeWebSocket(hub *module.Hub, ticket *module.Ticket, up *websocket.Upgrader, opts WebSocketOptions, w http.ResponseWriter, r *http.Request) {
	// One allocation for the transport and its socket: an idle connection's memory counts.
	t := &webSocket{opts: opts}
	conn, err := up.Upgrade(&batchingResponse{ResponseWriter: w, sock: &t.sock}, r, nil)
	if err != nil {
		ticket.Cancel()
		return
	}
	t.ws = conn
	// net/http may have left its request deadlines on the hijacked socket; the core's heartbeat
	// and per-write deadlines govern it from now on.
	_ = t.sock.Conn.SetDeadline(time.Time{})
	conn.SetReadLimit(int64(opts.MaxMessageBytes))
	t.client = hub.Connect(ticket, t)
	c := t.client
	conn.SetPongHandler(func(string) error {
		c.Touch()
		return nil
	})
	conn.SetPingHandler(func(payload string) error {
		c.HandlePing([]byte(payload))
		return nil
	})
	// The core answers the peer's close (with the peer's code) from its write loop.
	conn.SetCloseHandler(func(int, string) error { return nil })
	go t.readLoop()
}

// webSocket is a module.Transport over a gorilla connection. Its frames are written through
// gorilla into the socket's batch and reach the kernel in one write per WriteFrames call.
//
// Concurrency: WriteFrames and WriteClose come from the core's write loop, one at a time (gorilla
// allows one concurrent writer; its WriteControl may also be called concurrently, which the
// reader's goroutine does for 1009); readLoop is the only reader; SetWriteDeadline and Abort use
// the raw connection, which is safe for concurrent use.
type webSocket struct {
	ws     *websocket.Conn
	sock   socket
	client *module.Client
	opts   WebSocketOptions
	kind   int       // reader only: the type of the message NextReader returned
	msg    io.Reader // reader only: the message NextReader returned, until handle reads it
	err    error     // reader only: why NextReader ended
}

func (t *webSocket) Kind() module.TransportKind { return module.TransportWebSocket }

// WriteFrames implements module.Transport: every frame through gorilla into one batch, then one
// write.
func (t *webSocket) WriteFrames(frames []module.Frame, deadline time.Time) error {
	t.sock.begin()
	for i := range frames {
		if err := t.writeFrame(&frames[i], deadline); err != nil {
			// gorilla refuses a frame before writing any of it (after its own close frame, for
			// one); what the batch holds is whole frames, the reader's close frame perhaps among
			// them, so it still goes out.
			_ = t.sock.flush(deadline)
			return err
		}
	}
	return t.sock.flush(deadline)
}

func (t *webSocket) writeFrame(f *module.Frame, deadline time.Time) error {
	switch f.Kind {
	case module.FramePing:
		return t.ws.WriteControl(websocket.PingMessage, nil, deadline)
	case module.FramePong:
		return t.ws.WriteControl(websocket.PongMessage, f.Body, deadline)
	}
	w, err := t.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	if len(f.Head) > 0 {
		if _, err := w.Write(f.Head); err != nil {
			return err
		}
	}
	if _, err := w.Write(f.Body); err != nil {
		return err
	}
	return w.Close()
}

// WriteClose implements module.Transport with a close frame.
func (t *webSocket) WriteClose(code int, reason string, deadline time.Time) error {
	err := t.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// SetWriteDeadline implements module.Transport on the raw connection, so that it reaches a write
// in progress.
func (t *webSocket) SetWriteDeadline(d time.Time) error { return t.sock.Conn.SetWriteDeadline(d) }

// Abort implements module.Transport.
func (t *webSocket) Abort() { _ = t.sock.Conn.Close() }

// readLoop is the only goroutine that reads from the connection: it reports life, hands text
// frames to the core, and tells the core when the peer is gone.
//
// Why it looks like this: an idle connection's reader sits blocked deep inside gorilla's
// NextReader, and that whole call chain must fit in a goroutine's first 2 KB stack, or every
// idle connection pays for a 4 KB one (measured: about 2 KB of RSS per connection). So the loop
// is the goroutine's entry function with almost no locals, and everything else happens in calls
// it makes once NextReader returns.
//
// NextReader's results go to fields of t, not locals, and the calls after it take only t: a
// call's arguments need room in the caller's frame, and this frame sits under gorilla's whole
// read path (and the batching socket's Read) on every idle connection's stack. Locals 16 bytes
// instead of 40: BenchmarkIdleConnStack 2.9-3.2 KB -> 2.3-2.5 KB of stack per idle connection
// (most readers back in a 2 KB stack), for 40 bytes more of heap per connection.
func (t *webSocket) readLoop() {
	for {
		t.kind, t.msg, t.err = t.ws.NextReader()
		if t.err != nil {
			t.readEnded()
			return
		}
		t.handle()
	}
}

// handle passes a text frame to the core and reads every message to its end. Reading to the end
// is what enforces the read limit: gorilla checks it as frames arrive, and a message it was not
// asked to read is skipped frame by frame without the check (a fragmented message over the
// limit would then pass).
//
//go:noinline
func (t *webSocket) handle() {
	r := t.msg
	t.msg = nil
	t.client.Touch()
	if t.kind == websocket.TextMessage {
		t.client.HandleText(r)
	}
	_, _ = io.Copy(io.Discard, r)
}

// readEnded reports to the core why the reader ended: the peer's close code, a frame over the
// read limit (gorilla has sent 1009 itself), or a broken connection.
//
//go:noinline
func (t *webSocket) readEnded() {
	err := t.err
	if errors.Is(err, websocket.ErrReadLimit) {
		// The rest of the frame is still unread; closing now would reset the connection and
		// could destroy the close frame gorilla just sent.
		DiscardInput(t.sock.Conn, t.opts.CloseGrace)
		t.client.ReadEnded(module.CloseTooBig, true)
		return
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseAbnormalClosure:
			t.client.ReadEnded(0, false)
		case websocket.CloseNoStatusReceived:
			t.client.ReadEnded(module.CloseNormal, false)
		default:
			t.client.ReadEnded(ce.Code, false)
		}
		return
	}
	t.client.ReadEnded(0, false)
}
