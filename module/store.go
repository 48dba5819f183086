package module

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable wraps store and broker failures that mean "nothing was accepted, try again":
// the api layer answers 503.
var ErrUnavailable = errors.New("unavailable")

// ErrClosed is returned by a Store or Broker used after Close.
var ErrClosed = errors.New("closed")

// BacklogQuery selects what a connection must receive before live messages, oldest first:
// every stored message of the user with ID > After and either ID > Since, or (when Pending is set)
// not yet written to any connection. Expired messages are never returned.
type BacklogQuery struct {
	After   uint64 // paging cursor: strictly greater ids only
	Since   uint64 // every message after this id
	Pending bool   // also the undelivered ones at or below Since
	Limit   int
}

// UserStats counts a user's stored, unexpired messages.
type UserStats struct {
	Stored  int
	Pending int
}

// CommitHook receives committed messages in commit order, from one goroutine at a time. It must
// not block: the store calls it before committing the next batch, which is what keeps live
// delivery in id order when many publishers race.
type CommitHook func([]Message)

// Store keeps messages durably (or, for the memory driver, for the life of the process).
// Implementations are safe for concurrent use.
//
// Retention: a message is kept until ExpiresAt, delivered or not, and only the newest MaxPerUser
// messages of a user are kept; expired or trimmed messages are never returned.
type Store interface {
	// Append stores the drafts in one durable step, assigns ids (strictly increasing per user, in
	// commit order) and returns the stored messages in the order of drafts.
	Append(ctx context.Context, drafts []Draft) ([]Message, error)
	// Backlog returns up to q.Limit messages matching q, in increasing id order.
	Backlog(ctx context.Context, userID string, q BacklogQuery) ([]Message, error)
	// LastID is the highest id committed for the user (0 when none); any message committed
	// later gets a greater id.
	LastID(ctx context.Context, userID string) (uint64, error)
	// MarkDelivered records that these messages were written to a connection. It may be applied
	// asynchronously; Backlog with Pending set sees every mark made before it was called.
	MarkDelivered(userID string, ids []uint64)
	// Stats counts the user's stored and pending messages.
	Stats(ctx context.Context, userID string) (UserStats, error)
	// Purge removes every stored message of the user and returns how many there were. Ids
	// assigned later still increase.
	Purge(ctx context.Context, userID string) (int, error)
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	// Close flushes pending writes and releases resources.
	Close() error
}

// GapFiller is implemented by stores whose ids are consecutive per user (1, 2, 3, ...). For them a
// live message whose id is not the next expected one reveals a gap (e.g. Pub/Sub lost a message)
// that the connection fills from the store before going on.
type GapFiller interface {
	ConsecutiveIDs() bool
}

// StoreOptions are what every Store driver needs from the core.
type StoreOptions struct {
	MaxPerUser    int           // newest messages kept per user (store.maxPerUser)
	OnCommit      CommitHook    // receives committed messages in commit order; may be nil
	Metrics       *Metrics      // may be nil
	SweepInterval time.Duration // how often expired messages are removed; 0 = 1s
}

// Fill replaces zero values with defaults.
func (o *StoreOptions) Fill() {
	if o.MaxPerUser <= 0 {
		o.MaxPerUser = 1000
	}
	if o.OnCommit == nil {
		o.OnCommit = func([]Message) {}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
}

// Selects reports whether q selects a message with this id and delivery state.
func (q BacklogQuery) Selects(id uint64, delivered bool) bool {
	return id > q.After && (id > q.Since || (q.Pending && !delivered))
}

// ExpiresAt computes a message's expiry without overflowing for absurdly long ttls.
func ExpiresAt(created time.Time, ttl time.Duration) time.Time {
	const maxTTL = 100 * 365 * 24 * time.Hour
	return created.Add(min(ttl, maxTTL))
}
