package module

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// writer is the write loop's own state.
//
// Frames popped while more are queued are collected into one batch (see batchConn) and written
// together once the queue is empty or the batch is full. A message counts as delivered only once
// its bytes went to the socket: ids in an open batch wait in pending, and are dropped from it
// (the messages stay owed) when the batch cannot be written.
type writer struct {
	c         *Client
	open      bool     // a batch is collecting
	pending   []uint64 // ids written into the open batch
	delivered []uint64 // ids written to the socket, marked delivered in groups
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
	w := writer{c: c}
	defer w.markAll()
	wroteBroadcast := false
	for {
		f, backlog, closeNow, park, more, ok := c.pop(wroteBroadcast)
		if !ok || closeNow || park {
			// A close may have dropped the queue under an open batch: send what it holds (gorilla's
			// own close frame may be in it).
			if err := w.flush(); err != nil {
				c.writeFailed(err)
			}
		}
		if !ok {
			return
		}
		if closeNow {
			c.finishClose()
			return
		}
		if park {
			// Marks must not wait for the next frame: pending reads and stats rely on them.
			w.markAll()
			wroteBroadcast = false
			<-c.wake
			continue
		}
		wroteBroadcast = wroteBroadcast || f.kind == frameBroadcast
		var err error
		if backlog != nil {
			err = w.writeBacklog(*backlog, 0)
			c.lastSent = max(c.lastSent, c.floor)
		} else {
			if more {
				w.begin()
			}
			err = w.write(f)
			if err == nil {
				err = w.flushIfDue(more)
			}
		}
		if errors.Is(err, errBacklogAborted) {
			err = nil // closing with 1013 already
		}
		if err != nil {
			// The error may be gorilla's (a close frame it sent, now in the batch) rather than the
			// socket's: what the batch holds still goes out if it can.
			_ = w.flush()
			c.writeFailed(err)
		}
		if len(w.delivered) >= 64 {
			w.markAll()
		}
	}
}

// begin opens a batch, on connections that support it.
func (w *writer) begin() {
	if w.c.batch != nil && !w.open {
		w.c.batch.begin()
		w.open = true
	}
}

// flushIfDue writes the open batch out when nothing more is queued or it is full.
func (w *writer) flushIfDue(more bool) error {
	if !w.open {
		return nil
	}
	if more {
		if w.c.batch.size() < maxBatch {
			return nil
		}
	}
	return w.flush()
}

// flush writes the open batch out, if any.
func (w *writer) flush() error {
	if !w.open {
		return nil
	}
	w.open = false
	err := w.c.batch.flush()
	if err == nil {
		w.delivered = append(w.delivered, w.pending...)
	}
	w.pending = w.pending[:0]
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	return nil
}

// wrote records that message id was written, to the socket or into the open batch.
func (w *writer) wrote(id uint64) {
	if w.open {
		w.pending = append(w.pending, id)
	} else {
		w.delivered = append(w.delivered, id)
	}
}

func (w *writer) markAll() {
	if len(w.delivered) > 0 {
		w.c.hub.store.MarkWritten(w.c.userID, w.delivered, true, time.Now())
		w.delivered = nil
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

func (w *writer) write(f outFrame) error {
	c := w.c
	deadline := time.Now().Add(c.hub.cfg.WriteWait)
	switch f.kind {
	case frameMessage:
		if f.id <= c.lastSent {
			return nil // already written as part of the backlog
		}
		if c.hub.consecutive && f.id > c.lastSent+1 {
			// Ids of this store have no holes: the missing ones were lost on the way (Pub/Sub
			// while a node was cut off). The store has them; send them first, in order.
			err := w.writeBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent, Limit: int(min(f.id-c.lastSent-1, backlogPage))}, f.id)
			if errors.Is(err, errBacklogAborted) {
				return nil // do not send f after a gap that could not be filled
			}
			if err != nil || f.id <= c.lastSent {
				return err
			}
		}
		if err := c.writeText(f.data, deadline); err != nil {
			return err
		}
		c.lastSent = f.id
		c.sent.Add(1)
		c.hub.metrics.deliveredLive.Inc()
		c.hub.metrics.DeliveryLatency.Observe(float64(time.Now().UnixNano()-f.born) / 1e9)
		w.wrote(f.id)
		return nil
	case frameBroadcast:
		if err := c.writeText(f.data, deadline); err != nil {
			return err
		}
		c.sent.Add(1)
		c.hub.metrics.deliveredBroadcast.Inc()
		return nil
	case frameAppPong:
		return c.writeText(f.data, deadline)
	case framePing:
		return c.conn.WriteControl(websocket.PingMessage, nil, deadline)
	case framePong:
		return c.conn.WriteControl(websocket.PongMessage, f.data, deadline)
	case frameCatchUp:
		return w.writeBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent}, 0)
	}
	return nil
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
// Each page goes out in as few writes as the batch size allows. Live messages queue meanwhile;
// those already sent here are skipped by id in write.
func (w *writer) writeBacklog(q BacklogQuery, before uint64) error {
	c := w.c
	if q.Limit <= 0 {
		q.Limit = backlogPage
	}
	for {
		if c.stopped() {
			return errors.Join(w.flush(), errBacklogAborted)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.WriteWait)
		msgs, err := c.hub.store.Backlog(ctx, c.userID, q)
		cancel()
		if err != nil {
			c.hub.log.Warn("backlog read failed; closing the connection so it resumes later", "user", c.userID, "err", err)
			c.closeWith(websocket.CloseTryAgainLater, "store unavailable", false)
			return errors.Join(w.flush(), errBacklogAborted)
		}
		w.begin()
		var buf []byte
		for i := range msgs {
			m := &msgs[i]
			if before != 0 && m.ID >= before {
				return w.flush()
			}
			if m.ID <= c.lastSent {
				continue
			}
			if i%16 == 0 && c.stopped() {
				return errors.Join(w.flush(), errBacklogAborted)
			}
			buf = m.AppendFrame(buf[:0])
			if err := c.writeText(buf, time.Now().Add(c.hub.cfg.WriteWait)); err != nil {
				return err
			}
			c.lastSent = m.ID
			c.sent.Add(1)
			c.hub.metrics.deliveredBacklog.Inc()
			w.wrote(m.ID)
			if err := w.flushIfDue(true); err != nil {
				return err
			}
			if len(w.delivered) >= 64 {
				w.markAll()
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if len(msgs) < q.Limit {
			return nil
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
