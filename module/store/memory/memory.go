// Package memory is the in-process message store: the same semantics as the durable stores, for
// tests and ephemeral deployments. Nothing survives a restart.
package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"pushlane/module"
)

type entry struct {
	msg       module.Message
	delivered bool
}

// Store keeps every user's messages in a slice ordered by id. Safe for concurrent use: one mutex
// guards everything, and the commit hook is called under it, which keeps delivery in id order.
type Store struct {
	opts module.StoreOptions
	now  func() time.Time

	mu     sync.Mutex
	users  map[string][]entry
	lastID uint64
	closed bool

	stop      chan struct{}
	sweepDone chan struct{}
}

// New returns an empty store and starts its expiry sweeper; Close stops it.
func New(opts module.StoreOptions) *Store {
	opts.Fill()
	s := &Store{opts: opts, now: time.Now, users: make(map[string][]entry), stop: make(chan struct{}), sweepDone: make(chan struct{})}
	go s.sweepLoop()
	return s
}

// Append implements module.Store.
func (s *Store) Append(_ context.Context, drafts []module.Draft) ([]module.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory store append: %w", module.ErrClosed)
	}
	now := s.now()
	out := make([]module.Message, len(drafts))
	for i, d := range drafts {
		s.lastID++
		m := module.Message{ID: s.lastID, UserID: d.UserID, Data: d.Data, CreatedAt: now, ExpiresAt: module.ExpiresAt(now, d.TTL)}
		list := append(s.users[d.UserID], entry{msg: m})
		if over := len(list) - s.opts.MaxPerUser; over > 0 {
			// Drop from the front without copying the rest (a user at the limit would cost a copy
			// of maxPerUser entries per append); the next growth of the slice copies only what is
			// kept, so the array stays within about twice maxPerUser.
			clear(list[:over]) // let the dropped messages' data go now
			list = list[over:]
			s.opts.Metrics.Trimmed.Add(float64(over))
		}
		s.users[d.UserID] = list
		out[i] = m
	}
	s.opts.OnCommit(out)
	return out, nil
}

// Backlog implements module.Store.
func (s *Store) Backlog(_ context.Context, userID string, q module.BacklogQuery) ([]module.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory store backlog: %w", module.ErrClosed)
	}
	now := s.now()
	var out []module.Message
	for _, e := range s.users[userID] {
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		if e.msg.ExpiresAt.After(now) && q.Selects(e.msg.ID, !e.delivered) {
			out = append(out, e.msg)
		}
	}
	return out, nil
}

// LastID implements module.Store. Ids come from one counter for all users.
func (s *Store) LastID(context.Context, string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("memory store last id: %w", module.ErrClosed)
	}
	return s.lastID, nil
}

// MarkDelivered implements module.Store.
func (s *Store) MarkDelivered(userID string, ids []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.users[userID]
	for _, id := range ids {
		i := sort.Search(len(list), func(i int) bool { return list[i].msg.ID >= id })
		if i < len(list) && list[i].msg.ID == id {
			list[i].delivered = true
		}
	}
}

// Stats implements module.Store.
func (s *Store) Stats(_ context.Context, userID string) (module.UserStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return module.UserStats{}, fmt.Errorf("memory store stats: %w", module.ErrClosed)
	}
	now := s.now()
	var st module.UserStats
	for _, e := range s.users[userID] {
		if e.msg.ExpiresAt.After(now) {
			st.Stored++
			if !e.delivered {
				st.Pending++
			}
		}
	}
	return st, nil
}

// Purge implements module.Store.
func (s *Store) Purge(_ context.Context, userID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("memory store purge: %w", module.ErrClosed)
	}
	n := len(s.users[userID])
	delete(s.users, userID)
	return n, nil
}

// Ping implements module.Store.
func (s *Store) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return module.ErrClosed
	}
	return nil
}

// Close implements module.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.sweepDone
	return nil
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
			s.sweep()
		}
	}
}

// sweep removes expired messages.
func (s *Store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	removed := 0
	for user, list := range s.users {
		kept := list[:0]
		for _, e := range list {
			if e.msg.ExpiresAt.After(now) {
				kept = append(kept, e)
			}
		}
		removed += len(list) - len(kept)
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(s.users, user)
		} else {
			s.users[user] = kept
		}
	}
	s.opts.Metrics.Expired.Add(float64(removed))
}
