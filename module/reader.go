package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// setupReader installs gorilla's control-frame handlers; Connect calls it before the read loop
// starts. Pongs and any frame count as life; pings are answered from the write loop; the peer's
// close code is kept for closeWith.
func (c *Client) setupReader() {
	conn := c.conn
	conn.SetReadLimit(int64(c.hub.cfg.MaxMessageBytes))
	conn.SetPongHandler(func(string) error {
		c.touch()
		return nil
	})
	conn.SetPingHandler(func(payload string) error {
		c.touch()
		c.enqueue(outFrame{kind: framePong, data: []byte(payload)})
		return nil
	})
	conn.SetCloseHandler(func(code int, _ string) error {
		if code != websocket.CloseNoStatusReceived {
			c.peerCode = code
		}
		return nil // the close frame is answered by closeWith, from the write loop
	})
}

// readLoop is the only goroutine that reads from conn. It answers {"type":"ping"}, ignores every
// other client frame, and ends the client when the peer goes away.
//
// Why it looks like this: an idle connection's reader sits blocked deep inside gorilla's
// NextReader, and that whole call chain fits in a goroutine's first 2 KB stack with only about
// 50 bytes to spare. Any more here (defers, locals, a wrapper function) and every connection
// pays for a 4 KB stack instead (measured: 2.4 vs 4.3 KB of stack per connection). So the loop
// is the goroutine's entry function, and everything else happens in calls it makes.
func (c *Client) readLoop() {
	for {
		kind, r, err := c.conn.NextReader()
		if err != nil {
			c.readEnded(err)
			return
		}
		c.touch()
		if kind == websocket.TextMessage {
			c.readText(r)
		}
	}
}

// readEnded tears the client down after a read error or the peer's close.
//
//go:noinline
func (c *Client) readEnded(err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		c.tooBig()
	}
	c.hub.unregister(c)
	close(c.readerDone)
	c.closeWith(c.peerCode, "", false) // answer the peer's close, or close after a read error
	c.hub.clientGoroutines.Done()
}

// readText answers an application ping.
//
//go:noinline
func (c *Client) readText(r io.Reader) {
	if isAppPing(r) {
		c.enqueue(outFrame{kind: frameAppPong, data: appPong})
	}
}

func (c *Client) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// tooBig handles a frame over websocket.maxMessageBytes. gorilla has already sent close 1009;
// the rest of the frame is still unread, and closing a socket with unread input makes the kernel
// send a reset that can destroy the close frame in flight. So read and discard for a moment.
func (c *Client) tooBig() {
	c.mu.Lock()
	if !c.closing {
		c.startCloseLocked(websocket.CloseMessageTooBig, "", false)
	}
	c.closeSent = true
	c.mu.Unlock()
	c.hub.unregister(c)
	DiscardInput(c.conn.UnderlyingConn(), min(c.hub.cfg.WriteWait, closeGrace))
	c.abort()
}

// DiscardInput reads and drops what the peer sends until it falls quiet for 100 ms (its close
// frame has then arrived) or grace ends. Use it before cutting a connection that still has
// unread input, such as the rest of a frame over the read limit: closing a socket with unread
// input makes the kernel send a reset that can destroy the close frame in flight.
func DiscardInput(nc net.Conn, grace time.Duration) {
	end := time.Now().Add(grace)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		next := time.Now().Add(100 * time.Millisecond)
		if next.After(end) {
			next = end
		}
		_ = nc.SetReadDeadline(next)
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}

// isAppPing reports whether a client frame is {"type":"ping"}; anything else is ignored.
func isAppPing(r io.Reader) bool {
	var buf [64]byte
	n, err := io.ReadFull(r, buf[:])
	if err == nil {
		_, _ = io.Copy(io.Discard, r) // longer than any ping: skip the rest
		return false
	}
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		return false
	}
	b := bytes.TrimSpace(buf[:n])
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	var msg struct {
		Type *string `json:"type"`
	}
	if json.Unmarshal(b, &msg) != nil || msg.Type == nil {
		return false
	}
	return *msg.Type == "ping"
}
