package memory

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"pushlane/module"
)

type idemID struct{ scope, key string }

type idemRecord struct {
	fingerprint string
	results     []module.IdempotentResult
	body        []byte
	expiresAt   time.Time
}

// idempotency is the store's Idempotency state, guarded by Store.mu: AppendOnce checks for a
// record and appends in one hold of the lock, which is what makes it atomic.
type idempotency struct {
	claims  map[idemID]struct{} // requests in progress: one per key, released by Finish or Abandon
	records map[idemID]*idemRecord
	expiry  recordHeap // every record once, by expiry
}

func newIdempotency() idempotency {
	return idempotency{claims: make(map[idemID]struct{}), records: make(map[idemID]*idemRecord)}
}

// live returns the unexpired record under id, or nil.
func (x *idempotency) live(id idemID, now time.Time) *idemRecord {
	if r := x.records[id]; r != nil && r.expiresAt.After(now) {
		return r
	}
	return nil
}

// sweep forgets up to n expired records and reports whether more are due.
func (x *idempotency) sweep(now time.Time, n int) bool {
	for ; n > 0 && len(x.expiry) > 0 && !x.expiry[0].expiresAt.After(now); n-- {
		e := heap.Pop(&x.expiry).(recordExpiry)
		// A key used again after its record expired has a new record: keep that one.
		if r := x.records[e.id]; r != nil && !r.expiresAt.After(now) {
			delete(x.records, e.id)
		}
	}
	return len(x.expiry) > 0 && !x.expiry[0].expiresAt.After(now)
}

func (r *idemRecord) public() *module.IdempotencyRecord {
	return &module.IdempotencyRecord{Fingerprint: r.fingerprint, Results: slices.Clone(r.results), Body: bytes.Clone(r.body)}
}

// Begin implements module.Idempotency.
func (s *Store) Begin(_ context.Context, k module.IdempotencyKey) (module.IdempotencyState, *module.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, nil, fmt.Errorf("memory store begin: %w", module.ErrClosed)
	}
	id := idemID{k.Scope, k.Key}
	// The claim first: a request that stored but has not finished is still in progress.
	if _, held := s.idem.claims[id]; held {
		return module.IdempotencyInProgress, nil, nil
	}
	if r := s.idem.live(id, s.now()); r != nil {
		return module.IdempotencyDone, r.public(), nil
	}
	s.idem.claims[id] = struct{}{}
	return module.IdempotencyNew, nil, nil
}

// AppendOnce implements module.Idempotency.
func (s *Store) AppendOnce(_ context.Context, k module.IdempotencyKey, drafts []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("memory store append: %w", module.ErrClosed)
	}
	id := idemID{k.Scope, k.Key}
	now := s.now()
	if r := s.idem.live(id, now); r != nil {
		return nil, r.public(), nil
	}
	msgs := s.appendLocked(drafts)
	r := &idemRecord{fingerprint: k.Fingerprint, results: make([]module.IdempotentResult, len(msgs)),
		expiresAt: module.ExpiresAt(now, k.Window)}
	for i, m := range msgs {
		r.results[i] = module.IdempotentResult{UserID: m.UserID, ID: m.ID}
	}
	s.idem.records[id] = r
	heap.Push(&s.idem.expiry, recordExpiry{id: id, expiresAt: r.expiresAt})
	return msgs, nil, nil
}

// Finish implements module.Idempotency. The claim is released whatever happens.
func (s *Store) Finish(_ context.Context, k module.IdempotencyKey, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := idemID{k.Scope, k.Key}
	delete(s.idem.claims, id)
	if s.closed.Load() {
		return fmt.Errorf("memory store finish: %w", module.ErrClosed)
	}
	r := s.idem.live(id, s.now())
	if r == nil {
		return fmt.Errorf("memory store finish: no record under the key (AppendOnce first): %w", module.ErrNotFound)
	}
	r.body = bytes.Clone(body)
	return nil
}

// Abandon implements module.Idempotency.
func (s *Store) Abandon(k module.IdempotencyKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.idem.claims, idemID{k.Scope, k.Key})
}

type recordExpiry struct {
	id        idemID
	expiresAt time.Time
}

type recordHeap []recordExpiry

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].expiresAt.Before(h[j].expiresAt) }
func (h recordHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(v any)        { *h = append(*h, v.(recordExpiry)) }
func (h *recordHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
