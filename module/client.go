package module

import (
	"context"
	"errors"
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
// park=true when it must wait on c.wake (only when linger is asked for and nothing is queued).
func (c *Client) pop(linger bool) (f outFrame, backlog *BacklogQuery, closeNow, park, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backlog != nil {
		backlog, c.backlog = c.backlog, nil
		return f, backlog, false, false, true
	}
	if c.head < len(c.queue) {
		f = c.queue[c.head]
		c.queue[c.head] = outFrame{}
		c.head++
		c.hub.metrics.Queued.Dec()
		return f, nil, false, false, true
	}
	c.queue = c.queue[:0]
	c.head = 0
	if cap(c.queue) > 16 {
		c.queue = nil // an idle connection keeps no queue memory
	}
	if c.closing {
		return f, nil, true, false, true // writing stays true: this client never gets another writer
	}
	if linger && !c.retire {
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		c.idle = true
		c.idleSince = c.hub.heartbeatRound.Load()
		return f, nil, false, true, true
	}
	c.retire = false
	c.wake = nil // no token is left in it: each one is taken right after parking
	c.writing = false
	return f, nil, false, false, false
}

// writeLoop is the only goroutine that writes to conn. When its queue runs empty after a
// broadcast it parks for one to two heartbeat rounds before exiting: broadcasts reach every
// connection at once, so under a stream of them each connection keeps one writer instead of
// starting one per frame, whose start and stack growth (the write path through gorilla needs
// more than the first 2 KB) cost about a sixth of a delivery. After anything else it exits at
// once: a user's own messages are sparse, so a parked writer would mostly wait out its rounds
// as one more grown stack for the GC to scan, and idle connections keep no goroutine.
func (c *Client) writeLoop() {
	defer c.hub.clientGoroutines.Done()
	var delivered []uint64
	defer func() { c.markDelivered(delivered) }()
	wroteBroadcast := false
	for {
		f, backlog, closeNow, park, ok := c.pop(wroteBroadcast)
		if !ok {
			return
		}
		if closeNow {
			c.finishClose()
			return
		}
		if park {
			// Marks must not wait for the next frame: pending reads and stats rely on them.
			c.markDelivered(delivered)
			delivered = nil
			wroteBroadcast = false
			<-c.wake
			continue
		}
		wroteBroadcast = wroteBroadcast || f.kind == frameBroadcast
		var err error
		if backlog != nil {
			delivered, err = c.writeBacklog(*backlog, delivered, 0)
			c.lastSent = max(c.lastSent, c.floor)
		} else {
			delivered, err = c.write(f, delivered)
		}
		if errors.Is(err, errBacklogAborted) {
			err = nil // closing with 1013 already
		}
		if err != nil {
			c.writeFailed(err)
		}
		if len(delivered) >= 64 {
			c.markDelivered(delivered)
			delivered = nil
		}
	}
}

// writeFailed stops a connection whose socket broke: nothing more can be written to it.
func (c *Client) writeFailed(err error) {
	c.mu.Lock()
	if !c.closing {
		c.startCloseLocked(websocket.CloseAbnormalClosure, "", false)
	}
	c.closeSent = true
	c.dropQueueLocked()
	c.mu.Unlock()
	c.hub.unregister(c)
	if errors.Is(err, websocket.ErrCloseSent) {
		// gorilla sent a close frame itself (1009 from the reader): the reader is draining the
		// input so that frame is not lost to a reset; finishClose cuts the socket after it.
		return
	}
	c.abort()
}

// errBacklogAborted means the backlog could not be read and the connection is closing with
// 1013: nothing more may be sent on it (a live message after a gap would hide the gap).
var errBacklogAborted = errors.New("backlog read failed")

// stopped reports whether the connection is closing without draining (kick, expiry, overflow):
// a backlog in progress stops there.
func (c *Client) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing && !c.drain
}

func (c *Client) markDelivered(ids []uint64) {
	if len(ids) > 0 {
		c.hub.store.MarkDelivered(c.userID, ids)
	}
}

func (c *Client) write(f outFrame, delivered []uint64) ([]uint64, error) {
	deadline := time.Now().Add(c.hub.cfg.WriteWait)
	switch f.kind {
	case frameMessage:
		if f.id <= c.lastSent {
			return delivered, nil // already written as part of the backlog
		}
		if c.hub.consecutive && f.id > c.lastSent+1 {
			// Ids of this store have no holes: the missing ones were lost on the way (Pub/Sub
			// while a node was cut off). The store has them; send them first, in order.
			var err error
			delivered, err = c.writeBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent, Limit: int(min(f.id-c.lastSent-1, backlogPage))}, delivered, f.id)
			if errors.Is(err, errBacklogAborted) {
				return delivered, nil // do not send f after a gap that could not be filled
			}
			if err != nil || f.id <= c.lastSent {
				return delivered, err
			}
		}
		if err := c.writeText(f.data, deadline); err != nil {
			return delivered, err
		}
		c.lastSent = f.id
		c.sent.Add(1)
		c.hub.metrics.deliveredLive.Inc()
		c.hub.metrics.DeliveryLatency.Observe(float64(time.Now().UnixNano()-f.born) / 1e9)
		return append(delivered, f.id), nil
	case frameBroadcast:
		if err := c.writeText(f.data, deadline); err != nil {
			return delivered, err
		}
		c.sent.Add(1)
		c.hub.metrics.deliveredBroadcast.Inc()
		return delivered, nil
	case frameAppPong:
		return delivered, c.writeText(f.data, deadline)
	case framePing:
		return delivered, c.conn.WriteControl(websocket.PingMessage, nil, deadline)
	case framePong:
		return delivered, c.conn.WriteControl(websocket.PongMessage, f.data, deadline)
	case frameCatchUp:
		return c.writeBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent}, delivered, 0)
	}
	return delivered, nil
}

func (c *Client) writeText(b []byte, deadline time.Time) error {
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// backlogPage bounds the memory one connection's backlog read holds at a time.
const backlogPage = 200

// writeBacklog sends stored messages selected by q, page by page, below the id before (0: all).
// Live messages queue meanwhile; those already sent here are skipped by id in write.
func (c *Client) writeBacklog(q BacklogQuery, delivered []uint64, before uint64) ([]uint64, error) {
	if q.Limit <= 0 {
		q.Limit = backlogPage
	}
	for {
		if c.stopped() {
			return delivered, errBacklogAborted
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.WriteWait)
		msgs, err := c.hub.store.Backlog(ctx, c.userID, q)
		cancel()
		if err != nil {
			c.hub.log.Warn("backlog read failed; closing the connection so it resumes later", "user", c.userID, "err", err)
			c.closeWith(websocket.CloseTryAgainLater, "store unavailable", false)
			return delivered, errBacklogAborted
		}
		var buf []byte
		for i := range msgs {
			m := &msgs[i]
			if before != 0 && m.ID >= before {
				return delivered, nil
			}
			if m.ID <= c.lastSent {
				continue
			}
			if i%16 == 0 && c.stopped() {
				return delivered, errBacklogAborted
			}
			buf = m.AppendFrame(buf[:0])
			if err := c.writeText(buf, time.Now().Add(c.hub.cfg.WriteWait)); err != nil {
				return delivered, err
			}
			c.lastSent = m.ID
			c.sent.Add(1)
			c.hub.metrics.deliveredBacklog.Inc()
			delivered = append(delivered, m.ID)
			if len(delivered) >= 64 {
				c.markDelivered(delivered)
				delivered = nil
			}
		}
		if len(msgs) < q.Limit {
			return delivered, nil
		}
		q.After = msgs[len(msgs)-1].ID
	}
}

// finishClose sends the close frame, waits briefly for the peer's answer so the frame is not
// lost to a TCP reset, and cuts the connection.
func (c *Client) finishClose() {
	c.mu.Lock()
	sent, code, text := c.closeSent, c.closeCode, c.closeText
	c.closeSent = true
	c.mu.Unlock()
	if !sent {
		msg := websocket.FormatCloseMessage(code, text)
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.hub.cfg.WriteWait))
	}
	grace := min(c.hub.cfg.WriteWait, closeGrace)
	t := time.NewTimer(grace)
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	t.Stop()
	c.abort()
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
