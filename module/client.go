package module

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes of API.md beyond the standard ones in gorilla/websocket.
const (
	CloseRemoved      = 4000 // DELETE /deleteClient
	CloseSlowConsumer = 4001 // send queue overflowed
)

// frameKind says how the write loop sends an outFrame.
type frameKind uint8

const (
	frameMessage   frameKind = iota + 1 // a stored message: text frame, counted, marked delivered
	frameBroadcast                      // text frame, counted, not stored
	frameAppPong                        // {"type":"pong"}: text frame, not counted
	framePing                           // WebSocket ping
	framePong                           // WebSocket pong answering the peer's ping
	frameCatchUp                        // not a frame: read the store after lastSent and send that
)

// outFrame is one queued write. data is shared by every client that receives the same message.
type outFrame struct {
	data []byte
	id   uint64 // message id for frameMessage
	born int64  // unix nanos when the message was accepted, for the latency histogram
	kind frameKind
}

var appPong = []byte(`{"type":"pong"}`)

// closeGrace bounds how long a closing connection waits for the peer's close frame before the
// TCP connection is cut.
const closeGrace = 2 * time.Second

// Client is one WebSocket connection of one user.
//
// Concurrency: enqueue, closeWith and abort are safe from any goroutine. Only the write loop
// writes to conn; it runs only while there is something to write (a client with an empty queue
// has no writer goroutine, which is most of the memory saving for idle connections). Only the
// read loop reads from conn. The queue is bounded by websocket.sendQueue: when it is full the
// client is closed with 4001 and its messages stay in the store; the publisher never waits.
type Client struct {
	hub         *Hub
	conn        *websocket.Conn // set once by attach, under mu; the loops start after that
	batch       *batchConn      // conn's socket when it was upgraded through BatchWrites, else nil
	id          uint64
	userID      string
	remoteAddr  string
	connectedAt time.Time
	expiresAt   int64 // token expiry in unix nanos; 0 = none. Immutable.

	lastSeen atomic.Int64 // unix nanos of the last frame from the peer
	sent     atomic.Int64 // data and broadcast frames written
	nextPing int64        // heartbeat goroutine only

	mu           sync.Mutex
	queue        []outFrame
	head         int
	writing      bool          // a write loop is running (or has finished the close for good)
	idle         bool          // the write loop is parked on wake, its queue empty
	idleSince    uint64        // the heartbeat round in which it parked
	retire       bool          // the heartbeat told the parked write loop to exit
	wake         chan struct{} // capacity 1; made when a write loop first parks
	backlog      *BacklogQuery // the backlog to send before anything else; nil once sent
	closing      bool          // no more frames accepted
	drain        bool          // when closing: send what is queued first (shutdown)
	closeCode    int
	closeText    string
	closeSent    bool // a close frame went out already (gorilla sends 1009 itself)
	peerCode     int  // read loop only: the close code the peer sent (1000 when none)
	abortEarly   bool // abort came before attach: cut the connection as soon as it exists
	unregistered bool // guarded by hub.mu

	lastSent   uint64 // write loop only: the highest message id written
	floor      uint64 // write loop only: ids up to here are not owed once the backlog is sent
	readerDone chan struct{}
	abortOnce  sync.Once
}

func newClient(h *Hub, opts ConnectOptions) *Client {
	now := time.Now()
	c := &Client{
		hub:         h,
		userID:      opts.UserID,
		remoteAddr:  opts.RemoteAddr,
		connectedAt: now,
		readerDone:  make(chan struct{}),
		peerCode:    websocket.CloseNormalClosure,
		nextPing:    now.Add(h.cfg.PingInterval).UnixNano(),
	}
	if !opts.ExpiresAt.IsZero() {
		c.expiresAt = opts.ExpiresAt.UnixNano()
	}
	c.lastSeen.Store(now.UnixNano())
	return c
}

// UserID returns the user this connection belongs to.
func (c *Client) UserID() string { return c.userID }

func (c *Client) info(node string) ConnInfo {
	id := FormatID(c.id)
	if node != "" {
		id = node + "-" + id
	}
	return ConnInfo{ID: id, RemoteAddr: c.remoteAddr, ConnectedAt: c.connectedAt.UTC(), MessagesSent: c.sent.Load()}
}

// enqueue queues f without blocking and starts the write loop when none runs.
func (c *Client) enqueue(f outFrame) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.queue)-c.head >= c.hub.cfg.SendQueue {
		c.startCloseLocked(CloseSlowConsumer, "slow consumer", false)
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			// The write in progress may have started long ago: a client that reads again within
			// writeWait of the overflow must still get that write and then the 4001 close frame.
			_ = conn.UnderlyingConn().SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteWait))
		}
		c.hub.metrics.SlowConsumers.Inc()
		c.hub.unregister(c)
		return
	}
	if c.head > 0 && len(c.queue) == cap(c.queue) {
		// Reuse the consumed front instead of growing: the queue stays within 2x sendQueue.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue = c.queue[:n]
		c.head = 0
	}
	c.queue = append(c.queue, f)
	c.hub.metrics.Queued.Inc()
	start := !c.writing
	c.writing = true
	if start {
		c.hub.clientGoroutines.Add(1)
	}
	c.wakeLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// closeWith closes the connection with a close frame. With drain, queued frames are written
// first; otherwise they are dropped (they stay in the store). Only the first call counts.
func (c *Client) closeWith(code int, text string, drain bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.startCloseLocked(code, text, drain)
	start := !c.writing
	c.writing = true
	if start {
		c.hub.clientGoroutines.Add(1)
	}
	c.mu.Unlock()
	c.hub.unregister(c)
	if start {
		go c.writeLoop()
	}
}

// startCloseLocked marks the client closing. It does not start a write loop: on overflow one is
// running already, and closeWith starts one when none is.
func (c *Client) startCloseLocked(code int, text string, drain bool) {
	c.closing = true
	c.wakeLocked()
	c.drain = drain
	c.closeCode = code
	c.closeText = text
	if !drain {
		c.dropQueueLocked()
		c.backlog = nil
	}
}

func (c *Client) dropQueueLocked() {
	if n := len(c.queue) - c.head; n > 0 {
		c.hub.metrics.Queued.Sub(float64(n))
	}
	c.queue = nil
	c.head = 0
}

// attach gives the client its upgraded connection and reports whether the write loop must start
// (a backlog, queued frames or a close are waiting); when not, the next enqueue starts it.
func (c *Client) attach(conn *websocket.Conn) (startWriter bool) {
	c.mu.Lock()
	c.conn = conn
	c.batch, _ = conn.UnderlyingConn().(*batchConn)
	early := c.abortEarly
	startWriter = c.backlog != nil || c.head < len(c.queue) || c.closing
	c.writing = startWriter
	c.mu.Unlock()
	if early {
		c.abort()
	}
	return startWriter
}

// abort cuts the TCP connection: both loops then fail fast and exit. Before attach it only
// leaves a note for attach.
func (c *Client) abort() {
	c.mu.Lock()
	conn := c.conn
	if conn == nil {
		c.abortEarly = true
	}
	c.mu.Unlock()
	if conn != nil {
		c.abortOnce.Do(func() { _ = conn.Close() })
	}
}

// wakeLocked resumes a parked write loop: frames or a close are waiting.
func (c *Client) wakeLocked() {
	if c.idle {
		c.idle = false
		c.wake <- struct{}{} // never blocks: one token per parking, and the loop takes it
	}
}

// retireIdleWriter ends a write loop that has been parked since before the previous heartbeat
// round: from then on the connection costs no goroutine again until something is sent.
func (c *Client) retireIdleWriter(round uint64) {
	c.mu.Lock()
	if c.idle && c.idleSince+1 < round {
		c.retire = true
		c.wakeLocked()
	}
	c.mu.Unlock()
}

// pop takes the next job for the write loop. It returns ok=false when the loop must exit and
// park=true when it must wait on c.wake (only when linger is asked for and nothing is queued);
// more says that frames are queued behind f.
func (c *Client) pop(linger bool) (f outFrame, backlog *BacklogQuery, closeNow, park, more, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backlog != nil {
		backlog, c.backlog = c.backlog, nil
		return f, backlog, false, false, false, true
	}
	if c.head < len(c.queue) {
		f = c.queue[c.head]
		c.queue[c.head] = outFrame{}
		c.head++
		c.hub.metrics.Queued.Dec()
		return f, nil, false, false, c.head < len(c.queue), true
	}
	c.queue = c.queue[:0]
	c.head = 0
	if cap(c.queue) > 16 {
		c.queue = nil // an idle connection keeps no queue memory
	}
	if c.closing {
		return f, nil, true, false, false, true // writing stays true: this client never gets another writer
	}
	if linger && !c.retire {
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		c.idle = true
		c.idleSince = c.hub.heartbeatRound.Load()
		return f, nil, false, true, false, true
	}
	c.retire = false
	c.wake = nil // no token is left in it: each one is taken right after parking
	c.writing = false
	return f, nil, false, false, false, false
}

// checkHeartbeat runs on the hub's heartbeat goroutine: expire tokens, drop silent peers, ping.
func (c *Client) checkHeartbeat(now int64) {
	if c.expiresAt != 0 && now >= c.expiresAt {
		c.closeWith(websocket.ClosePolicyViolation, "token expired", false)
		return
	}
	if now-c.lastSeen.Load() > int64(c.hub.cfg.PongWait) {
		c.hub.metrics.PongTimeouts.Inc()
		c.mu.Lock()
		c.closing = true
		c.closeSent = true
		c.dropQueueLocked()
		c.wakeLocked()
		c.mu.Unlock()
		c.hub.unregister(c)
		c.abort()
		return
	}
	if now >= c.nextPing {
		c.nextPing = now + int64(c.hub.cfg.PingInterval)
		c.enqueue(outFrame{kind: framePing})
	}
}
