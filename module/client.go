package module

import (
	"sync"
	"sync/atomic"
	"time"
)

// Close codes of API.md. The WebSocket adapter sends them in close frames, the SSE adapter in
// its "close" event.
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001 // server shutting down
	CloseAbnormal      = 1006 // never sent: the connection broke
	ClosePolicy        = 1008 // token expired
	CloseTooBig        = 1009 // client frame over websocket.maxMessageBytes
	CloseTryAgainLater = 1013 // the store failed while reading the backlog
	CloseRemoved       = 4000 // DELETE /deleteClient
	CloseSlowConsumer  = 4001 // send queue overflowed
)

// closeGrace bounds how long a closing connection waits for the peer's close frame before the
// connection is cut.
const closeGrace = 2 * time.Second

// clientState is where a connection is in its life. Transitions, all under Client.mu:
//
//	reserved -> open      Connect attached the transport (the write loop may start)
//	reserved -> closing   closed before the upgrade finished (Connect then cuts it)
//	open     -> closing   closeWith: a close code was chosen; the queue is dropped, or drained
//	                      first on shutdown
//	closing  -> closed    the write loop sent the close (unless the peer or gorilla did) and cut
//	                      the transport, or a write failed
//
// A client is in the hub's registry from Reserve until the first close; it never goes back.
type clientState uint8

const (
	stateReserved clientState = iota
	stateOpen
	stateClosing
	stateClosed
)

func (s clientState) String() string {
	return [...]string{"reserved", "open", "closing", "closed"}[s]
}

// writerState says whether a write loop goroutine exists for the client. Transitions, under
// Client.mu:
//
//	none    -> running  work arrived (a frame, the backlog, a close) on an open client
//	running -> parked   the queue ran empty after a broadcast: wait for more (see writeLoop)
//	parked  -> running  wake: work arrived, or the heartbeat retired the parked loop
//	running -> none     the queue ran empty otherwise; or the client closed for good
type writerState uint8

const (
	writerNone writerState = iota
	writerRunning
	writerParked
)

// Client is one subscriber connection of one user, over any Transport.
//
// Concurrency: enqueue, closeWith and the read-side methods (Touch, HandleText, HandlePing,
// ReadEnded) are safe from any goroutine. Only the write loop calls the transport's write
// methods; it runs only while there is work, so an idle client has no write goroutine. The
// transport adapter's reader is the only caller of the read-side methods besides the hub.
//
// Fields are grouped by owner: immutable once Reserve returns; atomics; the heartbeat
// goroutine's; mu's; the write loop's.
type Client struct {
	// Immutable once Reserve returns.
	hub         *Hub
	id          uint64
	userID      string
	remoteAddr  string
	connectedAt int64 // unix nanos
	expiresAt   int64 // token expiry in unix nanos; 0 = none

	lastSeen atomic.Int64 // unix nanos of the last sign of life from the peer
	sent     atomic.Int64 // data and broadcast frames written

	nextPing int64     // heartbeat goroutine only
	acks     ackBudget // the adapter's reader only

	mu          sync.Mutex
	transport   Transport     // set by attach
	queue       frameQueue    // bounded by websocket.sendQueue and websocket.sendQueueBytes
	hello       *Frame        // version 2: written before anything else; nil once taken
	control     controlFrames // pings and pongs owed: written before queued frames and between backlog pages
	backlog     *BacklogQuery // what the store owes before live frames; nil once taken
	parkedRound uint64        // heartbeat round in which the write loop parked
	wake        chan struct{} // capacity 1; made when a write loop first parks
	closeText   string
	readerDone  chan struct{} // made when finishClose waits for the reader; closed by ReadEnded

	// Write loop only.
	lastSent uint64 // the highest message id written
	floor    uint64 // ids up to here are not owed once the backlog is sent

	// The small fields, together so that they share a word (a connection's memory counts: an idle
	// one is mostly this struct, gorilla's and a goroutine).
	kind         TransportKind // immutable
	version      uint8         // immutable: protocol version, 1 or 2 (hello, acks)
	state        clientState   // mu
	writer       writerState   // mu
	closeCode    uint16        // mu
	retire       bool          // mu: the heartbeat told the parked write loop to exit
	drain        bool          // mu: closing: write what is queued first (shutdown)
	closeSent    bool          // mu: no close to write: sent already (by gorilla for 1009), or the transport broke
	abortEarly   bool          // mu: cut before the transport was attached: Connect cuts it at once
	readerEnded  bool          // mu: ReadEnded ran
	unregistered bool          // guarded by hub.mu
}

func newClient(h *Hub, opts ConnectOptions) *Client {
	now := time.Now()
	c := &Client{
		hub:         h,
		userID:      opts.UserID,
		connectedAt: now.UnixNano(),
		kind:        opts.Kind,
		version:     uint8(min(max(opts.Version, 1), 2)),
		nextPing:    now.Add(h.cfg.PingInterval).UnixNano(),
	}
	c.remoteAddr = opts.RemoteAddr
	if c.kind == 0 {
		c.kind = TransportWebSocket
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
	return ConnInfo{ID: id, RemoteAddr: c.remoteAddr, ConnectedAt: time.Unix(0, c.connectedAt).UTC(), MessagesSent: c.sent.Load()}
}

// enqueue queues one entry without blocking. A full queue (by count or bytes) closes the client
// with 4001: its messages stay stored, and the publisher never waits. A lone entry larger than
// websocket.sendQueueBytes is still taken when the queue is empty, so any message that may be
// published can be delivered.
func (c *Client) enqueue(it queued) {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return
	}
	if c.queue.len() > 0 && (c.queue.len() >= c.hub.cfg.SendQueue || c.queue.size()+it.size() > c.hub.cfg.SendQueueBytes) {
		c.mu.Unlock()
		c.overflow()
		return
	}
	c.queue.push(it)
	c.hub.metrics.Queued.Inc()
	start := c.needWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// overflow closes a slow consumer with 4001.
func (c *Client) overflow() {
	if !c.closeWith(CloseSlowConsumer, "slow consumer", false) {
		return
	}
	c.hub.metrics.SlowConsumers.Inc()
	c.mu.Lock()
	t := c.transport
	c.mu.Unlock()
	if t != nil {
		// The write in progress may have started long ago: a client that reads again within
		// writeWait of the overflow must still get that write and then the close.
		_ = t.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteWait))
	}
}

// needWriterLocked wakes or starts the write loop for new work and reports whether the caller
// must start its goroutine (after unlocking). Before the transport is attached nothing starts:
// Connect starts the loop when work waits.
func (c *Client) needWriterLocked() (start bool) {
	if c.transport == nil {
		return false
	}
	switch c.writer {
	case writerNone:
		c.writer = writerRunning
		c.hub.clientGoroutines.Add(1)
		return true
	case writerParked:
		c.writer = writerRunning
		c.wake <- struct{}{} // never blocks: one token per parking, taken by the loop
	}
	return false
}

// closeWith starts closing the connection with code and text, and reports whether this call did
// (only the first close counts). With drain the queued frames are written first (shutdown);
// otherwise they are dropped: the messages stay stored. The client leaves the registry at once.
func (c *Client) closeWith(code int, text string, drain bool) bool {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return false
	}
	c.state, c.closeCode, c.closeText, c.drain = stateClosing, uint16(code), text, drain
	c.backlog, c.hello = nil, nil
	if !drain {
		c.dropQueueLocked()
	}
	start := c.needWriterLocked()
	c.mu.Unlock()
	c.hub.unregister(c)
	if start {
		go c.writeLoop()
	}
	return true
}

func (c *Client) dropQueueLocked() {
	if n := c.queue.drop(); n > 0 {
		c.hub.metrics.Queued.Sub(float64(n))
	}
}

// attach gives a reserved client its transport. It reports whether the write loop must start
// now (the hello, a backlog, queued frames or a close wait), and whether the client was closed
// or cut before the transport existed, in which case the caller cuts the transport.
func (c *Client) attach(t Transport) (startWriter, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.transport = t
	if c.abortEarly {
		return false, true
	}
	if c.state == stateReserved {
		c.state = stateOpen
	}
	if c.hello != nil || c.control.any() || c.backlog != nil || c.queue.len() > 0 || c.state == stateClosing {
		c.writer = writerRunning
		return true, false
	}
	return false, false
}

// abort cuts the transport: the write loop and the adapter's reader then fail fast and end.
// Before attach it leaves a note for attach.
func (c *Client) abort() {
	c.mu.Lock()
	t := c.transport
	if t == nil {
		c.abortEarly = true
	}
	if c.state < stateClosing {
		c.state = stateClosing
	}
	c.mu.Unlock()
	if t != nil {
		t.Abort() // idempotent (Transport)
	}
}

// retireIdleWriter ends a write loop that has been parked since before the previous heartbeat
// round (one to two rounds of idleness).
func (c *Client) retireIdleWriter(round uint64) {
	c.mu.Lock()
	if c.writer == writerParked && c.parkedRound+1 < round {
		c.retire = true
		c.writer = writerRunning
		c.wake <- struct{}{}
	}
	c.mu.Unlock()
}

// checkHeartbeat runs on the hub's heartbeat goroutine: expire tokens, drop silent peers, ping.
func (c *Client) checkHeartbeat(now int64) {
	if c.expiresAt != 0 && now >= c.expiresAt {
		c.closeWith(ClosePolicy, "token expired", false)
		return
	}
	if c.kind.peerSpeaks() && now-c.lastSeen.Load() > int64(c.hub.cfg.PongWait) {
		c.hub.metrics.PongTimeouts.Inc()
		c.fail()
		return
	}
	if now >= c.nextPing {
		c.nextPing = now + int64(c.hub.cfg.PingInterval)
		c.owe(func(cf *controlFrames) { cf.ping = true })
	}
}

// controlFrames are the keep-alive frames a connection owes: they carry no data and no order
// relative to messages, so they are not queued behind them. A ping must reach a peer that is
// busy reading a long backlog (or it would be dropped for silence after pongWait), and a pong
// must answer the peer's ping however much is queued. Each kind is owed at most once: a second
// ping before the first was written adds nothing, and a pong answers the latest ping (RFC 6455
// 5.5.3 allows answering only the most recent).
type controlFrames struct {
	ping     bool // a WebSocket ping, or an SSE comment
	pong     bool // a WebSocket pong carrying pongData
	appPong  bool // {"type":"pong"}, for a client's application ping
	pongData []byte
}

func (cf *controlFrames) any() bool { return cf.ping || cf.pong || cf.appPong }

// take appends the owed frames to dst and clears them.
func (cf *controlFrames) take(dst []Frame) []Frame {
	if cf.ping {
		dst = append(dst, Frame{Kind: FramePing})
	}
	if cf.pong {
		dst = append(dst, Frame{Kind: FramePong, Body: cf.pongData})
	}
	if cf.appPong {
		dst = append(dst, Frame{Kind: FrameControl, Body: appPong})
	}
	*cf = controlFrames{}
	return dst
}

// owe records a control frame the connection must write (set by the caller under mu) and starts
// or wakes the write loop.
func (c *Client) owe(set func(*controlFrames)) {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return
	}
	set(&c.control)
	start := c.needWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// fail ends a connection that can no longer be written to (its peer went silent, or a write
// failed): no close frame, the queue is dropped, the transport is cut. A parked write loop is
// woken so that it exits; a running one fails on its next write or finds the client closed.
func (c *Client) fail() {
	c.mu.Lock()
	if c.state < stateClosing {
		c.state, c.closeCode = stateClosing, CloseAbnormal
	}
	c.closeSent = true
	c.backlog, c.hello = nil, nil
	c.dropQueueLocked()
	if c.writer == writerParked {
		c.writer = writerRunning
		c.wake <- struct{}{}
	}
	c.mu.Unlock()
	c.hub.unregister(c)
	c.abort()
}
