package pebble

import (
	"context"
	"fmt"
	"time"

	"pushlane/module/store/internal/groupcommit"
)

func (s *Store) queueMark(kind groupcommit.MarkKind, userID string, ids []uint64, at time.Time) {
	if s.closed.Load() {
		return
	}
	s.marks.Add(kind, userID, ids, at)
}

// MarkWritten implements module.Store: the marks are committed by the writer with its next batch.
func (s *Store) MarkWritten(userID string, ids []uint64, dequeue bool, at time.Time) {
	kind := groupcommit.MarkWritten
	if dequeue {
		kind = groupcommit.MarkDequeued
	}
	s.queueMark(kind, userID, ids, at)
}

// Ack implements module.Store, batched like MarkWritten.
func (s *Store) Ack(userID string, ids []uint64, at time.Time) {
	s.queueMark(groupcommit.MarkAcked, userID, ids, at)
}

// MarkPushed records that the message was sent through Web Push (the first time is kept),
// batched like MarkWritten.
func (s *Store) MarkPushed(userID string, id uint64, at time.Time) {
	s.queueMark(groupcommit.MarkPushed, userID, []uint64{id}, at)
}

// flushMarks waits until every mark made so far is committed.
func (s *Store) flushMarks(ctx context.Context) error {
	if s.marks.Pending() == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opBarrier, done: make(chan struct{})})
}

// applyMark changes one message's record as the mark says; it reports whether anything changed.
func applyMark(m *groupcommit.Mark, r *messageRecord) bool {
	before := *r
	switch m.Kind {
	case groupcommit.MarkWritten:
		r.sent = cmp0(r.sent, m.At)
	case groupcommit.MarkDequeued:
		r.sent, r.queued = cmp0(r.sent, m.At), false
	case groupcommit.MarkAcked:
		r.acked, r.sent, r.queued = cmp0(r.acked, m.At), cmp0(r.sent, m.At), false
	case groupcommit.MarkPushed:
		r.pushed = cmp0(r.pushed, m.At)
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
func (t *txn) applyMarks(marks []groupcommit.Mark) error {
	var val []byte
	for i := range marks {
		m := &marks[i]
		for _, id := range m.IDs {
			k := messageKey(t.key[:0], m.UserID, id)
			v, err := t.get(k)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			rec, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %d of %q: %w", id, m.UserID, err)
			}
			if !applyMark(m, &rec) {
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
