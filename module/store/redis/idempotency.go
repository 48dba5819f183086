package redis

import (
	"context"
	"errors"
	"fmt"

	"pushlane/module"
)

// Idempotency (module.Idempotency) on Redis, across nodes:
//   - the record (fingerprint, results, later the body) is written by the append script itself
//     (AppendOnce), so a message is stored iff its key is recorded, whatever happens to the
//     reply; a retry after a 503 finds the record and stores nothing;
//   - a request in progress holds a claim, SET NX PX with a token of this store: a lease that
//     Finish or Abandon releases (only if it is still ours), and that expires by itself when
//     its holder dies;
//   - records expire after the key's Window (PEXPIRE when recorded).

// Begin implements module.Idempotency.
func (s *Store) Begin(ctx context.Context, key module.IdempotencyKey) (module.IdempotencyState, *module.IdempotencyRecord, error) {
	if s.closed.Load() {
		return 0, nil, fmt.Errorf("redis store idempotency: %w", module.ErrClosed)
	}
	claim := s.keys.IdempotencyClaim(key.Scope, key.Key)
	token := newEpoch() // 128 random bits
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.scripts.begin.Run(ctx, s.rdb, []string{s.keys.Idempotency(key.Scope, key.Key), claim}, token, s.lease.Milliseconds()).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("redis store idempotency begin: %w", err)
	}
	state, _ := res[0].(string)
	switch state {
	case "done":
		rec, err := recordOf(res[1:])
		if err != nil {
			return 0, nil, fmt.Errorf("redis store idempotency begin: %w", err)
		}
		return module.IdempotencyDone, rec, nil
	case "new":
		s.claimsMu.Lock()
		s.claims[claim] = token
		s.claimsMu.Unlock()
		return module.IdempotencyNew, nil, nil
	case "busy":
		return module.IdempotencyInProgress, nil, nil
	}
	return 0, nil, fmt.Errorf("redis store idempotency begin: reply %v", res)
}

// AppendOnce implements module.Idempotency: Append with the record written by the same script.
func (s *Store) AppendOnce(ctx context.Context, key module.IdempotencyKey, drafts []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("redis store append: %w", module.ErrClosed)
	}
	if len(drafts) == 0 {
		return nil, nil, errors.New("redis store append once: no drafts")
	}
	o := &op{kind: opAppend, drafts: drafts, idem: &key, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return nil, nil, fmt.Errorf("redis store append: %w", err)
	}
	if o.existing != nil {
		return nil, o.existing, nil
	}
	return o.msgs, nil, nil
}

// takeClaim forgets and returns our token for the key's claim ("" when we hold none).
func (s *Store) takeClaim(key module.IdempotencyKey) (string, string) {
	claim := s.keys.IdempotencyClaim(key.Scope, key.Key)
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	token := s.claims[claim]
	delete(s.claims, claim)
	return claim, token
}

// Finish implements module.Idempotency.
func (s *Store) Finish(ctx context.Context, key module.IdempotencyKey, body []byte) error {
	if s.closed.Load() {
		return fmt.Errorf("redis store idempotency finish: %w", module.ErrClosed)
	}
	claim, token := s.takeClaim(key)
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.scripts.finish.Run(ctx, s.rdb, []string{s.keys.Idempotency(key.Scope, key.Key), claim}, token, body).Err(); err != nil {
		return fmt.Errorf("redis store idempotency finish: %w", err)
	}
	return nil
}

// Abandon implements module.Idempotency. If Redis cannot be reached, the claim expires with its
// lease.
func (s *Store) Abandon(key module.IdempotencyKey) {
	claim, token := s.takeClaim(key)
	if token == "" || s.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.scripts.release.Run(ctx, s.rdb, []string{claim}, token).Err(); err != nil {
		s.log.Debug("redis store: idempotency claim not released; it expires with its lease", "err", err)
	}
}
