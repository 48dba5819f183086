package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type markKind uint8

const (
	markWritten  markKind = iota // written to a version 2 connection: sent_at
	markDequeued                 // written to a version 1 connection: sent_at, leaves the queue
	markAcked                    // acknowledged: acked_at (and sent_at), leaves the queue
	markPushed                   // sent through Web Push: pushed_at
	markKinds
)

// markSQL is each kind's UPDATE, ?1 the time, ?2 the user, then the ids (ID_LIST). The user is
// part of every statement: ids are global here, and a connection must never change another
// user's messages. The conditions skip rows the mark would not change, which are then not
// rewritten.
var markSQL = [markKinds]string{
	markWritten:  `UPDATE messages SET sent_at = ?1 WHERE user_id = ?2 AND sent_at IS NULL AND id IN (ID_LIST)`,
	markDequeued: `UPDATE messages SET sent_at = COALESCE(sent_at, ?1), queued = 0 WHERE user_id = ?2 AND (queued = 1 OR sent_at IS NULL) AND id IN (ID_LIST)`,
	markAcked:    `UPDATE messages SET acked_at = ?1, sent_at = COALESCE(sent_at, ?1), queued = 0 WHERE user_id = ?2 AND acked_at IS NULL AND id IN (ID_LIST)`,
	markPushed:   `UPDATE messages SET pushed_at = ?1 WHERE user_id = ?2 AND pushed_at IS NULL AND id IN (ID_LIST)`,
}

// markChunk is how many ids one statement takes; fewer go one statement each.
const markChunk = 64

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

// markQueue holds marks until the writer commits them with its next transaction: marks never
// cost a commit (or an fsync) of their own on a busy server.
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
	// The caller may reuse ids once this returns.
	s.marks.add(mark{kind: kind, userID: userID, ids: slices.Clone(ids), at: at.UnixMilli()})
	// No wake-up: marks ride with the next batch of appends, or the writer's mark tick, so a
	// busy server does not pay one more commit (and fsync) for them.
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

// markStmts are the prepared statements of one kind: for one id and for markChunk ids.
type markStmts struct{ one, many *sql.Stmt }

func prepareMarks(db *sql.DB) ([markKinds]markStmts, error) {
	var out [markKinds]markStmts
	many := "?3" + strings.Repeat(", ?", markChunk-1)
	for k, q := range markSQL {
		var err error
		if out[k].one, err = db.Prepare(strings.Replace(q, "ID_LIST", "?3", 1)); err != nil {
			return out, fmt.Errorf("prepare mark: %w", err)
		}
		if out[k].many, err = db.Prepare(strings.Replace(q, "ID_LIST", many, 1)); err != nil {
			return out, fmt.Errorf("prepare mark: %w", err)
		}
	}
	return out, nil
}

// applyMarks runs the marks inside tx, markChunk ids per statement.
func (w *writer) applyMarks(tx *sql.Tx, marks []mark) error {
	var inTx [markKinds]markStmts // each statement bound to tx once, when first used
	bind := func(dst **sql.Stmt, st *sql.Stmt) *sql.Stmt {
		if *dst == nil {
			*dst = tx.Stmt(st)
		}
		return *dst
	}
	args := make([]any, markChunk+2)
	var changed [markKinds]int64
	for _, m := range marks {
		args[0], args[1] = m.at, m.userID
		ids := m.ids
		for ; len(ids) >= markChunk; ids = ids[markChunk:] {
			for i, id := range ids[:markChunk] {
				args[i+2] = int64(id)
			}
			res, err := bind(&inTx[m.kind].many, w.marks[m.kind].many).Exec(args...)
			if err != nil {
				return err
			}
			changed[m.kind] += rowsAffected(res)
		}
		for _, id := range ids {
			res, err := bind(&inTx[m.kind].one, w.marks[m.kind].one).Exec(m.at, m.userID, int64(id))
			if err != nil {
				return err
			}
			changed[m.kind] += rowsAffected(res)
		}
	}
	// The rows each kind changed (its WHERE skips rows it would not change): messages that
	// reached the status, counted once the transaction commits. A message sent to a version 2
	// connection and then written to a version 1 one (which also takes it out of the queue)
	// counts as sent twice.
	w.statusChanges = changed
	return nil
}

// countStatusChanges adds the committed transaction's status changes to the metrics.
func (w *writer) countStatusChanges() {
	c := w.statusChanges
	w.statusChanges = [markKinds]int64{}
	m := w.s.opts.Metrics.StatusChanges
	if n := c[markWritten] + c[markDequeued]; n > 0 {
		m.WithLabelValues("sent").Add(float64(n))
	}
	if c[markAcked] > 0 {
		m.WithLabelValues("acked").Add(float64(c[markAcked]))
	}
	if c[markPushed] > 0 {
		m.WithLabelValues("pushed").Add(float64(c[markPushed]))
	}
}

func rowsAffected(res sql.Result) int64 {
	n, err := res.RowsAffected()
	if err != nil {
		return 0
	}
	return n
}
