package transport

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"time"

	"pushlane/module"
)

// serveTakenOver writes the event stream's response head itself and takes the connection from
// net/http (http.ResponseController.Hijack), then hands it to the hub. It reports false, having
// written nothing, when the connection cannot be taken (a response writer without Hijack): the
// caller then streams as a response. The head is the status line, the response's headers as
// net/http writes them (http.Header.Write: the event-stream headers and whatever middleware
// set), and Connection: close, since the stream's body ends only when the connection does
// (RFC 9112, section 6.3).
func serveTakenOver(hub *module.Hub, ticket *module.Ticket, w http.ResponseWriter, writeWait time.Duration) bool {
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	w.Header().Set("Connection", "close")
	if err := w.Header().Write(&head); err != nil {
		return false // a bytes.Buffer does not fail
	}
	head.WriteString("\r\n")
	conn, _, err := http.NewResponseController(w).Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		w.Header().Del("Connection")
		return false
	}
	if err != nil {
		ticket.Cancel()
		return true
	}
	// net/http's request deadlines may be left on the socket; the core's per-write deadlines
	// govern it from now on. Anything the client sent after its request is never read as one.
	_ = conn.SetDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := conn.Write(head.Bytes()); err != nil {
		_ = conn.Close()
		ticket.Cancel()
		return true
	}
	t := &streamConn{conn: conn}
	t.client = hub.Connect(ticket, t)
	go t.readLoop()
	return true
}

// streamConn is a module.Transport over an event stream whose connection was taken from
// net/http.
//
// Concurrency: WriteFrames and WriteClose come from the core's write loop, one at a time;
// SetWriteDeadline and Abort may come from any goroutine and use the connection's own methods,
// which are safe for concurrent use; readLoop is the only reader.
type streamConn struct {
	conn   net.Conn
	client *module.Client
}

func (t *streamConn) Kind() module.TransportKind { return module.TransportSSE }

// WriteFrames implements module.Transport: the frames as events in one buffer, borrowed for the
// call, in one write.
func (t *streamConn) WriteFrames(frames []module.Frame, deadline time.Time) error {
	bp := batchPool.Get().(*[]byte)
	defer release(bp)
	*bp = appendEvents((*bp)[:0], frames)
	return t.write(*bp, deadline)
}

// WriteClose implements module.Transport with the close event.
func (t *streamConn) WriteClose(code int, _ string, deadline time.Time) error {
	return t.write(closeEvent(code), deadline)
}

func (t *streamConn) write(b []byte, deadline time.Time) error {
	if len(b) == 0 {
		return nil
	}
	if err := t.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := t.conn.Write(b)
	return err
}

// SetWriteDeadline implements module.Transport on the connection, so that it reaches a write in
// progress: a slow stream closed for overflow gets writeWait to read what is in flight and the
// close event.
func (t *streamConn) SetWriteDeadline(d time.Time) error { return t.conn.SetWriteDeadline(d) }

// Abort implements module.Transport.
func (t *streamConn) Abort() { _ = t.conn.Close() }

// readLoop waits for the client to go away: an event-stream client sends nothing after its
// request, so whatever arrives is dropped, and the end of the connection (the client closed it,
// or Abort did) is reported to the core. Its buffer is on the goroutine's small stack: an idle
// stream holds no read buffer.
func (t *streamConn) readLoop() {
	var buf [64]byte
	for {
		if _, err := t.conn.Read(buf[:]); err != nil {
			t.client.ReadEnded(0, false)
			return
		}
	}
}
