package groupcommit

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MarkKind says what a mark records.
type MarkKind uint8

const (
	MarkWritten  MarkKind = iota // written to a version 2 connection: sent time
	MarkDequeued                 // written to a version 1 connection: sent time, leaves the queue
	MarkAcked                    // acknowledged: acked time (and sent time), leaves the queue
	MarkPushed                   // sent through Web Push: pushed time
	MarkKinds                    // how many kinds there are
)

// MaxQueuedMarks bounds the ids queued for marking if the disk stalls. A dropped mark only means
// a message may be sent again (at-least-once), never that one is lost.
const MaxQueuedMarks = 1 << 20

// Mark is one MarkWritten, Ack or MarkPushed call.
type Mark struct {
	Kind   MarkKind
	UserID string
	IDs    []uint64
	At     int64 // unix milliseconds
}

// MarkQueue holds marks until the writer commits them with its next batch: marks never cost a
// commit (or an fsync) of their own on a busy server. The zero value is not usable: set Limit.
type MarkQueue struct {
	Limit int // ids queued at most; more are dropped

	mu     sync.Mutex
	marks  []Mark
	queued int // ids in marks

	pending atomic.Int64 // ids not yet committed: reads that must see them wait for a commit
}

// Add queues a mark (a copy of ids: the caller may reuse them). Nothing wakes the writer: marks
// ride with the next batch of appends, or the writer's mark tick.
func (q *MarkQueue) Add(kind MarkKind, userID string, ids []uint64, at time.Time) {
	if len(ids) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued+len(ids) > q.Limit {
		return
	}
	q.marks = append(q.marks, Mark{Kind: kind, UserID: userID, IDs: slices.Clone(ids), At: at.UnixMilli()})
	q.queued += len(ids)
	q.pending.Add(int64(len(ids)))
}

// Take empties the queue and returns its marks and how many ids they hold; the writer calls
// Committed with that count once they are committed (or failed).
func (q *MarkQueue) Take() ([]Mark, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, n := q.marks, q.queued
	q.marks, q.queued = nil, 0
	return m, n
}

// Committed lowers the pending count by n ids taken with Take.
func (q *MarkQueue) Committed(n int) { q.pending.Add(-int64(n)) }

// Queued is how many ids are queued (not yet taken).
func (q *MarkQueue) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// Pending is how many ids are queued or taken and not yet committed.
func (q *MarkQueue) Pending() int64 { return q.pending.Load() }
