package redis

import (
	"context"
	"fmt"

	"pushlane/module"
)

// Health implements module.Store: a write probe sent through the writer, as a commit is (so it
// fails when Redis refuses writes: out of memory under noeviction, a read-only replica, a
// stalled server), and an error when the last commit failed and none succeeded since.
//
// The probe is itself a commit, and after a failed commit it writes as many bytes as the
// largest call of that commit did: Redis near maxmemory refuses a 60 KB publish (its arguments
// take it over the limit) while it still takes a small write, so a small probe alone would say
// healthy. Once Redis takes that much again, the probe clears the failure, so a node taken out
// of a load balancer comes back without needing a publish first.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return module.ErrClosed
	}
	s.commitMu.Lock()
	size := s.failBytes
	s.commitMu.Unlock()
	o := &op{kind: opProbe, probe: size, done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- s.submit(context.WithoutCancel(ctx), o) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("redis store write probe: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("redis store write probe: %w", ctx.Err())
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.commitErr != nil {
		return fmt.Errorf("redis store: last commit failed: %w", s.commitErr)
	}
	return nil
}
