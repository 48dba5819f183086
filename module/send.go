package module

import (
	"context"
	"time"
)

// This file is how the write loop sends: queued frames, backlog pages, the close.

// sendQueued writes the batch the loop took from the queue, in order, skipping messages already
// written (the backlog may have carried them) and filling gaps from the store first.
func (w *writer) sendQueued() error {
	c := w.c
	defer clear(w.items) // the batch must not keep frames alive once written
	for i := range w.items {
		it := &w.items[i]
		if it.catchUp {
			if err := w.flush(); err != nil {
				return err
			}
			if err := w.sendBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent}, 0); err != nil {
				return err
			}
			continue
		}
		f := it.frame
		switch f.Kind {
		case FrameMessage:
			if f.ID <= c.lastSent {
				continue // already written as part of the backlog
			}
			if c.hub.consecutive && f.ID > c.lastSent+1 {
				// Ids of this store have no holes: the missing ones were lost on the way (Pub/Sub
				// while a node was cut off). The store has them; send them first, in order.
				if err := w.flush(); err != nil {
					return err
				}
				if err := w.sendBacklog(BacklogQuery{After: c.lastSent, Since: c.lastSent}, f.ID); err != nil {
					return err
				}
				if f.ID <= c.lastSent {
					continue
				}
			}
			c.lastSent = f.ID
			w.ids = append(w.ids, f.ID)
			w.latency = append(w.latency, it.born)
			w.counts.live++
		case FrameBroadcast:
			w.counts.broadcast++
		}
		w.frames = append(w.frames, f)
	}
	return w.flush()
}

// hasBroadcast reports whether the batch holds a broadcast (the loop then lingers when idle).
func (w *writer) hasBroadcast() bool {
	for i := range w.items {
		if w.items[i].frame.Kind == FrameBroadcast {
			return true
		}
	}
	return false
}

// flush hands the collected frames to the transport in one call. Ids count as written only once
// it succeeded: after a failure they stay owed (pending, or after the client's since).
func (w *writer) flush() error {
	if len(w.frames) == 0 {
		return nil
	}
	c := w.c
	err := c.transport.WriteFrames(w.frames, time.Now().Add(c.hub.cfg.WriteWait))
	if err == nil {
		now := time.Now().UnixNano()
		for _, born := range w.latency {
			c.hub.metrics.DeliveryLatency.Observe(float64(now-born) / 1e9)
		}
		w.written = append(w.written, w.ids...)
		c.sent.Add(int64(w.counts.live + w.counts.backlog + w.counts.broadcast))
		m := c.hub.metrics
		m.deliveredLive.Add(float64(w.counts.live))
		m.deliveredBacklog.Add(float64(w.counts.backlog))
		m.deliveredBroadcast.Add(float64(w.counts.broadcast))
	}
	clear(w.frames)
	w.frames, w.ids, w.latency = w.frames[:0], w.ids[:0], w.latency[:0]
	w.counts.live, w.counts.backlog, w.counts.broadcast = 0, 0, 0
	return err
}

// mark hands the written ids to the store (which batches them with its other writes). A version
// 1 connection takes them out of the unread queue; a version 2 connection only records that
// they were sent: its client's acks take them out.
func (w *writer) mark() {
	if len(w.written) == 0 {
		return
	}
	w.c.hub.store.MarkWritten(w.c.userID, w.written, w.c.version < 2, time.Now())
	w.written = nil // the store may keep the slice
}

// sendBacklog writes the stored messages selected by q, page by page, stopping before the id
// before (0: no stop). A page is read, then encoded and written in chunks of up to
// maxWriteBatch bytes (one WriteFrames call each), each message's data let go once encoded, and
// the next page is read only once this one is written: what a backlog holds at once is about
// one page plus one chunk, whatever the client does. Live frames queue meanwhile; those the
// backlog carried are skipped by id in sendQueued.
func (w *writer) sendBacklog(q BacklogQuery, before uint64) error {
	c := w.c
	q.Limit, q.MaxBytes = backlogPage, backlogPageBytes
	for {
		if c.stopping() {
			return errStopped
		}
		// Pings and pongs owed meanwhile go out between pages: a peer busy reading a long
		// backlog must still be pinged (and answered).
		if err := w.sendControl(); err != nil {
			return err
		}
		msgs, err := c.hub.readBacklog(c.userID, q)
		if err != nil {
			c.hub.log.Warn("backlog read failed; closing the connection so that it resumes later", "user", c.userID, "err", err)
			c.closeWith(CloseTryAgainLater, "store unavailable", false)
			return errStopped
		}
		if len(msgs) == 0 {
			return nil
		}
		data, reached := 0, false
		var buf []byte // the chunk's frames are slices of it
		chunk := 0
		for i := range msgs {
			m := &msgs[i]
			data += len(m.Data)
			if before != 0 && m.ID >= before {
				reached = true
				break
			}
			if m.ID <= c.lastSent {
				continue
			}
			// frameOverhead bounds what AppendFrame adds, so a frame never outgrows the room
			// made for it: buf is never moved under the frames that point into it.
			if need := len(m.Data) + len(m.UserID) + frameOverhead; cap(buf)-len(buf) < need {
				buf = make([]byte, 0, max(need, min(maxWriteBatch, w.pageRest(msgs[i:]))))
			}
			start := len(buf)
			buf = m.AppendFrame(buf)
			m.Data = nil // encoded: the page's copy can go
			w.frames = append(w.frames, Frame{Kind: FrameMessage, ID: m.ID, Body: buf[start:len(buf):len(buf)]})
			w.ids = append(w.ids, m.ID)
			w.counts.backlog++
			c.lastSent = m.ID
			if chunk += len(buf) - start; chunk >= maxWriteBatch {
				if err := w.flush(); err != nil {
					return err
				}
				chunk, buf = 0, nil
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if len(w.written) >= markEvery {
			w.mark()
		}
		// The page ended short of both bounds: nothing more matches (a page cut by bytes holds
		// MaxBytes or more: BacklogQuery).
		if reached || len(msgs) < q.Limit && data < q.MaxBytes {
			return nil
		}
		q.After = msgs[len(msgs)-1].ID
	}
}

// pageRest is the encoded size of the rest of a page, to size a chunk's buffer.
func (w *writer) pageRest(rest []Message) int {
	n := 0
	for i := range rest {
		n += len(rest[i].Data) + len(rest[i].UserID) + frameOverhead
		if n >= maxWriteBatch {
			break
		}
	}
	return n
}

// sendControl writes the pings and pongs the connection owes, if any.
func (w *writer) sendControl() error {
	c := w.c
	c.mu.Lock()
	w.frames = c.control.take(w.frames)
	c.mu.Unlock()
	return w.flush()
}

// stopping reports whether the connection is closing: a backlog in progress stops there (the
// messages stay stored).
func (c *Client) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state >= stateClosing
}

// readBacklog reads one backlog page, with at most maxStoreReads such reads at once on this node
// (a reconnect storm, or every connection catching up after a Redis outage, would otherwise
// queue thousands of reads on the store at the same moment).
func (h *Hub) readBacklog(userID string, q BacklogQuery) ([]Message, error) {
	h.storeReads <- struct{}{}
	defer func() { <-h.storeReads }()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteWait)
	defer cancel()
	return h.store.Backlog(ctx, userID, q)
}

// writeFailed stops a connection whose transport broke: nothing more can be written to it.
func (c *Client) writeFailed(err error) {
	c.hub.log.Debug("write failed; dropping the connection", "user", c.userID, "err", err)
	c.fail()
}

// finishClose writes the close (unless one was sent already), waits briefly for the peer's answer
// so that the close frame is not lost to a TCP reset, and cuts the transport.
func (c *Client) finishClose() {
	c.mu.Lock()
	sent, code, text := c.closeSent, int(c.closeCode), c.closeText
	c.closeSent = true
	c.state = stateClosed
	var readerDone chan struct{}
	if c.kind.peerSpeaks() && !c.readerEnded {
		if c.readerDone == nil {
			c.readerDone = make(chan struct{}) // only now: an idle connection holds no channel
		}
		readerDone = c.readerDone
	}
	c.mu.Unlock()
	if !sent {
		_ = c.transport.WriteClose(code, text, time.Now().Add(c.hub.cfg.WriteWait))
	}
	if readerDone != nil {
		t := time.NewTimer(min(c.hub.cfg.WriteWait, closeGrace))
		select {
		case <-readerDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.abort()
}
