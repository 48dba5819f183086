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
//
// Concurrent checks share the probe in flight: /healthz needs no key, and a flood of it must
// cost Redis one probe at a time, not one per request.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return module.ErrClosed
	}
	p := s.probeInFlight()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("redis store write probe: %w", p.err)
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

// healthProbe is one write probe: done is closed once err is set.
type healthProbe struct {
	done chan struct{}
	err  error
}

// probeInFlight returns the probe in flight, or sends a new one through the writer.
func (s *Store) probeInFlight() *healthProbe {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if p := s.probe; p != nil {
		select {
		case <-p.done:
		default:
			return p
		}
	}
	s.commitMu.Lock()
	size := s.failBytes
	s.commitMu.Unlock()
	p := &healthProbe{done: make(chan struct{})}
	s.probe = p
	o := &op{kind: opProbe, probe: size, done: make(chan struct{})}
	go func() {
		// Not the caller's context: a probe once queued is committed or failed by the writer,
		// and its outcome serves the checks that come while it is in flight.
		p.err = s.submit(context.Background(), o)
		close(p.done)
	}()
	return p
}
