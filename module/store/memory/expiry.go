package memory

import (
	"container/heap"
	"runtime"
	"time"
)

// sweepStepRefs bounds the work of one sweep step, the time the sweeper holds the store's lock:
// each reference costs a binary search in one user's queue (plus, amortized, a compaction).
// Between steps the lock is released, so publishers wait for one step at most, not for the whole
// sweep (issue 13, item 4: a full scan of 2M messages once a second stalled publishes 120 ms).
const sweepStepRefs = 512

// ref points at one stored message. A ref whose message is gone (trimmed, purged, already
// expired) finds nothing and costs nothing more.
type ref struct {
	q  *queue
	id uint64
}

// expiryIndex orders every stored message by expiry, in buckets of one second: a message is
// filed under the first whole second at or after its expiry, so a bucket is due, entirely, once
// the clock reaches its second. 16 bytes per message plus one bucket per distinct second.
type expiryIndex struct {
	buckets map[int64][]ref
	seconds secondHeap // the keys of buckets, smallest first
}

func newExpiryIndex() expiryIndex { return expiryIndex{buckets: make(map[int64][]ref)} }

// ceilSecond is the first unix second at or after t.
func ceilSecond(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

func (x *expiryIndex) add(expires time.Time, q *queue, id uint64) {
	sec := ceilSecond(expires)
	refs, ok := x.buckets[sec]
	if !ok {
		heap.Push(&x.seconds, sec)
	}
	x.buckets[sec] = append(refs, ref{q: q, id: id})
}

// takeDue removes and returns up to n references from buckets due at now.
func (x *expiryIndex) takeDue(now time.Time, n int, dst []ref) []ref {
	for len(dst) < n && len(x.seconds) > 0 && x.seconds[0] <= now.Unix() {
		sec := x.seconds[0]
		refs := x.buckets[sec]
		take := min(len(refs), n-len(dst))
		dst = append(dst, refs[len(refs)-take:]...)
		clear(refs[len(refs)-take:])
		if refs = refs[:len(refs)-take]; len(refs) == 0 {
			delete(x.buckets, sec)
			heap.Pop(&x.seconds)
		} else {
			x.buckets[sec] = refs
		}
	}
	return dst
}

type secondHeap []int64

func (h secondHeap) Len() int           { return len(h) }
func (h secondHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h secondHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *secondHeap) Push(v any)        { *h = append(*h, v.(int64)) }
func (h *secondHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

func (s *Store) sweepLoop() {
	defer close(s.sweepDone)
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for s.sweepStep(s.now()) {
				select {
				case <-s.stop:
					return
				default:
				}
				runtime.Gosched() // let the publishers waiting for the lock in
			}
		}
	}
}

// sweepStep removes up to sweepStepRefs expired messages, and expired idempotency records, in one
// hold of the lock; it reports whether more are due.
func (s *Store) sweepStep(now time.Time) (more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	refs := s.expiry.takeDue(now, sweepStepRefs, s.sweepBuf[:0])
	removed := 0
	for _, r := range refs {
		if s.expire(r, now) {
			removed++
		}
	}
	clear(refs) // keep no queue alive from the buffer
	s.sweepBuf = refs[:0]
	if removed > 0 {
		s.opts.Metrics.Expired.Add(float64(removed))
	}
	moreRecords := s.idem.sweep(now, sweepStepRefs)
	return len(refs) == sweepStepRefs || moreRecords
}

// expire removes the referenced message if it is still stored and expired.
func (s *Store) expire(r ref, now time.Time) bool {
	q := r.q
	i := q.find(r.id)
	if i < 0 || q.entries[i].msg.ExpiresAt.After(now) {
		return false
	}
	if i == 0 {
		q.dropFront()
	} else {
		q.entries[i] = entry{msg: q.entries[i].msg, dead: true}
		q.entries[i].msg.Data = nil // the id stays for binary search; the data goes
		q.dead++
	}
	for len(q.entries) > 0 && q.entries[0].dead {
		q.dropFront()
	}
	switch {
	case q.live() == 0:
		q.entries, q.dead = nil, 0
		if s.users[q.user] == q {
			delete(s.users, q.user)
		}
	case q.dead > len(q.entries)/2:
		// Compact: each removal paid for one copy of an entry.
		kept := q.entries[:0]
		for _, e := range q.entries {
			if !e.dead {
				kept = append(kept, e)
			}
		}
		clear(q.entries[len(kept):])
		q.entries, q.dead = kept, 0
	}
	return true
}
