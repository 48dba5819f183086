package memory

import (
	"context"
	"fmt"
	"time"

	"pushlane/module"
)

// MarkWritten implements module.Store. Marks apply at once: reads see them.
func (s *Store) MarkWritten(userID string, ids []uint64, dequeue bool, at time.Time) {
	sent := s.opts.Metrics.StatusChanges.WithLabelValues("sent")
	s.mark(userID, ids, func(e *entry) {
		if setOnce(&e.sentAt, at) {
			sent.Inc()
		}
		if dequeue {
			e.queued = false
		}
	})
}

// Ack implements module.Store. Only the user's own stored messages change.
func (s *Store) Ack(userID string, ids []uint64, at time.Time) {
	m := s.opts.Metrics.StatusChanges
	s.mark(userID, ids, func(e *entry) {
		if setOnce(&e.ackedAt, at) {
			m.WithLabelValues("acked").Inc()
		}
		if setOnce(&e.sentAt, at) {
			m.WithLabelValues("sent").Inc()
		}
		e.queued = false
	})
}

// MarkPushed records that the message was sent through Web Push (the first time is kept).
func (s *Store) MarkPushed(userID string, id uint64, at time.Time) {
	s.mark(userID, []uint64{id}, func(e *entry) {
		if setOnce(&e.pushedAt, at) {
			s.opts.Metrics.StatusChanges.WithLabelValues("pushed").Inc()
		}
	})
}

// setOnce sets *dst to at unless it is set already, and reports whether it did.
func setOnce(dst *int64, at time.Time) bool {
	if *dst != 0 {
		return false
	}
	*dst = at.UnixNano()
	return true
}

// mark applies fn to each stored message of the user among ids; other ids are ignored.
func (s *Store) mark(userID string, ids []uint64, fn func(*entry)) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	uq := s.users[userID]
	if uq == nil || s.closed.Load() {
		return
	}
	for _, id := range ids {
		if i := uq.find(id); i >= 0 {
			fn(&uq.entries[i])
		}
	}
}

// Status implements module.Store.
func (s *Store) Status(_ context.Context, userID string, id uint64) (module.MessageStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return module.MessageStatus{}, fmt.Errorf("memory store status: %w", module.ErrClosed)
	}
	if uq := s.users[userID]; uq != nil {
		if i := uq.find(id); i >= 0 && uq.entries[i].msg.ExpiresAt.After(s.now()) {
			return statusOf(&uq.entries[i]), nil
		}
	}
	return module.MessageStatus{}, fmt.Errorf("memory store status: %w", module.ErrNotFound)
}

// Statuses implements module.Store. A limit of 0 or less means no limit.
func (s *Store) Statuses(_ context.Context, userID string, since uint64, limit int) ([]module.MessageStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("memory store statuses: %w", module.ErrClosed)
	}
	uq := s.users[userID]
	if uq == nil {
		return nil, nil
	}
	now := s.now()
	var out []module.MessageStatus
	for i := uq.after(since); i < len(uq.entries) && (limit <= 0 || len(out) < limit); i++ {
		if e := &uq.entries[i]; !e.dead && e.msg.ExpiresAt.After(now) {
			out = append(out, statusOf(e))
		}
	}
	return out, nil
}

func statusOf(e *entry) module.MessageStatus {
	return module.MessageStatus{Message: e.msg, SentAt: timeOf(e.sentAt), AckedAt: timeOf(e.ackedAt), PushedAt: timeOf(e.pushedAt)}
}

func timeOf(nanos int64) time.Time {
	if nanos == 0 {
		return time.Time{}
	}
	return time.Unix(0, nanos)
}
