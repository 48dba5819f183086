package module

import (
	"errors"
	"time"
)

// Write batching. The write loop takes everything queued, up to maxWriteBatch bytes of frames,
// and hands it to the transport in one WriteFrames call: frames that queued while the socket was
// busy go out in one system call instead of one each (a loopback write costs 3-12 µs of CPU on
// this project's 2-core machines, most of what a delivery costs). The bound keeps the memory
// of one write, and its time under one deadline, small.
const maxWriteBatch = 64 << 10

// Backlog pages. A page is read, then encoded and written a chunk at a time before the next page
// is read, so what a backlog holds at once is about one page (backlogPageBytes of data, plus
// the message that reaches the bound) and one chunk of frames, whatever the client does:
// measured 344 KB per connection for a slow reader of 60 KB messages (api/bounds_test.go).
const (
	backlogPage      = 200
	backlogPageBytes = 64 << 10
)

// markEvery is how many written ids a write loop collects before handing them to the store,
// which batches them with its other writes.
const markEvery = 64

// writer is the write loop's own state; only the loop's goroutine touches it.
type writer struct {
	c       *Client
	items   []queued // the batch taken from the queue
	frames  []Frame  // the frames of one WriteFrames call
	ids     []uint64 // message ids in frames
	latency []int64  // their acceptance times, for the histogram
	counts  struct{ live, backlog, broadcast int }
	written []uint64     // ids written and not yet marked
	backlog BacklogQuery // the backlog job taken by next
}

// errStopped means the connection is closing: nothing more may be written (after a backlog read
// failed, a live message after the gap would hide the gap).
var errStopped = errors.New("connection closing")

// writeLoop is the only goroutine that writes to the client's transport. It exists while there
// is work: the version 2 hello, the backlog, queued frames, the close.
//
// When its queue runs empty after a broadcast it parks for one to two heartbeat rounds before
// exiting: broadcasts reach every connection at once, so under a stream of them each connection
// keeps one writer instead of starting one per frame, whose start and stack growth cost about a
// sixth of a delivery. After anything else it exits at once: a user's own messages are sparse,
// so a parked writer would mostly wait out its rounds as one more grown stack for the GC to scan.
func (c *Client) writeLoop() {
	defer c.hub.clientGoroutines.Done()
	w := writer{c: c}
	defer w.mark()
	linger := false
	c.holdForBroadcasts()
	for {
		j := c.next(&w, linger)
		switch j {
		case jobExit:
			return
		case jobClose:
			c.finishClose()
			return
		case jobPark:
			w.mark() // marks must not wait for the next frame: pending reads and stats rely on them
			linger = false
			<-c.wake
			c.holdForBroadcasts()
			continue
		}
		var err error
		switch j {
		case jobHello, jobFrames:
			linger = linger || w.hasBroadcast()
			err = w.sendQueued()
		case jobControl:
			err = w.flush()
		case jobBacklog:
			err = w.sendBacklog(w.backlog, 0)
			c.lastSent = max(c.lastSent, c.floor)
		}
		if err != nil && !errors.Is(err, errStopped) {
			c.writeFailed(err)
		}
		if len(w.written) >= markEvery {
			w.mark()
		}
	}
}

// defaultBroadcastHold is how long a write loop woken by a broadcast waits before writing it
// (HubConfig.BroadcastHold), so that the broadcasts published meanwhile go out in the same system
// call. A broadcast reaches every connection at once, so under a stream of them each socket
// write would otherwise carry one frame, and the writes, not the frames, are what a broadcast
// costs. Only a loop whose first work is a broadcast holds: a user's own message waits only when
// it queues behind a broadcast during the hold, and then at most the hold.
const defaultBroadcastHold = 5 * time.Millisecond

// holdForBroadcasts waits HubConfig.BroadcastHold when the loop's first work is a broadcast
// frame.
func (c *Client) holdForBroadcasts() {
	if c.hub.cfg.BroadcastHold < 0 {
		return
	}
	c.mu.Lock()
	hold := c.hello == nil && c.backlog == nil && !c.control.any() && c.queue.len() > 0 &&
		c.queue.first().frame.Kind == FrameBroadcast && c.state < stateClosing
	c.mu.Unlock()
	if hold {
		time.Sleep(c.hub.cfg.BroadcastHold)
	}
}

type job uint8

const (
	jobExit    job = iota // nothing to do: the goroutine ends
	jobPark               // nothing to do now: wait on wake
	jobHello              // w.items holds the hello
	jobControl            // w.frames holds pings and pongs
	jobBacklog            // read the store (c.backlog was taken into w)
	jobFrames             // w.items holds queued frames
	jobClose              // write the close and cut the transport
)

// next takes the write loop's next job under mu, in this order: the version 2 hello, owed
// pings and pongs, the backlog, queued frames, the close. linger asks to park rather than exit when idle.
func (c *Client) next(w *writer, linger bool) job {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.items = w.items[:0]
	if c.state == stateClosing && c.closeSent {
		c.writer = writerNone // nothing can be written: the transport was cut
		return jobExit
	}
	if c.hello != nil {
		w.items = append(w.items, queued{frame: *c.hello})
		c.hello = nil
		return jobHello
	}
	if c.control.any() {
		w.frames = c.control.take(w.frames)
		return jobControl
	}
	if c.backlog != nil {
		w.backlog, c.backlog = *c.backlog, nil
		return jobBacklog
	}
	if c.queue.len() > 0 {
		n := c.queue.len()
		w.items = c.queue.popBatch(w.items, maxWriteBatch)
		c.hub.metrics.Queued.Sub(float64(n - c.queue.len()))
		return jobFrames
	}
	if c.state == stateClosing {
		return jobClose // the writer stays "running" for good: this client never gets another
	}
	if linger && !c.retire {
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		c.writer = writerParked
		c.parkedRound = c.hub.heartbeatRound.Load()
		return jobPark
	}
	c.retire = false
	c.wake = nil // no token is left in it: each one is taken right after parking
	c.writer = writerNone
	return jobExit
}
