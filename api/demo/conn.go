package demo

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/api/transport"
)

// CloseSlowConsumer is the close code of a chat member whose send queue overflowed (as in the core).
const CloseSlowConsumer = 4001

// noCloseFrame marks a stop that sends no close frame: the socket broke or the peer fell silent.
const noCloseFrame = -1

// closeGrace bounds how long a closing connection waits for the peer's close frame before the TCP
// connection is cut.
const closeGrace = 2 * time.Second

// outFrame is one queued write: a prepared message (a chat fan-out, encoded once for all
// members) or plain bytes of the given kind.
type outFrame struct {
	kind     int // websocket.TextMessage or websocket.BinaryMessage
	data     []byte
	prepared *websocket.PreparedMessage
	size     int // bytes it counts against SendQueueBytes: len(data), or the prepared message's text
}

func (f *outFrame) bytes() int64 { return int64(max(f.size, len(f.data))) }

// conn is one demo WebSocket connection.
//
// Concurrency: offer, push and stop are safe from any goroutine. Only writeLoop writes to ws
// (gorilla itself answers pings and oversized frames with WriteControl, which it allows from any
// goroutine); only readLoop reads. send is bounded and never closed; done is closed exactly once,
// by stop, and every goroutine of the connection returns after it.
type conn struct {
	d          *Demos
	ws         *websocket.Conn
	name       string // route, for logs
	send       chan outFrame
	queued     atomic.Int64  // bytes of the frames in send
	room       chan struct{} // capacity 1: the writer took a frame (push waits on it for room)
	done       chan struct{}
	readerDone chan struct{}
	onStop     func(*conn)
	release    func() // gives the connection slot back; called once, by stop

	stopOnce  sync.Once
	closeCode int // set inside stopOnce before done is closed; read by the writer after done
	closeText string
}

// fits reports whether f may join the queue: within SendQueueBytes, or alone (any frame that may
// be sent at all gets through an empty queue).
func (c *conn) fits(f *outFrame) bool {
	q := c.queued.Load()
	return q == 0 || q+f.bytes() <= int64(c.d.opts.SendQueueBytes)
}

// offer queues f without waiting. It reports false when the queue is full (by count or bytes):
// the caller decides what a slow peer costs (chat closes it with 4001). A stopping connection
// takes anything.
func (c *conn) offer(f outFrame) bool {
	select {
	case <-c.done:
		return true
	default:
	}
	if !c.fits(&f) {
		return false
	}
	c.queued.Add(f.bytes())
	select {
	case c.send <- f:
		return true
	default:
		c.queued.Add(-f.bytes())
		return false
	}
}

// push queues f, waiting while the queue is full (by count or bytes): backpressure for a
// connection's only producer (echo's reader, tail's follower), which slows nobody else. False
// once the connection stops.
func (c *conn) push(f outFrame) bool {
	for {
		select {
		case <-c.done:
			return false
		default:
		}
		if c.fits(&f) {
			break
		}
		select {
		case <-c.room:
		case <-c.done:
			return false
		}
	}
	c.queued.Add(f.bytes())
	select {
	case c.send <- f:
		return true
	case <-c.done:
		return false
	}
}

// took accounts for a frame the writer took from the queue and wakes a waiting push.
func (c *conn) took(f *outFrame) {
	c.queued.Add(-f.bytes())
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// stop ends the connection: the writer sends a close frame with code (none for noCloseFrame) and
// cuts the socket; the reader and follower exit. Only the first call counts.
func (c *conn) stop(code int, text string) {
	c.stopOnce.Do(func() {
		c.closeCode, c.closeText = code, text
		close(c.done)
		c.d.forget(c)
		c.release()
		if c.onStop != nil {
			c.onStop(c)
		}
	})
}

// writeLoop is the only goroutine that writes to ws: queued frames and the server's pings.
func (c *conn) writeLoop() {
	defer c.d.wg.Done()
	ping := time.NewTicker(c.d.opts.PingInterval)
	defer ping.Stop()
	for {
		// A stopped connection sends its close frame next, not what is still queued.
		select {
		case <-c.done:
			c.finishClose()
			return
		default:
		}
		var err error
		select {
		case <-c.done:
			c.finishClose()
			return
		case f := <-c.send:
			c.took(&f)
			err = c.write(f)
		case <-ping.C:
			err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.d.opts.WriteWait))
		}
		if err != nil {
			c.d.log.Debug("demo connection write failed", "route", c.name, "err", err)
			c.stop(noCloseFrame, "")
			_ = c.ws.Close() // the reader fails at once and exits
			return
		}
	}
}

func (c *conn) write(f outFrame) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.d.opts.WriteWait)); err != nil {
		return err
	}
	if f.prepared != nil {
		return c.ws.WritePreparedMessage(f.prepared)
	}
	return c.ws.WriteMessage(f.kind, f.data)
}

// finishClose sends the close frame, waits briefly for the peer's answer (closing a socket before
// it arrives can turn into a TCP reset that destroys the frame in flight), and cuts the socket.
func (c *conn) finishClose() {
	if c.closeCode != noCloseFrame {
		msg := websocket.FormatCloseMessage(c.closeCode, c.closeText)
		err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.d.opts.WriteWait))
		// ErrCloseSent: gorilla already sent 1009 for an oversized frame; the reader is discarding
		// the rest of it, so wait for the reader all the same.
		if err == nil || errors.Is(err, websocket.ErrCloseSent) {
			t := time.NewTimer(min(c.d.opts.WriteWait, closeGrace))
			select {
			case <-c.readerDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = c.ws.Close()
	c.d.log.Debug("demo connection closed", "route", c.name, "code", c.closeCode)
}

// readLoop is the only goroutine that reads from ws. Every frame and every pong extends the read
// deadline by PongWait; a peer silent for longer is cut. Gorilla answers pings itself.
func (c *conn) readLoop(onMessage func(c *conn, kind int, data []byte)) {
	defer c.d.wg.Done()
	defer close(c.readerDone)
	ws := c.ws
	pongWait := c.d.opts.PongWait
	ws.SetReadLimit(int64(c.d.opts.MaxMessageBytes))
	_ = ws.SetReadDeadline(time.Now().Add(pongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(pongWait)) })
	peerCode := websocket.CloseNormalClosure
	ws.SetCloseHandler(func(code int, _ string) error {
		if code != websocket.CloseNoStatusReceived {
			peerCode = code
		}
		return nil // answered by the write loop, the only writer
	})
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				c.stop(websocket.CloseMessageTooBig, "")
				// gorilla has sent 1009 but the rest of the frame is unread.
				transport.DiscardInput(c.ws.NetConn(), min(c.d.opts.WriteWait, closeGrace))
			case errors.As(err, &ce):
				c.stop(peerCode, "")
			default:
				c.stop(noCloseFrame, "")
			}
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(pongWait))
		if onMessage != nil {
			onMessage(c, kind, data)
		}
	}
}
