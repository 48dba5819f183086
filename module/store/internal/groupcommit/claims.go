package groupcommit

import (
	"sync"

	"pushlane/module"
)

// ClaimID names one idempotency key: the caller's scope and the key.
type ClaimID struct{ Scope, Key string }

// Claims are the idempotency keys of requests in progress on this node (one node owns an
// embedded store): released by Finish or Abandon, and by a restart.
type Claims struct {
	mu   sync.Mutex
	held map[ClaimID]struct{}
}

// Take claims id; false when another request holds it.
func (c *Claims) Take(id ClaimID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[id]; ok {
		return false
	}
	if c.held == nil {
		c.held = make(map[ClaimID]struct{})
	}
	c.held[id] = struct{}{}
	return true
}

// Release gives id back.
func (c *Claims) Release(id ClaimID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, id)
}

// ClaimOf names key's claim.
func ClaimOf(key module.IdempotencyKey) ClaimID { return ClaimID{Scope: key.Scope, Key: key.Key} }
