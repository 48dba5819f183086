package webpush

import (
	"context"
	"errors"
	"time"

	"pushlane/module"
)

// Store is what Web Push needs of the message store: the store itself (the unread queue, the
// message data, pushedAt through MarkPushed), the subscriptions of each user, and the due pushes.
// The sqlite, memory and redis stores implement it; pushtest is its conformance suite.
//
// Due pushes. With module.StoreOptions.WebPush set, Append records, in the same atomic step
// as the message, one due push for each message whose user has at least one subscription,
// due Delay after the message was accepted: a crash right after the append cannot lose it,
// and a restart finds it. That record is a fan-out record (SubID ""): when it comes due, the
// pusher checks that the message is still unread and expands it into one record per
// subscription the user has then (ExpandDue). A subscription record is one HTTP request; a
// failed one that must be retried is replaced (FinishDue) by one with a later due time and
// its attempt count.
//
// Claims. ClaimDue hands out due records and hides them from every other claimer, on any
// node, until now+lease, in one atomic step: each record goes to one node at a time. The
// claim's token (Due.Claim) guards FinishDue and ExpandDue: a claimer whose lease ran out (it
// stalled, or crashed and came back) changes nothing, because the record was claimed again
// under another token, or finished. So a push is sent twice only when a claimer outlives its
// lease or dies after sending and before finishing (at least once, never lost while the
// message is stored).
type Store interface {
	module.Store

	// MarkPushed records that the message was sent through Web Push at the given time (its
	// status gains pushedAt once). Batched like MarkWritten.
	MarkPushed(userID string, id uint64, at time.Time)

	// SaveSubscription stores sub for its user, unless the user already has its endpoint:
	// then the stored one keeps its id and creation time, takes sub's keys, and is returned
	// with created false. A new one beyond maxPerUser replaces the user's oldest ones (removed
	// says how many). sub.ID and sub.CreatedAt are the caller's.
	SaveSubscription(ctx context.Context, sub Subscription, maxPerUser int) (saved Subscription, created bool, removed int, err error)
	// DeleteSubscription removes one subscription of the user; false when the user has none
	// with that id. Its due records are dropped when they come due.
	DeleteSubscription(ctx context.Context, userID, id string) (bool, error)
	// Subscriptions lists the user's subscriptions, oldest first.
	Subscriptions(ctx context.Context, userID string) ([]Subscription, error)

	// ClaimDue claims up to limit records due at now (due time at or before now), oldest due
	// first, until now+lease.
	ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Due, error)
	// ExpandDue replaces a claimed fan-out record by one record per subscription the user has,
	// due at now, unclaimed. ErrClaimLost when the claim is no longer held (nothing changed).
	ExpandDue(ctx context.Context, d Due, now time.Time) error
	// FinishDue removes a claimed record and, in the same atomic step, adds retries (records of
	// the same message for the given subscriptions). ErrClaimLost when the claim is no longer
	// held (nothing changed).
	FinishDue(ctx context.Context, d Due, retries []Retry) error
	// CountDue counts the due records, claimed or not.
	CountDue(ctx context.Context) (int, error)
}

// ErrClaimLost is returned by FinishDue and ExpandDue when the record's claim expired and it was
// claimed again (or finished) meanwhile.
var ErrClaimLost = errors.New("claim of a due push lost")

// Due is one claimed due push: a message of a user, for one subscription (SubID), or for every
// subscription of the user (SubID "", a fan-out record).
type Due struct {
	UserID  string
	MsgID   uint64
	SubID   string
	Attempt int    // failed attempts so far
	Claim   string // the claim's token, opaque
}

// FanOut reports whether d stands for every subscription of its user.
func (d Due) FanOut() bool { return d.SubID == "" }

// Retry is a later attempt of a due push for one subscription.
type Retry struct {
	SubID   string
	At      time.Time
	Attempt int
}
