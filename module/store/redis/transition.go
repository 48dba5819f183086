package redis

// Temporary bridge from the old Store interface to the new one, so the tree builds while each
// store gains the new methods. Remove this file once the store implements them for real.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pushlane/module"
)

var errNotYet = fmt.Errorf("redis store: %w", errors.ErrUnsupported)

// MarkWritten implements module.Store (bridge: marks delivered whatever dequeue says).
func (s *Store) MarkWritten(userID string, ids []uint64, _ bool, _ time.Time) {
	s.MarkDelivered(userID, ids)
}

// Ack implements module.Store (bridge).
func (s *Store) Ack(userID string, ids []uint64, _ time.Time) { s.MarkDelivered(userID, ids) }

// Head implements module.Store (bridge: no epoch yet).
func (s *Store) Head(ctx context.Context, userID string) (module.Head, error) {
	last, err := s.LastID(ctx, userID)
	return module.Head{Epoch: "bridge", LastID: last}, err
}

// Health implements module.Store (bridge: a ping).
func (s *Store) Health(ctx context.Context) error { return s.Ping(ctx) }

// Epoch implements module.Store (bridge).
func (s *Store) Epoch(context.Context) (string, error) { return "bridge", nil }

// Status implements module.Store (bridge).
func (s *Store) Status(context.Context, string, uint64) (module.MessageStatus, error) {
	return module.MessageStatus{}, errNotYet
}

// Statuses implements module.Store (bridge).
func (s *Store) Statuses(context.Context, string, uint64, int) ([]module.MessageStatus, error) {
	return nil, errNotYet
}

// Begin implements module.Idempotency (bridge).
func (s *Store) Begin(context.Context, module.IdempotencyKey) (module.IdempotencyState, *module.IdempotencyRecord, error) {
	return 0, nil, errNotYet
}

// AppendOnce implements module.Idempotency (bridge).
func (s *Store) AppendOnce(context.Context, module.IdempotencyKey, []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	return nil, nil, errNotYet
}

// Finish implements module.Idempotency (bridge).
func (s *Store) Finish(context.Context, module.IdempotencyKey, []byte) error { return errNotYet }

// Abandon implements module.Idempotency (bridge).
func (s *Store) Abandon(module.IdempotencyKey) {}
