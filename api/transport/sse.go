package transport

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"pushlane/module"
)

// ServeSSE streams the connection under ticket as Server-Sent Events (API.md "Server-Sent Events
// on the same route").
//
// Over HTTP/1.x the connection is taken from net/http (as a WebSocket upgrade takes it) once the
// response head is written, and ServeSSE returns at once: the stream then costs one small reader
// goroutine, as a WebSocket connection does, instead of the request's goroutine, net/http's
// background reader and its buffers for the stream's life (measured: 34 KB per idle stream at
// 10,000 streams that way). Over HTTP/2, which has no such hand-over, the stream stays a response
// of net/http and ServeSSE returns when it ends.
func ServeSSE(hub *module.Hub, ticket *module.Ticket, w http.ResponseWriter, r *http.Request, writeWait time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	if r.ProtoMajor == 1 && serveTakenOver(hub, ticket, w, writeWait) {
		return
	}
	serveAsResponse(hub, ticket, w, r)
}

// serveAsResponse streams as a response of net/http and returns when the stream ends: the client
// went away, or the core closed or cut it. This goroutine, the request's own, is the
// connection's reader: it waits for the client to go away.
func serveAsResponse(hub *module.Hub, ticket *module.Ticket, w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// server.readTimeout bounds reading a request; this one lasts as long as the stream. (net/http
	// reads in the background to notice the client going away, and that read must not time out.)
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		ticket.Cancel()
		return
	}
	t := &eventStream{w: w, rc: rc, done: make(chan struct{})}
	c := hub.Connect(ticket, t)
	select {
	case <-r.Context().Done():
	case <-t.done:
	}
	t.stop()
	c.ReadEnded(0, false)
}

// eventStream is a module.Transport over an event-stream response.
//
// Concurrency: WriteFrames and WriteClose come from the core's write loop, one at a time, while
// the request's goroutine waits in ServeSSE; mu makes stop wait for a write in progress, so
// nothing writes to the response after the handler has returned (net/http forbids it). A write
// blocked on a slow client ends at its deadline.
type eventStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	done chan struct{} // closed by Abort
	once sync.Once

	mu      sync.Mutex
	stopped bool
}

var errStreamEnded = errors.New("event stream ended")

func (t *eventStream) Kind() module.TransportKind { return module.TransportSSE }

// WriteFrames implements module.Transport: the frames become events (appendEvents) in one
// buffer, written and flushed at once. The buffer is borrowed for the call only, so an idle
// stream holds none.
func (t *eventStream) WriteFrames(frames []module.Frame, deadline time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errStreamEnded
	}
	bp := batchPool.Get().(*[]byte)
	defer release(bp)
	*bp = appendEvents((*bp)[:0], frames) // what grew goes back to the pool (or, when too large, to the GC)
	return t.write(*bp, deadline)
}

// appendEvents appends frames as events: a message is "id: N" and "data: <frame>"; a broadcast
// has no id; a ping is a comment line. Frames carry compact JSON, which holds no line break, so
// one data line each. Control frames and pongs belong to WebSocket clients: an event stream has
// neither.
func appendEvents(buf []byte, frames []module.Frame) []byte {
	for i := range frames {
		f := &frames[i]
		switch f.Kind {
		case module.FrameMessage:
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, f.ID, 10)
			buf = append(buf, "\ndata: "...)
			buf = append(f.AppendText(buf), "\n\n"...)
		case module.FrameBroadcast:
			buf = append(buf, "data: "...)
			buf = append(f.AppendText(buf), "\n\n"...)
		case module.FramePing:
			buf = append(buf, ": ping\n\n"...)
		}
	}
	return buf
}

// closeEvent is the event that ends a stream: named "close", its data the close code, so that a
// client can tell a kick (4000) from a network error before the stream ends.
func closeEvent(code int) []byte {
	b := append([]byte(`event: close`+"\n"+`data: {"code":`), strconv.Itoa(code)...)
	return append(b, "}\n\n"...)
}

// WriteClose implements module.Transport: an event named "close" whose data is the close code,
// so that a client can tell a kick (4000) from a network error before the stream ends.
func (t *eventStream) WriteClose(code int, _ string, deadline time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errStreamEnded
	}
	return t.write(closeEvent(code), deadline)
}

func (t *eventStream) write(b []byte, deadline time.Time) error {
	if len(b) == 0 {
		return nil
	}
	if err := t.rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := t.w.Write(b); err != nil {
		return err
	}
	return t.rc.Flush()
}

// SetWriteDeadline implements module.Transport. An event stream cannot move the deadline of a
// write in progress safely (the response's writes belong to one goroutine at a time), so a slow
// stream keeps the deadline its write started with: it ends at that deadline instead of getting
// a last chance to read the close event.
func (t *eventStream) SetWriteDeadline(time.Time) error { return nil }

// Abort implements module.Transport: ServeSSE wakes, waits for a write in progress, and returns,
// which ends the response.
func (t *eventStream) Abort() { t.once.Do(func() { close(t.done) }) }

// stop forbids further writes; it waits for a write in progress.
func (t *eventStream) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}
