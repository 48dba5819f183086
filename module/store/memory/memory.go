// Package memory is the in-process message store: the same semantics as the durable stores, for
// tests and ephemeral deployments. Nothing survives a restart.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"pushlane/module"
)

// entry is one stored message with its status. Times are unix nanoseconds, 0 = not yet.
type entry struct {
	msg                       module.Message
	sentAt, ackedAt, pushedAt int64
	queued                    bool // still in the user's unread queue
	dead                      bool // expired and removed; kept (id only) until the queue compacts
}

// queue is one user's messages in id order. The sweeper removes expired messages from the middle
// by marking them dead (keeping their id, so binary search still works) and compacts the slice
// once half of it is dead; the front is dropped without copying.
type queue struct {
	user    string
	entries []entry
	dead    int
}

// live is the number of stored messages (expired ones included until the sweeper removes them).
func (q *queue) live() int { return len(q.entries) - q.dead }

// find returns the index of id among the entries, or -1 when it is not there or dead.
func (q *queue) find(id uint64) int {
	if len(q.entries) > 0 && q.entries[0].msg.ID == id { // the oldest: what usually expires or is marked
		if q.entries[0].dead {
			return -1
		}
		return 0
	}
	i := sort.Search(len(q.entries), func(i int) bool { return q.entries[i].msg.ID >= id })
	if i < len(q.entries) && q.entries[i].msg.ID == id && !q.entries[i].dead {
		return i
	}
	return -1
}

// after returns the index of the first entry with an id above id.
func (q *queue) after(id uint64) int {
	return sort.Search(len(q.entries), func(i int) bool { return q.entries[i].msg.ID > id })
}

// dropFront removes the first entry without copying the rest (a user at maxPerUser would
// otherwise cost a copy of the whole queue per append); the next growth of the slice copies only
// what is kept, so the array stays within about twice the queue.
func (q *queue) dropFront() {
	if q.entries[0].dead {
		q.dead--
	}
	q.entries[0] = entry{} // let the message's data go now
	q.entries = q.entries[1:]
}

// Store keeps every user's messages in a queue ordered by id. Safe for concurrent use: one mutex
// guards the messages, and the commit hook is called under it, which keeps delivery in id order.
// Each user's newest id sits beside them under its own lock, so Head answers while the hook runs
// (module.CommitHook).
type Store struct {
	opts  module.StoreOptions
	now   func() time.Time
	epoch string

	closed atomic.Bool // set under mu; read without it by Head

	mu       sync.Mutex
	users    map[string]*queue
	lastID   uint64
	expiry   expiryIndex
	sweepBuf []ref // reused by every sweep step: no allocation while holding the lock
	idem     idempotency
	push     pushState // Web Push subscriptions and due pushes (webpush.go)

	// heads is each user's newest id, kept when nothing of the user is stored any more (purged
	// or expired), so Head never goes down: about 60 bytes plus the user id per user ever
	// published to, for the life of the process.
	headsMu sync.RWMutex
	heads   map[string]uint64

	stop      chan struct{}
	sweepDone chan struct{}
}

// New returns an empty store with a new epoch and starts its expiry sweeper; Close stops it.
func New(opts module.StoreOptions) *Store {
	opts.Fill()
	s := &Store{
		opts:      opts,
		now:       time.Now,
		epoch:     newEpoch(),
		users:     make(map[string]*queue),
		expiry:    newExpiryIndex(),
		idem:      newIdempotency(),
		heads:     make(map[string]uint64),
		stop:      make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	s.push.init()
	go s.sweepLoop()
	return s
}

// newEpoch is 16 random bytes, base64url: 22 bytes of [A-Za-z0-9_-].
func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Append implements module.Store.
func (s *Store) Append(_ context.Context, drafts []module.Draft) ([]module.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("memory store append: %w", module.ErrClosed)
	}
	return s.appendLocked(drafts), nil
}

// appendLocked stores the drafts, publishes their ids to Head, then hands them to the hook.
func (s *Store) appendLocked(drafts []module.Draft) []module.Message {
	now := s.now()
	out := make([]module.Message, len(drafts))
	for i, d := range drafts {
		s.lastID++
		m := module.Message{ID: s.lastID, UserID: d.UserID, Data: d.Data, CreatedAt: now, ExpiresAt: module.ExpiresAt(now, d.TTL)}
		q := s.users[d.UserID]
		if q == nil {
			q = &queue{user: d.UserID}
			s.users[d.UserID] = q
		}
		q.entries = append(q.entries, entry{msg: m, queued: true})
		trimmed := 0
		for q.live() > s.opts.MaxPerUser {
			if !q.entries[0].dead {
				trimmed++
			}
			q.dropFront()
		}
		if trimmed > 0 {
			s.opts.Metrics.Trimmed.Add(float64(trimmed))
		}
		s.expiry.add(m.ExpiresAt, q, m.ID)
		s.schedulePush(m)
		out[i] = m
	}
	if len(out) > 0 {
		s.headsMu.Lock()
		for _, m := range out {
			s.heads[m.UserID] = m.ID
		}
		s.headsMu.Unlock()
	}
	s.opts.OnCommit(out)
	return out
}

// Backlog implements module.Store.
func (s *Store) Backlog(_ context.Context, userID string, q module.BacklogQuery) ([]module.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("memory store backlog: %w", module.ErrClosed)
	}
	uq := s.users[userID]
	if uq == nil {
		return nil, nil
	}
	now := s.now()
	var out []module.Message
	size := 0
	for _, e := range uq.entries[uq.after(q.After):] {
		if e.dead || !e.msg.ExpiresAt.After(now) || !q.Selects(e.msg.ID, e.queued) {
			continue
		}
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		out = append(out, e.msg)
		size += len(e.msg.Data)
		if q.MaxBytes > 0 && size >= q.MaxBytes {
			break // the message that reached MaxBytes ends the page
		}
	}
	return out, nil
}

// Head implements module.Store. It takes only the heads lock, never the one held during the
// commit hook.
func (s *Store) Head(_ context.Context, userID string) (module.Head, error) {
	if s.closed.Load() {
		return module.Head{}, fmt.Errorf("memory store head: %w", module.ErrClosed)
	}
	s.headsMu.RLock()
	last := s.heads[userID]
	s.headsMu.RUnlock()
	return module.Head{Epoch: s.epoch, LastID: last}, nil
}

// Epoch implements module.Store: random for each store.
func (s *Store) Epoch(context.Context) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("memory store epoch: %w", module.ErrClosed)
	}
	return s.epoch, nil
}

// Stats implements module.Store.
func (s *Store) Stats(_ context.Context, userID string) (module.UserStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return module.UserStats{}, fmt.Errorf("memory store stats: %w", module.ErrClosed)
	}
	var st module.UserStats
	uq := s.users[userID]
	if uq == nil {
		return st, nil
	}
	now := s.now()
	for _, e := range uq.entries {
		if !e.dead && e.msg.ExpiresAt.After(now) {
			st.Stored++
			if e.queued {
				st.Pending++
			}
		}
	}
	return st, nil
}

// Purge implements module.Store. The user's head stays.
func (s *Store) Purge(_ context.Context, userID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("memory store purge: %w", module.ErrClosed)
	}
	uq := s.users[userID]
	if uq == nil {
		return 0, nil
	}
	n := uq.live()
	// The expiry index still points at this queue: empty it, so those references find nothing
	// and the messages' memory goes now.
	uq.entries, uq.dead = nil, 0
	delete(s.users, userID)
	return n, nil
}

// Health implements module.Store: a memory store can always write, until it is closed.
func (s *Store) Health(context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("memory store health: %w", module.ErrClosed)
	}
	return nil
}

// Close implements module.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	close(s.stop)
	<-s.sweepDone
	return nil
}
