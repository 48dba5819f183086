package client

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter: retry n (from 0) waits a random duration in
// [d/2, d], d = Min·2ⁿ capped at Max. The jitter spreads the retries of many clients after a
// server restart; the lower bound of d/2 keeps a retry from following a failure at once.
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

// Delay is the pause before retry n (n ≥ 0).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	d := hi
	if n < 30 && lo<<n > 0 && lo<<n < hi {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}
