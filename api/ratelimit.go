package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// maxLimiters bounds the limiter table: an attacker cycling through source addresses cannot grow
// it without end. Idle entries are dropped first; when all are busy, the table is reset.
const maxLimiters = 100_000

// idleLimiter is how long an unused limiter is kept (a full bucket is the same as a new one).
const idleLimiter = 5 * time.Minute

// RateLimiter is a token bucket per publisher (API key, or client IP when keys are off).
// Safe for concurrent use.
type RateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu       sync.Mutex
	limiters map[string]*limiterEntry
}

type limiterEntry struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

// NewRateLimiter allows perSecond requests per client with the given burst; perSecond 0 = off.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: max(burst, 1), now: time.Now, limiters: make(map[string]*limiterEntry)}
}

// Allow takes one token for client and, when there is none, says how long until there is.
func (r *RateLimiter) Allow(client string) (bool, time.Duration) {
	if r.limit <= 0 {
		return true, 0
	}
	now := r.now()
	r.mu.Lock()
	e := r.limiters[client]
	if e == nil {
		if len(r.limiters) >= maxLimiters {
			r.evictLocked(now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(r.limit, r.burst)}
		r.limiters[client] = e
	}
	e.lastSeen = now
	if e.lim.AllowN(now, 1) {
		r.mu.Unlock()
		return true, 0
	}
	missing := 1 - e.lim.TokensAt(now)
	r.mu.Unlock()
	return false, time.Duration(missing / float64(r.limit) * float64(time.Second))
}

func (r *RateLimiter) evictLocked(now time.Time) {
	for k, e := range r.limiters {
		if now.Sub(e.lastSeen) > idleLimiter {
			delete(r.limiters, k)
		}
	}
	if len(r.limiters) >= maxLimiters {
		clear(r.limiters)
	}
}

// limitPublish answers 429 with Retry-After when the publisher is over limits.publishRate.
func (h *Handlers) limitPublish(c *gin.Context) {
	client := c.GetString(ctxClientKey)
	if client == "" {
		client = "ip:" + c.ClientIP()
	}
	ok, wait := h.limiter.Allow(client)
	if !ok {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		failWith(c, errRateLimited)
		return
	}
	c.Next()
}
