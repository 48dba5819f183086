package pebble

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"pushlane/module"
)

// health tracks what Health reports: the outcome of the last commit, and the write probe in
// flight, shared by every Health call that comes while it runs.
type health struct {
	lastErr atomic.Pointer[error] // the last commit's error; nil after a success

	mu    sync.Mutex
	probe *op
}

func (h *health) committed(err error) {
	if err == nil {
		h.lastErr.Store(nil)
	} else {
		h.lastErr.Store(&err)
	}
}

// Health implements module.Store: a small write (one metadata key) committed and synced by the
// writer, like any publish. It fails when the commit fails (a full disk, a read-only folder) and
// answers at ctx's deadline when the commit has not happened by then.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("pebble store health: %w", module.ErrClosed)
	}
	o := s.probeOp(ctx)
	select {
	case <-o.done:
		if o.err != nil {
			return fmt.Errorf("pebble store health: write probe: %w", o.err)
		}
		return nil
	case <-ctx.Done():
		if last := s.health.lastErr.Load(); last != nil {
			return fmt.Errorf("pebble store health: write probe unfinished (%w); last commit failed: %w", ctx.Err(), *last)
		}
		return fmt.Errorf("pebble store health: write probe unfinished: %w", ctx.Err())
	}
}

// probeOp returns the probe in flight, or queues a new one.
func (s *Store) probeOp(ctx context.Context) *op {
	s.health.mu.Lock()
	if o := s.health.probe; o != nil {
		select {
		case <-o.done:
		default:
			s.health.mu.Unlock()
			return o
		}
	}
	o := &op{kind: opProbe, done: make(chan struct{})}
	s.health.probe = o
	s.health.mu.Unlock()
	// Queued outside the lock: the queue may be full, and other callers must not wait for that.
	if err := s.enqueue(ctx, o); err != nil {
		o.err = err
		close(o.done)
	}
	return o
}
