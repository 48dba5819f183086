// Package redis is the cluster broker: it makes many pushlane nodes sharing one Redis (and the
// redis message store) one service.
//
//   - Live messages: the store's append script PUBLISHes each message to its user's channel
//     ("<prefix>user:<userId>") in the step that numbers it. A node SUBSCRIBEs to a user's channel
//     while it holds a connection of that user (Watch on the first, UNSUBSCRIBE after the last
//     Unwatch), so a publish touches only the nodes holding the user, and every node sees one
//     user's messages in id order. Deliver is therefore a no-op.
//   - Broadcast and DELETE /deleteClient go over one control channel every node reads; kicks and
//     connection listings are requests that each node answers on its own reply channel.
//   - Presence: each node keeps a hash userId -> connection count that expires within
//     Options.PresenceTTL unless refreshed, so a node that dies leaves presence by itself. Online,
//     Users, Connections and the broadcast count read it.
//   - Pub/Sub is fire-and-forget, so the store is the truth: when the Pub/Sub connection breaks,
//     the broker reconnects with backoff, subscribes again to every channel it needs, and then
//     makes the local connections of every user who missed a message catch up from the store
//     (Hub.CatchUpUsers; Hub.CatchUp when the last ids cannot be read). A message lost on the
//     way without a reconnect shows as a hole in the consecutive ids, which the connection fills
//     from the store.
//
// Concurrency: Broker is safe for concurrent use. Watch blocks until the SUBSCRIBE is confirmed
// (bounded by Options.WatchTimeout); Unwatch never blocks. One worker goroutine writes every
// SUBSCRIBE, UNSUBSCRIBE and presence change, in order; one reader goroutine reads the Pub/Sub
// connection and hands messages to the hub, which never blocks. The go-redis client is the
// caller's: Close does not close it.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
)

// Options tune the broker; zero values are replaced by the defaults in their comments.
type Options struct {
	KeyPrefix string // redis.keyPrefix: every key and channel starts with it
	NodeID    string // unique per process; "" = random. Connection ids are "<node>-<n>".
	// PresenceTTL is how long a node's presence outlives its last refresh: a node that dies
	// disappears from presence within it. Refreshed every PresenceTTL/3. Default 3s.
	PresenceTTL time.Duration
	// RequestTimeout bounds how long a kick or a connection listing waits for the other nodes
	// that presence says hold the user. Default 2s.
	RequestTimeout time.Duration
	// WatchTimeout bounds how long Watch waits for Redis to confirm a subscription. Default 5s.
	WatchTimeout time.Duration
	Log          *slog.Logger
}

// ErrNotConnected is wrapped by calls that need the Pub/Sub connection while it is down.
var ErrNotConnected = errors.New("redis pub/sub not connected")

// Broker is the Redis implementation of module.Broker and module.UserWatcher. See the package
// comment.
type Broker struct {
	rdb  *goredis.Client
	hub  *module.Hub
	keys rediskeys.Keys
	node string
	opts Options
	log  *slog.Logger

	refreshEvery time.Duration
	readTimeout  time.Duration
	presence     *goredis.Script

	mu            sync.Mutex
	users         map[string]*watch    // users with local connections, or awaiting UNSUBSCRIBE
	dirty         map[string]struct{}  // users whose subscription or presence must be written
	waiters       []*waiter            // Watch calls for the next flush
	flushing      map[uint64][]*waiter // flushed Watch calls by the PING that confirms them
	seq           uint64               // PING payload counter
	ps            *goredis.PubSub      // nil while disconnected
	gen           uint64               // incremented for every new Pub/Sub connection
	psChanged     chan struct{}        // closed and replaced when ps changes
	barrier       uint64               // the PING that completes the current connection's setup
	connected     bool                 // the current connection's subscriptions are confirmed
	everConnected bool
	lastErr       error
	presenceStale bool // the presence hash may miss users: rewrite it whole
	total         int  // the sum of every watch's refs: this node's connections in presence
	closed        bool

	wake   chan struct{}
	stop   chan struct{}
	ctx    context.Context // canceled by Close: cuts the worker's Redis calls short
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reqMu  sync.Mutex
	reqs   map[uint64]chan reply
	reqSeq atomic.Uint64
}

// watch is one user's local state.
type watch struct {
	refs       int    // Watch calls not yet matched by Unwatch
	subscribed bool   // the worker sent SUBSCRIBE on the current connection
	lastLive   uint64 // the greatest id of the user received by Pub/Sub
}

// waiter is one Watch call waiting for its subscription and presence to be confirmed.
type waiter struct{ done chan error }

func (w *waiter) finish(err error) {
	select {
	case w.done <- err:
	default:
	}
}

// New starts a broker for hub on rdb. It connects in the background: until the first
// connection is confirmed, Watch and Ping report ErrNotConnected. Install it on the hub with
// hub.SetWatcher before serving.
func New(rdb *goredis.Client, hub *module.Hub, opts Options) (*Broker, error) {
	if rdb == nil || hub == nil {
		return nil, errors.New("redis broker: needs a client and a hub")
	}
	if opts.NodeID == "" {
		opts.NodeID = NewNodeID()
	}
	if opts.PresenceTTL <= 0 {
		opts.PresenceTTL = 3 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 2 * time.Second
	}
	if opts.WatchTimeout <= 0 {
		opts.WatchTimeout = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{
		rdb:          rdb,
		hub:          hub,
		keys:         rediskeys.New(opts.KeyPrefix),
		node:         opts.NodeID,
		opts:         opts,
		log:          opts.Log.With("node", opts.NodeID),
		refreshEvery: max(opts.PresenceTTL/3, 10*time.Millisecond),
		presence:     goredis.NewScript(presenceSrc),
		users:        make(map[string]*watch),
		dirty:        make(map[string]struct{}),
		flushing:     make(map[uint64][]*waiter),
		psChanged:    make(chan struct{}),
		lastErr:      errors.New("connecting"),
		wake:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		reqs:         make(map[uint64]chan reply),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// The worker pings the Pub/Sub connection every refresh; silence for several of them means
	// the connection is dead even if TCP has not noticed.
	b.readTimeout = max(5*time.Second, 4*b.refreshEvery)
	b.wg.Add(2)
	go b.run()
	go b.read()
	return b, nil
}

// NewNodeID returns a random node id: 12 hex digits.
func NewNodeID() string {
	var buf [6]byte
	_, _ = rand.Read(buf[:])
	return hex.EncodeToString(buf[:])
}

// NodeID is this node's id in presence and in connection ids.
func (b *Broker) NodeID() string { return b.node }

// Deliver implements module.Broker. It does nothing: with the redis store, the script that
// commits a message also PUBLISHes it, and every node holding the user (this one included)
// receives it from its subscription.
func (b *Broker) Deliver([]module.Message) {}

// Broadcast implements module.Broker: one message on the control channel for the other nodes,
// direct delivery here. The count is this node's connections plus the other nodes' presence.
func (b *Broker) Broadcast(ctx context.Context, data json.RawMessage, at time.Time) (int, error) {
	if err := b.publishControl(ctx, control{Op: opBroadcast, At: at.UnixNano()}, data); err != nil {
		return 0, fmt.Errorf("redis broker broadcast: %w", err)
	}
	n := b.hub.Broadcast(data, at)
	others, err := b.presenceTotal(ctx)
	if err != nil {
		// Accepted and sent already: report what is known rather than fail.
		b.log.Warn("broadcast: presence of the other nodes unreadable", "err", err)
	}
	return n + others, nil
}

// Kick implements module.Broker: closes the user's connections here and asks the other nodes
// that hold the user to do the same, waiting for their answers up to Options.RequestTimeout.
func (b *Broker) Kick(ctx context.Context, userID string) (int, error) {
	if err := b.needConnected(); err != nil {
		return 0, fmt.Errorf("redis broker kick: %w", err)
	}
	holders, err := b.holders(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("redis broker kick: %w", err)
	}
	n := b.hub.Kick(userID, module.CloseRemoved, "removed by deleteClient")
	replies, err := b.ask(ctx, opKick, userID, holders)
	for _, r := range replies {
		n += r.Closed
	}
	if err != nil {
		return n, fmt.Errorf("redis broker kick: %w", err)
	}
	return n, nil
}

// Online implements module.Broker.
func (b *Broker) Online(ctx context.Context, userID string) (bool, error) {
	if b.localCount(userID) > 0 {
		return true, nil
	}
	holders, err := b.holders(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("redis broker online: %w", err)
	}
	return len(holders) > 0, nil
}

// OnlineMany implements module.Broker: users with a connection here are answered from memory,
// the others in one script call that asks every other node's presence about all of them.
func (b *Broker) OnlineMany(ctx context.Context, userIDs []string) ([]bool, error) {
	out := make([]bool, len(userIDs))
	var ask []string
	var at []int
	b.mu.Lock()
	for i, u := range userIDs {
		if w := b.users[u]; w != nil && w.refs > 0 {
			out[i] = true
			continue
		}
		ask = append(ask, u)
		at = append(at, i)
	}
	b.mu.Unlock()
	if len(ask) == 0 {
		return out, nil
	}
	elsewhere, err := b.onlineElsewhere(ctx, ask)
	if err != nil {
		return nil, fmt.Errorf("redis broker online: %w", err)
	}
	for j, i := range at {
		out[i] = elsewhere[j]
	}
	return out, nil
}

// Users implements module.Broker: this node's connections plus the other nodes' presence, read
// in bounded pages (see presenceAll).
func (b *Broker) Users(ctx context.Context) ([]module.UserConns, error) {
	others, err := b.presenceAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis broker users: %w", err)
	}
	b.mu.Lock()
	for u, n := range b.countsLocked() {
		others[u] += n
	}
	b.mu.Unlock()
	out := make([]module.UserConns, 0, len(others))
	for id, n := range others {
		if n > 0 {
			out = append(out, module.UserConns{UserID: id, Connections: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

// Connections implements module.Broker: this node's connections of the user plus those the
// other holders report, oldest first.
func (b *Broker) Connections(ctx context.Context, userID string) ([]module.ConnInfo, error) {
	if err := b.needConnected(); err != nil {
		return nil, fmt.Errorf("redis broker connections: %w", err)
	}
	holders, err := b.holders(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("redis broker connections: %w", err)
	}
	out := b.hub.Connections(userID, b.node)
	replies, err := b.ask(ctx, opConns, userID, holders)
	for _, r := range replies {
		out = append(out, r.Conns...)
	}
	if err != nil {
		return nil, fmt.Errorf("redis broker connections: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ConnectedAt.Before(out[j].ConnectedAt) })
	return out, nil
}

// Ping implements module.Broker: an error while the Pub/Sub connection is down (live messages
// would not arrive) or Redis does not answer.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.needConnected(); err != nil {
		return fmt.Errorf("redis broker: %w", err)
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis broker ping: %w", err)
	}
	return nil
}

// localCount is the user's connections on this node as its presence counts them: from the
// moment the subscription is confirmed (just before the upgrade) to the unregistration.
func (b *Broker) localCount(userID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := b.users[userID]; w != nil {
		return w.refs
	}
	return 0
}

func (b *Broker) needConnected() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return module.ErrClosed
	}
	if !b.connected {
		return fmt.Errorf("%w: %v", ErrNotConnected, b.lastErr)
	}
	return nil
}

// Close stops the goroutines, closes the Pub/Sub connection and removes this node from
// presence. It does not close the client.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.connected = false
	ps := b.ps
	b.ps = nil
	b.failWaitersLocked(module.ErrClosed)
	b.mu.Unlock()
	close(b.stop)
	b.cancel()
	if ps != nil {
		_ = ps.Close()
	}
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := b.rdb.Pipeline()
	pipe.Del(ctx, b.keys.Presence(b.node))
	pipe.ZRem(ctx, b.keys.Nodes(), b.node)
	if _, err := pipe.Exec(ctx); err != nil {
		b.log.Debug("redis broker: presence not removed on close; it expires by itself", "err", err)
	}
	return nil
}
