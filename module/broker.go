package module

import (
	"context"
	"encoding/json"
	"time"
)

// Broker carries what must reach connections beyond this process: committed messages, broadcasts
// and kicks, and it answers who is online. The local broker serves one node; the redis broker
// makes N nodes one service. Implementations are safe for concurrent use.
type Broker interface {
	// Deliver hands committed messages, in commit order, to every node holding their users. It is
	// the store's CommitHook and must not block.
	Deliver(msgs []Message)
	// Broadcast sends data to every live connection and returns how many there were.
	Broadcast(ctx context.Context, data json.RawMessage, at time.Time) (int, error)
	// Kick closes every connection of the user with 4000 and returns how many were closed.
	Kick(ctx context.Context, userID string) (int, error)
	// Online reports whether the user has a live connection on any node.
	Online(ctx context.Context, userID string) (bool, error)
	// OnlineMany is Online for many users at once (a publish to up to 1,000 users), in one
	// round trip to shared state whatever the number of users: out[i] is userIDs[i]'s answer.
	OnlineMany(ctx context.Context, userIDs []string) ([]bool, error)
	// Users lists the online users, sorted by userId.
	Users(ctx context.Context) ([]UserConns, error)
	// Connections describes the user's live connections on every node.
	Connections(ctx context.Context, userID string) ([]ConnInfo, error)
	// Ping reports whether the broker can serve requests.
	Ping(ctx context.Context) error
	// Close releases the broker's resources.
	Close() error
}

// LocalBroker is the one-node broker: everything goes straight to the hub.
type LocalBroker struct {
	hub *Hub
}

// NewLocalBroker returns a broker for a single node.
func NewLocalBroker(hub *Hub) *LocalBroker { return &LocalBroker{hub: hub} }

// Deliver implements Broker.
func (b *LocalBroker) Deliver(msgs []Message) { b.hub.Deliver(msgs) }

// Broadcast implements Broker.
func (b *LocalBroker) Broadcast(_ context.Context, data json.RawMessage, at time.Time) (int, error) {
	return b.hub.Broadcast(data, at), nil
}

// Kick implements Broker.
func (b *LocalBroker) Kick(_ context.Context, userID string) (int, error) {
	return b.hub.Kick(userID, CloseRemoved, "removed by deleteClient"), nil
}

// Online implements Broker.
func (b *LocalBroker) Online(_ context.Context, userID string) (bool, error) {
	return b.hub.Count(userID) > 0, nil
}

// OnlineMany implements Broker.
func (b *LocalBroker) OnlineMany(_ context.Context, userIDs []string) ([]bool, error) {
	out := make([]bool, len(userIDs))
	for i, u := range userIDs {
		out[i] = b.hub.Count(u) > 0
	}
	return out, nil
}

// Users implements Broker.
func (b *LocalBroker) Users(context.Context) ([]UserConns, error) { return b.hub.Users(), nil }

// Connections implements Broker.
func (b *LocalBroker) Connections(_ context.Context, userID string) ([]ConnInfo, error) {
	return b.hub.Connections(userID, ""), nil
}

// Ping implements Broker.
func (b *LocalBroker) Ping(context.Context) error { return nil }

// Close implements Broker.
func (b *LocalBroker) Close() error { return nil }
