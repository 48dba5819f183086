package module

import (
	"bytes"
	"encoding/json"
	"io"
	"time"
)

// This file is the read side of a Client: what a transport adapter's reader tells the core about
// the peer. Contract: after Hub.Connect, the adapter runs one reader for the connection (for SSE,
// the request's own goroutine waiting for the client to go away) and calls ReadEnded exactly
// once, when that reader ends. The other methods are called by that reader only.

// maxControlText bounds a client text frame the core reads ({"type":"ack","id":"<19 digits>"}
// is 42 bytes). Longer frames are not control frames and are ignored unread.
const maxControlText = 64

var appPong = []byte(`{"type":"pong"}`)

// Touch records a sign of life from the peer: any frame, or a pong.
func (c *Client) Touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// HandlePing answers the peer's WebSocket ping with a pong carrying its payload.
func (c *Client) HandlePing(payload []byte) {
	c.Touch()
	data := bytes.Clone(payload)
	c.owe(func(cf *controlFrames) { cf.pong, cf.pongData = true, data })
}

// HandleText handles a text frame from the peer, read from r: {"type":"ping"} is answered with
// {"type":"pong"}; on a version 2 connection {"type":"ack","id":"42"} acknowledges message 42
// of this connection's user. Anything else is ignored (API.md: client frames are optional).
// HandleText reads at most maxControlText+1 bytes of r; the adapter reads the rest.
func (c *Client) HandleText(r io.Reader) {
	var buf [maxControlText + 1]byte
	n, err := io.ReadFull(r, buf[:])
	if err == nil {
		return // longer than any control frame
	}
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		return
	}
	kind, id := parseControl(buf[:n])
	switch {
	case kind == "ping":
		c.owe(func(cf *controlFrames) { cf.appPong = true })
	case kind == "ack" && c.version >= 2 && id > 0:
		now := time.Now()
		if !c.acks.allow(now.UnixNano()) {
			c.hub.metrics.AcksDropped.Inc()
			return // the message stays unacknowledged: it comes back, and is acked then
		}
		c.hub.metrics.AcksReceived.Inc()
		c.hub.store.Ack(c.userID, []uint64{id}, now)
	}
}

// ackPrefix and ackSuffix frame an acknowledgement as clients write it: {"type":"ack","id":"N"}.
var (
	ackPrefix = []byte(`{"type":"ack","id":"`)
	ackSuffix = []byte(`"}`)
)

// parseControl reads {"type": T} or {"type": "ack", "id": "N"}; it returns T and the id when it
// is a canonical message id (0 otherwise). A version 2 client acknowledges every message, so
// the compact form of an ack is read without the JSON decoder (which cost about as much as the
// ack's store update); any other spelling goes through the decoder, with the same result
// (FuzzParseControl).
func parseControl(b []byte) (kind string, id uint64) {
	if rest, ok := bytes.CutPrefix(b, ackPrefix); ok {
		if digits, ok := bytes.CutSuffix(rest, ackSuffix); ok {
			if n, err := ParseSince(string(digits)); err == nil {
				return "ack", n
			}
		}
	}
	return decodeControl(b)
}

// decodeControl is parseControl through the JSON decoder, for any spelling.
func decodeControl(b []byte) (kind string, id uint64) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return "", 0
	}
	var msg struct {
		Type *string `json:"type"`
		ID   *string `json:"id"`
	}
	if json.Unmarshal(b, &msg) != nil || msg.Type == nil {
		return "", 0
	}
	if msg.ID != nil {
		if n, err := ParseSince(*msg.ID); err == nil {
			id = n
		}
	}
	return *msg.Type, id
}

// ReadEnded tells the client that its reader ended. peerCode is the close code the peer sent
// (1000 when its close frame had none), or 0 when the connection ended without one (a read
// error, the client went away). closeSent says that the adapter (or its library) already sent
// a close frame, as gorilla does with 1009 for a frame over the read limit: the client then
// sends none.
func (c *Client) ReadEnded(peerCode int, closeSent bool) {
	defer c.hub.clientGoroutines.Done()
	c.mu.Lock()
	c.readerEnded = true
	if c.readerDone != nil {
		close(c.readerDone)
	}
	c.mu.Unlock()
	switch {
	case closeSent:
		// The adapter has sent the close frame and read what followed it: nothing is left to
		// write or wait for.
		c.mu.Lock()
		c.closeSent = true
		c.mu.Unlock()
		c.closeWith(peerCode, "", false)
		c.abort()
	case peerCode == 0:
		c.fail()
	default:
		c.closeWith(peerCode, "", false) // answer the peer's close with its code
	}
}

// Acks are writes to the store, batched with the publishes of the whole node: one client sending
// ack frames at line rate must not stall everybody's publishes. A client acks what it received,
// so a budget of ackBurst, refilled at ackRate per second, is far above what delivery itself
// allows (a reconnect replays at most store.maxPerUser messages).
const (
	ackRate  = 2000 // acks per second, sustained
	ackBurst = 2000
)

// ackBudget is a token bucket of acks. Only the connection's reader uses it (no lock).
type ackBudget struct {
	tokens float64
	at     int64 // unix nanos of the last refill; 0: never used (a full bucket)
}

// allow takes one ack from the bucket at time now.
func (b *ackBudget) allow(now int64) bool {
	if b.at == 0 {
		b.tokens, b.at = ackBurst, now
	}
	b.tokens = min(ackBurst, b.tokens+float64(now-b.at)*ackRate/1e9)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
