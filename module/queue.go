package module

// queued is one entry of a connection's send queue.
type queued struct {
	frame   Frame
	born    int64 // FrameMessage: unix nanos when the message was accepted (latency histogram)
	catchUp bool  // not a frame: read the store after the last id written, then go on
}

// size is what the entry counts against websocket.sendQueueBytes.
func (q *queued) size() int { return q.frame.Size() }

// frameQueue is a connection's FIFO of frames: a ring that grows by doubling only when used and
// is released once drained, so an idle connection holds no queue memory. It counts its entries
// and their bytes; the bounds (websocket.sendQueue, websocket.sendQueueBytes) are the client's
// to enforce.
//
// Not safe for concurrent use: Client.mu guards it.
type frameQueue struct {
	ring  []queued
	head  int // index of the oldest entry
	n     int // entries
	bytes int // sum of their sizes
}

// minRing is the ring's first size: most bursts to one connection are a few frames.
const minRing = 4

// keepRing is the largest ring kept while empty: a ring that grew for a burst is given back once
// drained, a small one is kept to spare the next burst an allocation.
const keepRing = 16

func (q *frameQueue) len() int { return q.n }

func (q *frameQueue) size() int { return q.bytes }

// first is the oldest entry; the queue must not be empty.
func (q *frameQueue) first() *queued { return &q.ring[q.head] }

func (q *frameQueue) push(it queued) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = it
	q.n++
	q.bytes += it.size()
}

func (q *frameQueue) grow() {
	next := make([]queued, max(minRing, 2*len(q.ring)))
	q.copyTo(next)
	q.ring = next
	q.head = 0
}

// copyTo copies the entries, oldest first, to dst (which has room for them).
func (q *frameQueue) copyTo(dst []queued) {
	if q.n == 0 {
		return
	}
	if end := q.head + q.n; end <= len(q.ring) {
		copy(dst, q.ring[q.head:end])
	} else {
		k := copy(dst, q.ring[q.head:])
		copy(dst[k:], q.ring[:end-len(q.ring)])
	}
}

// popBatch moves entries, oldest first, to dst until the next one would take the batch's frame
// bytes over maxBytes; it always moves at least one when the queue is not empty.
func (q *frameQueue) popBatch(dst []queued, maxBytes int) []queued {
	taken := 0
	for q.n > 0 {
		it := &q.ring[q.head]
		s := it.size()
		if taken > 0 && taken+s > maxBytes {
			break
		}
		taken += s
		dst = append(dst, *it)
		*it = queued{} // the ring must not keep the frame's bytes alive
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.bytes -= s
	}
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > keepRing {
			q.ring = nil
		}
	}
	return dst
}

// drop empties the queue and gives its memory back; it returns how many entries it held.
func (q *frameQueue) drop() int {
	n := q.n
	*q = frameQueue{}
	return n
}
