package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Service is what the HTTP handlers call: publish, broadcast, kick and inspect. It orchestrates
// the store (truth), the broker (reach) and the hub (this node's connections). Safe for
// concurrent use.
type Service struct {
	store      Store
	broker     Broker
	hub        *Hub
	metrics    *Metrics
	defaultTTL time.Duration
	now        func() time.Time
}

// NewService wires the core together. defaultTTL applies to publishes without a ttl.
func NewService(store Store, broker Broker, hub *Hub, metrics *Metrics, defaultTTL time.Duration) *Service {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Service{store: store, broker: broker, hub: hub, metrics: metrics, defaultTTL: defaultTTL, now: time.Now}
}

// Hub returns this node's connection registry.
func (s *Service) Hub() *Hub { return s.hub }

// PublishResult is one recipient's outcome.
type PublishResult struct {
	UserID string
	ID     uint64
	Online bool
}

// Publish stores one message per distinct user (durably, before returning) and delivers it.
// userIDs must be valid and distinct. ttl 0 means the default.
func (s *Service) Publish(ctx context.Context, userIDs []string, data json.RawMessage, ttl time.Duration) ([]PublishResult, error) {
	start := time.Now()
	msgs, err := s.store.Append(ctx, s.drafts(userIDs, data, ttl))
	s.metrics.StoreLatency.WithLabelValues("append").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("%w: store append: %w", ErrUnavailable, err)
	}
	s.metrics.Published.Add(float64(len(msgs)))
	return s.results(ctx, msgs), nil
}

// drafts makes one draft per user; ttl 0 means the default.
func (s *Service) drafts(userIDs []string, data json.RawMessage, ttl time.Duration) []Draft {
	if ttl <= 0 {
		ttl = s.defaultTTL
	}
	drafts := make([]Draft, len(userIDs))
	for i, u := range userIDs {
		drafts[i] = Draft{UserID: u, Data: data, TTL: ttl}
	}
	return drafts
}

// results says, for each stored message, whether its user was online.
func (s *Service) results(ctx context.Context, msgs []Message) []PublishResult {
	recipients := make([]string, len(msgs))
	for i, m := range msgs {
		recipients[i] = m.UserID
	}
	online, err := s.broker.OnlineMany(ctx, recipients)
	if err != nil || len(online) != len(msgs) {
		online = make([]bool, len(msgs)) // the messages are stored; presence is best effort here
	}
	out := make([]PublishResult, len(msgs))
	for i, m := range msgs {
		out[i] = PublishResult{UserID: m.UserID, ID: m.ID, Online: online[i]}
	}
	return out
}

// Broadcast sends data to every live connection on every node (not stored).
func (s *Service) Broadcast(ctx context.Context, data json.RawMessage) (int, error) {
	n, err := s.broker.Broadcast(ctx, data, s.now())
	if err != nil {
		return 0, fmt.Errorf("%w: broker broadcast: %w", ErrUnavailable, err)
	}
	s.metrics.Broadcasts.Inc()
	return n, nil
}

// KickResult is the outcome of DELETE /deleteClient.
type KickResult struct {
	Closed int
	Purged int
}

// Kick closes the user's connections on every node and, with purge, removes its stored messages.
func (s *Service) Kick(ctx context.Context, userID string, purge bool) (KickResult, error) {
	var res KickResult
	closed, err := s.broker.Kick(ctx, userID)
	if err != nil {
		return res, fmt.Errorf("%w: broker kick: %w", ErrUnavailable, err)
	}
	res.Closed = closed
	if purge {
		n, err := s.store.Purge(ctx, userID)
		if err != nil {
			return res, fmt.Errorf("%w: store purge: %w", ErrUnavailable, err)
		}
		res.Purged = n
	}
	return res, nil
}

// Users lists the online users on every node, sorted by userId.
func (s *Service) Users(ctx context.Context) ([]UserConns, error) {
	users, err := s.broker.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: broker users: %w", ErrUnavailable, err)
	}
	return users, nil
}

// UserDetail is GET /clients/:id.
type UserDetail struct {
	Connections []ConnInfo
	Stats       UserStats
}

// User describes one user's connections and stored messages.
func (s *Service) User(ctx context.Context, userID string) (UserDetail, error) {
	conns, err := s.broker.Connections(ctx, userID)
	if err != nil {
		return UserDetail{}, fmt.Errorf("%w: broker connections: %w", ErrUnavailable, err)
	}
	stats, err := s.store.Stats(ctx, userID)
	if err != nil {
		return UserDetail{}, fmt.Errorf("%w: store stats: %w", ErrUnavailable, err)
	}
	return UserDetail{Connections: conns, Stats: stats}, nil
}

// Health pings the store and the broker; nil errors mean healthy.
func (s *Service) Health(ctx context.Context) (storeErr, brokerErr error) {
	return s.store.Health(ctx), s.broker.Ping(ctx)
}

// MessageStatus returns one stored message of the user with its delivery status; ErrNotFound
// when it is not stored (never was, expired, trimmed or purged).
func (s *Service) MessageStatus(ctx context.Context, userID string, id uint64) (MessageStatus, error) {
	m, err := s.store.Status(ctx, userID, id)
	switch {
	case errors.Is(err, ErrNotFound):
		s.metrics.StatusLookups.WithLabelValues("not_found").Inc()
		return MessageStatus{}, ErrNotFound
	case err != nil:
		return MessageStatus{}, fmt.Errorf("%w: store status: %w", ErrUnavailable, err)
	}
	s.metrics.StatusLookups.WithLabelValues(m.Status()).Inc()
	return m, nil
}

// MessageStatuses returns up to limit stored messages of the user with an id above since,
// oldest first, and the store's epoch (the id space those ids belong to). limit 0 reads no
// messages, only the epoch.
func (s *Service) MessageStatuses(ctx context.Context, userID string, since uint64, limit int) ([]MessageStatus, string, error) {
	epoch, err := s.store.Epoch(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%w: store epoch: %w", ErrUnavailable, err)
	}
	if limit <= 0 {
		return nil, epoch, nil
	}
	msgs, err := s.store.Statuses(ctx, userID, since, limit)
	if err != nil {
		return nil, "", fmt.Errorf("%w: store statuses: %w", ErrUnavailable, err)
	}
	return msgs, epoch, nil
}
