package pebble

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type markKind uint8

const (
	markWritten  markKind = iota // written to a version 2 connection: sent time
	markDequeued                 // written to a version 1 connection: sent time, leaves the queue
	markAcked                    // acknowledged: acked time (and sent time), leaves the queue
	markPushed                   // sent through Web Push: pushed time
)

// maxQueuedMarks bounds the ids queued for marking if the disk stalls. A dropped mark only means
// a message may be sent again (at-least-once), never that one is lost.
const maxQueuedMarks = 1 << 20

// mark is one MarkWritten, Ack or MarkPushed call.
type mark struct {
	kind   markKind
	userID string
	ids    []uint64
	at     int64 // unix milliseconds
}

// markQueue holds marks until the writer commits them with its next batch: marks never cost a
// commit (or a sync) of their own on a busy server.
type markQueue struct {
	mu     sync.Mutex
	marks  []mark
	queued int // ids in marks
	limit  int

	pending atomic.Int64 // ids not yet committed: reads that must see them wait (flushMarks)
}

func (q *markQueue) add(m mark) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued+len(m.ids) > q.limit {
		return
	}
	q.marks = append(q.marks, m)
	q.queued += len(m.ids)
	q.pending.Add(int64(len(m.ids)))
}

// take empties the queue; the caller lowers pending once the marks are committed (or failed).
func (q *markQueue) take() ([]mark, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, n := q.marks, q.queued
	q.marks, q.queued = nil, 0
	return m, n
}

func (s *Store) queueMark(kind markKind, userID string, ids []uint64, at time.Time) {
	if len(ids) == 0 || s.closed.Load() {
		return
	}
	// The caller may reuse ids once this returns. No wake-up: marks ride with the next batch of
	// appends, or the writer's mark tick.
	s.marks.add(mark{kind: kind, userID: userID, ids: slices.Clone(ids), at: at.UnixMilli()})
}

// MarkWritten implements module.Store: the marks are committed by the writer with its next batch.
func (s *Store) MarkWritten(userID string, ids []uint64, dequeue bool, at time.Time) {
	kind := markWritten
	if dequeue {
		kind = markDequeued
	}
	s.queueMark(kind, userID, ids, at)
}

// Ack implements module.Store, batched like MarkWritten.
func (s *Store) Ack(userID string, ids []uint64, at time.Time) {
	s.queueMark(markAcked, userID, ids, at)
}

// MarkPushed records that the message was sent through Web Push (the first time is kept),
// batched like MarkWritten.
func (s *Store) MarkPushed(userID string, id uint64, at time.Time) {
	s.queueMark(markPushed, userID, []uint64{id}, at)
}

// flushMarks waits until every mark made so far is committed.
func (s *Store) flushMarks(ctx context.Context) error {
	if s.marks.pending.Load() == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opBarrier, done: make(chan struct{})})
}

// apply changes one message's record as the mark says; it reports whether anything changed.
func (m *mark) apply(r *messageRecord) bool {
	before := *r
	switch m.kind {
	case markWritten:
		r.sent = cmp0(r.sent, m.at)
	case markDequeued:
		r.sent, r.queued = cmp0(r.sent, m.at), false
	case markAcked:
		r.acked, r.sent, r.queued = cmp0(r.acked, m.at), cmp0(r.sent, m.at), false
	case markPushed:
		r.pushed = cmp0(r.pushed, m.at)
	}
	return r.sent != before.sent || r.acked != before.acked || r.pushed != before.pushed || r.queued != before.queued
}

// cmp0 keeps the first time: at when none was recorded (0), else the recorded one.
func cmp0(recorded, at int64) int64 {
	if recorded != 0 {
		return recorded
	}
	return at
}

// applyMarks rewrites the marked messages' records in the batch. The key holds the user, so a
// mark never reaches another user's message; ids that are not stored are skipped.
func (t *txn) applyMarks(marks []mark) error {
	var val []byte
	for i := range marks {
		m := &marks[i]
		for _, id := range m.ids {
			k := messageKey(t.key[:0], m.userID, id)
			v, err := t.get(k)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			rec, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %d of %q: %w", id, m.userID, err)
			}
			if !m.apply(&rec) {
				continue
			}
			val = rec.encode(val[:0])
			if err := t.b.Set(k, val, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
