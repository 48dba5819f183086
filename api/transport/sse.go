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
// on the same route") and returns when the stream ends: the client went away, or the core closed
// or cut it. Unlike a WebSocket, the stream stays a response of net/http (so it works over
// HTTP/1.1 and HTTP/2 alike), and this goroutine, the request's own, is the connection's reader:
// it waits for the client to go away.
func ServeSSE(hub *module.Hub, ticket *module.Ticket, w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// server.readTimeout bounds reading a request; this one lasts as long as the stream. (net/http
	// reads in the background to notice the client going away, and that read must not time out.)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
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

// WriteFrames implements module.Transport: the frames become events in one buffer, written and
// flushed at once. The buffer is borrowed for the call only, so an idle stream holds none. A message is "id: N" and "data: <frame>"; a broadcast has no id; a ping is a
// comment line. Frames carry compact JSON, which holds no line break, so one data line each.
func (t *eventStream) WriteFrames(frames []module.Frame, deadline time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errStreamEnded
	}
	bp := batchPool.Get().(*[]byte)
	defer release(bp)
	buf := (*bp)[:0]
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
		// Control frames and pongs belong to WebSocket clients: an event stream has neither.
	}
	*bp = buf // what grew goes back to the pool (or, when too large, to the GC) with the rest
	return t.write(buf, deadline)
}

// WriteClose implements module.Transport: an event named "close" whose data is the close code,
// so that a client can tell a kick (4000) from a network error before the stream ends.
func (t *eventStream) WriteClose(code int, _ string, deadline time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errStreamEnded
	}
	b := append([]byte(`event: close`+"\n"+`data: {"code":`), strconv.Itoa(code)...)
	return t.write(append(b, "}\n\n"...), deadline)
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
