package module

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable wraps store and broker failures that mean "nothing was accepted, or not known to
// be; try again": the api layer answers 503. Wrap it with the cause:
// fmt.Errorf("%w: store append: %w", ErrUnavailable, err).
var ErrUnavailable = errors.New("unavailable")

// ErrClosed is returned by a Store or Broker used after Close.
var ErrClosed = errors.New("closed")

// ErrNotFound is returned by Store.Status for a message that is not stored (never was, expired,
// trimmed or purged).
var ErrNotFound = errors.New("not found")

// BacklogQuery selects what a connection must receive before live messages, oldest first:
// every stored message of the user with ID > After and either ID > Since, or (when Pending is set)
// still in the user's unread queue. Expired messages are never returned.
//
// A page is bounded by Limit messages and by MaxBytes of Data: the message that takes the page's
// data to MaxBytes or beyond is the page's last. So a page holds at most MaxBytes plus one
// message, always makes progress, and a page shorter than Limit whose data is under MaxBytes
// is the end of what matches. Zero means no bound for either.
type BacklogQuery struct {
	After    uint64 // paging cursor: strictly greater ids only
	Since    uint64 // every message after this id
	Pending  bool   // also the ones at or below Since that are still in the unread queue
	Limit    int
	MaxBytes int
}

// UserStats counts a user's stored, unexpired messages.
type UserStats struct {
	Stored  int
	Pending int // in the unread queue
}

// Head is where a user stands in the store.
type Head struct {
	// Epoch names the store's id space (API.md "Protocol version 2"): created with the store,
	// never changed otherwise, the same on every node. 1-64 bytes of [A-Za-z0-9_-].
	Epoch string
	// LastID is the newest id ever assigned to the user in this epoch (0 when none), whether or
	// not that message is still stored. A store may report more for a user of whom nothing is
	// stored (the redis store's floor, above every id it ever assigned), never less. Invariant:
	// it is at least every id of the user already handed to OnCommit (or published live by the
	// store) when Head is called; a message committed later gets a greater id. A since above it
	// cannot come from this epoch.
	LastID uint64
}

// CommitHook receives committed messages in commit order, from one goroutine at a time. It must
// not block: the store calls it before committing the next batch, which is what keeps live
// delivery in id order when many publishers race. A store makes each message's id visible to
// Head before it hands the message to the hook, and Head answers while the hook runs (Hub.Reserve
// calls it from request goroutines; storetest checks both from inside the hook).
type CommitHook func([]Message)

// Store keeps messages durably (or, for the memory driver, for the life of the process).
// Implementations are safe for concurrent use.
//
// The unread queue of a user is the stored messages that no version 1 connection was written
// and no version 2 client acknowledged (API.md "Protocol version 2"). Each message also keeps
// its status timestamps (first written to any connection, acknowledged, pushed through Web Push),
// written by the same group commit as everything else, never one write per mark.
//
// Retention: a message is kept until ExpiresAt, delivered or not, and only the newest MaxPerUser
// messages of a user are kept; expired or trimmed messages are never returned.
type Store interface {
	// Append stores the drafts in one durable step, assigns ids (strictly increasing per user, in
	// commit order) and returns the stored messages in the order of drafts.
	Append(ctx context.Context, drafts []Draft) ([]Message, error)
	// Backlog returns the messages matching q, in increasing id order, within q's bounds.
	Backlog(ctx context.Context, userID string, q BacklogQuery) ([]Message, error)
	// Head reports the store's epoch and the user's newest id (see Head).
	Head(ctx context.Context, userID string) (Head, error)
	// MarkWritten records that these messages of the user were written to a connection at the
	// given time: each gains its sent time if it has none, and with dequeue (a version 1
	// connection) leaves the unread queue. It may be applied asynchronously, batched with other
	// writes; Backlog with Pending, Stats and Status see every mark made before they were called.
	MarkWritten(userID string, ids []uint64, dequeue bool, at time.Time)
	// Ack records that a version 2 client of the user processed these messages: each gains its
	// acknowledged time if it has none (and a sent time if it has none) and leaves the unread
	// queue. Ids that are not the user's stored messages are ignored. Applied like MarkWritten.
	Ack(userID string, ids []uint64, at time.Time)
	// Status returns one stored message with its status; ErrNotFound when it is not stored.
	Status(ctx context.Context, userID string, id uint64) (MessageStatus, error)
	// Statuses returns up to limit stored messages of the user with id > since, oldest first.
	Statuses(ctx context.Context, userID string, since uint64, limit int) ([]MessageStatus, error)
	// Epoch returns the store's epoch (see Head).
	Epoch(ctx context.Context) (string, error)
	// Stats counts the user's stored and pending messages.
	Stats(ctx context.Context, userID string) (UserStats, error)
	// Purge removes every stored message of the user and returns how many there were. Ids
	// assigned later still increase.
	Purge(ctx context.Context, userID string) (int, error)
	// Health reports whether the store can accept writes now: an error when its last commit
	// failed and none has succeeded since, or when a small write probe fails (a full disk, a
	// read-only file, a database locked by another process, Redis out of memory), not only when
	// it cannot be reached. It must answer within ctx's deadline.
	Health(ctx context.Context) error
	// Close flushes pending writes and releases resources.
	Close() error

	Idempotency
}

// Idempotency makes POST /pushNews safe to retry (API.md "Idempotent publish"). The flow of one
// request with a key: Begin; on IdempotencyNew, AppendOnce, then Finish with the response body
// (or Abandon when the request failed before or during AppendOnce). Records expire after the
// key's Window; in-progress claims end with Finish, Abandon, or a crash of their holder.
type Idempotency interface {
	// Begin claims the key for one request. It returns IdempotencyNew (claimed: go on),
	// IdempotencyInProgress (another request holds the claim: 409) or IdempotencyDone with the
	// record of the request that completed under the key (replay, or 422 on another fingerprint).
	Begin(ctx context.Context, key IdempotencyKey) (IdempotencyState, *IdempotencyRecord, error)
	// AppendOnce is Append under a claimed key: in the same atomic, durable step it records the
	// key with the fingerprint and the stored ids. When a record already exists (a first attempt
	// that timed out was stored after all), it stores nothing and returns that record instead.
	AppendOnce(ctx context.Context, key IdempotencyKey, drafts []Draft) ([]Message, *IdempotencyRecord, error)
	// Finish saves the response body for replays and releases the claim.
	Finish(ctx context.Context, key IdempotencyKey, body []byte) error
	// Abandon releases the claim without a record (the request failed); a retry is processed as
	// new, unless AppendOnce had stored it after all.
	Abandon(key IdempotencyKey)
}

// IdempotencyKey is one Idempotency-Key header, scoped to the caller.
type IdempotencyKey struct {
	Scope       string        // who sent it: a digest of the API key ("" when keys are off)
	Key         string        // the header: 1-255 bytes of 0x21-0x7E
	Fingerprint string        // a digest of the request (method, route, body)
	Window      time.Duration // publish.idempotencyWindow
}

// IdempotencyState is the outcome of Idempotency.Begin.
type IdempotencyState uint8

const (
	IdempotencyNew        IdempotencyState = iota + 1 // claimed: process the request
	IdempotencyInProgress                             // another request holds the key: 409
	IdempotencyDone                                   // completed before: replay or 422
)

// IdempotencyRecord is what a completed request left under its key.
type IdempotencyRecord struct {
	Fingerprint string
	Results     []IdempotentResult // the stored ids, in the order of the request's users
	Body        []byte             // the response body, once Finish saved it; nil before
}

// IdempotentResult is one stored message of an idempotent publish.
type IdempotentResult struct {
	UserID string
	ID     uint64
}

// MessageStatus is one stored message with its delivery status (GET /messages).
type MessageStatus struct {
	Message
	SentAt   time.Time // first written to any connection; zero = never
	AckedAt  time.Time // acknowledged by a version 2 client; zero = never
	PushedAt time.Time // sent through Web Push; zero = never
}

// Status names the message's state as API.md spells it: "pending", "sent" or "acked".
func (m MessageStatus) Status() string {
	switch {
	case !m.AckedAt.IsZero():
		return "acked"
	case !m.SentAt.IsZero():
		return "sent"
	}
	return "pending"
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
	// WebPush, when set, makes Append record a due Web Push, in the same atomic step, for each
	// message whose user has a push subscription (module/webpush); nil: Web Push is off.
	WebPush *PushSchedule
}

// PushSchedule says when a stored message becomes due for Web Push.
type PushSchedule struct {
	Delay time.Duration // webpush.delay: after the message was accepted
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

// Selects reports whether q selects a message with this id that is (queued) or is not in the
// unread queue. Bounds (Limit, MaxBytes) are the caller's to apply.
func (q BacklogQuery) Selects(id uint64, queued bool) bool {
	return id > q.After && (id > q.Since || (q.Pending && queued))
}

// ExpiresAt computes a message's expiry without overflowing for absurdly long ttls.
func ExpiresAt(created time.Time, ttl time.Duration) time.Time {
	const maxTTL = 100 * 365 * 24 * time.Hour
	return created.Add(min(ttl, maxTTL))
}
