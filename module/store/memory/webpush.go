package memory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"pushlane/module"
	"pushlane/module/webpush"
)

// pushState is the memory store's Web Push part: subscriptions and due pushes. It is guarded by
// Store.mu, the lock Append holds, so a due record is added in the same step as its message.
type pushState struct {
	subs   map[string][]webpush.Subscription // by user, oldest first
	due    map[dueKey]*dueRecord
	claims uint64 // the last claim token handed out
}

type dueKey struct {
	user string
	id   uint64
	sub  string // "" for a fan-out record
}

type dueRecord struct {
	at      time.Time // due; while claimed, when the claim runs out
	attempt int
	claim   string // the token of the last claim; "" when never claimed
}

func (p *pushState) init() {
	if p.subs == nil {
		p.subs = make(map[string][]webpush.Subscription)
		p.due = make(map[dueKey]*dueRecord)
	}
}

// schedulePush records m's fan-out due push when Web Push is on and its user has a
// subscription. Called by appendLocked, under mu.
func (s *Store) schedulePush(m module.Message) {
	if s.opts.WebPush == nil || len(s.push.subs[m.UserID]) == 0 {
		return
	}
	s.push.due[dueKey{user: m.UserID, id: m.ID}] = &dueRecord{at: m.CreatedAt.Add(s.opts.WebPush.Delay)}
}

var _ webpush.Store = (*Store)(nil)

// SaveSubscription implements webpush.Store.
func (s *Store) SaveSubscription(_ context.Context, sub webpush.Subscription, maxPerUser int) (webpush.Subscription, bool, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return webpush.Subscription{}, false, 0, fmt.Errorf("memory store save subscription: %w", module.ErrClosed)
	}
	list := s.push.subs[sub.UserID]
	for i := range list {
		if list[i].Endpoint == sub.Endpoint {
			list[i].P256dh, list[i].Auth = sub.P256dh, sub.Auth
			return list[i], false, 0, nil
		}
	}
	removed := 0
	for len(list) >= max(maxPerUser, 1) {
		list = slices.Delete(list, 0, 1)
		removed++
	}
	s.push.subs[sub.UserID] = append(list, sub)
	return sub, true, removed, nil
}

// DeleteSubscription implements webpush.Store.
func (s *Store) DeleteSubscription(_ context.Context, userID, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false, fmt.Errorf("memory store delete subscription: %w", module.ErrClosed)
	}
	list := s.push.subs[userID]
	i := slices.IndexFunc(list, func(x webpush.Subscription) bool { return x.ID == id })
	if i < 0 {
		return false, nil
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(s.push.subs, userID)
	} else {
		s.push.subs[userID] = list
	}
	return true, nil
}

// Subscriptions implements webpush.Store.
func (s *Store) Subscriptions(_ context.Context, userID string) ([]webpush.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("memory store subscriptions: %w", module.ErrClosed)
	}
	return slices.Clone(s.push.subs[userID]), nil
}

// ClaimDue implements webpush.Store: a scan of every due record, which is what a store for
// tests and small deployments can afford.
func (s *Store) ClaimDue(_ context.Context, now time.Time, limit int, lease time.Duration) ([]webpush.Due, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("memory store claim due: %w", module.ErrClosed)
	}
	var keys []dueKey
	for k, r := range s.push.due {
		if !r.at.After(now) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b dueKey) int { return s.push.due[a].at.Compare(s.push.due[b].at) })
	keys = keys[:min(len(keys), max(limit, 0))]
	out := make([]webpush.Due, len(keys))
	for i, k := range keys {
		r := s.push.due[k]
		s.push.claims++
		r.claim = strconv.FormatUint(s.push.claims, 10)
		r.at = now.Add(lease)
		out[i] = webpush.Due{UserID: k.user, MsgID: k.id, SubID: k.sub, Attempt: r.attempt, Claim: r.claim}
	}
	return out, nil
}

// withClaim removes d's record and runs fn, under mu, if d's claim is still held; ErrClaimLost
// (and nothing changed) otherwise.
func (s *Store) withClaim(what string, d webpush.Due, fn func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("memory store %s: %w", what, module.ErrClosed)
	}
	k := dueKey{user: d.UserID, id: d.MsgID, sub: d.SubID}
	if r := s.push.due[k]; r == nil || d.Claim == "" || r.claim != d.Claim {
		return webpush.ErrClaimLost
	}
	delete(s.push.due, k)
	fn()
	return nil
}

// ExpandDue implements webpush.Store.
func (s *Store) ExpandDue(_ context.Context, d webpush.Due, now time.Time) error {
	return s.withClaim("expand due", d, func() {
		for _, sub := range s.push.subs[d.UserID] {
			sk := dueKey{user: d.UserID, id: d.MsgID, sub: sub.ID}
			if _, exists := s.push.due[sk]; !exists {
				s.push.due[sk] = &dueRecord{at: now}
			}
		}
	})
}

// FinishDue implements webpush.Store.
func (s *Store) FinishDue(_ context.Context, d webpush.Due, retries []webpush.Retry) error {
	return s.withClaim("finish due", d, func() {
		for _, r := range retries {
			s.push.due[dueKey{user: d.UserID, id: d.MsgID, sub: r.SubID}] = &dueRecord{at: r.At, attempt: r.Attempt}
		}
	})
}

// CountDue implements webpush.Store.
func (s *Store) CountDue(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("memory store count due: %w", module.ErrClosed)
	}
	return len(s.push.due), nil
}
