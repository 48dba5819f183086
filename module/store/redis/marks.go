package redis

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"pushlane/module"
)

// Mark kinds, as the mark script reads them.
const (
	markWritten        = 'w' // written to a version 2 connection: sent, still queued
	markWrittenDequeue = 'W' // written to a version 1 connection: sent, out of the queue
	markAcked          = 'a' // acknowledged: sent, acked, out of the queue
	markPushed         = 'p' // sent through Web Push
)

// mark is one status change of one message.
type mark struct {
	kind byte
	id   uint64
	at   int64 // unix ms
}

// maxQueuedMarks bounds memory while Redis is unreachable; a dropped mark only means a message
// may be sent again as pending (at least once) or shows an older status, never that one is lost.
const maxQueuedMarks = 1 << 20

// marks collects status marks until the writer takes them for its next pipeline.
type marks struct {
	mu      sync.Mutex
	byUser  map[string][]mark
	queued  int
	pending atomic.Int64 // marks made and not yet sent: reads that must see them wait
}

func newMarks() marks { return marks{byUser: make(map[string][]mark)} }

// MarkWritten implements module.Store: the marks go out with the writer's next pipeline.
func (s *Store) MarkWritten(userID string, ids []uint64, dequeue bool, at time.Time) {
	kind := byte(markWritten)
	if dequeue {
		kind = markWrittenDequeue
	}
	s.addMarks(userID, ids, kind, at)
}

// Ack implements module.Store: the marks go out with the writer's next pipeline.
func (s *Store) Ack(userID string, ids []uint64, at time.Time) {
	s.addMarks(userID, ids, markAcked, at)
}

// MarkPushed records that message id of the user was sent through Web Push at the given time
// (its status gains pushedAt once). Batched like MarkWritten.
func (s *Store) MarkPushed(userID string, id uint64, at time.Time) {
	s.addMarks(userID, []uint64{id}, markPushed, at)
}

func (s *Store) addMarks(userID string, ids []uint64, kind byte, at time.Time) {
	if len(ids) == 0 || s.closed.Load() {
		return
	}
	ms := at.UnixMilli()
	m := &s.marks
	m.mu.Lock()
	if m.queued+len(ids) <= maxQueuedMarks {
		for _, id := range ids {
			m.byUser[userID] = append(m.byUser[userID], mark{kind: kind, id: id, at: ms})
		}
		m.queued += len(ids)
		m.pending.Add(int64(len(ids)))
	}
	m.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take removes and returns every queued mark.
func (m *marks) take() (map[string][]mark, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byUser, n := m.byUser, m.queued
	if n == 0 {
		return nil, 0
	}
	m.byUser = make(map[string][]mark)
	m.queued = 0
	return byUser, n
}

// markCall is one user's marks as one script call in a pipeline.
type markCall struct {
	keys []string
	args []any
}

// markCalls builds one script call per user. Marks keep the order they were made in (a later
// mark of one message only adds to an earlier one, so order matters only for readability of
// the timestamps); exact duplicates are sent once.
func (s *Store) markCalls(byUser map[string][]mark, nowMs int64) []*markCall {
	out := make([]*markCall, 0, len(byUser))
	for user, ms := range byUser {
		ms = slices.Compact(ms)
		args := make([]any, 0, 1+3*len(ms))
		args = append(args, nowMs)
		for _, m := range ms {
			args = append(args, string(m.kind), m.id, m.at)
		}
		out = append(out, &markCall{keys: []string{s.keys.User(user)}, args: args})
	}
	return out
}

var _ module.Store = (*Store)(nil)
