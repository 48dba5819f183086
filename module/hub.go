package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Hub.Reserve; the api layer answers 429 or 503 before the upgrade.
var (
	ErrTooManyConns     = errors.New("too many connections on this server (websocket.maxConns)")
	ErrTooManyUserConns = errors.New("too many connections for this user (websocket.maxConnsPerUser)")
	ErrShuttingDown     = errors.New("server is shutting down")
)

// HubConfig tunes connections; zero values are replaced by API.md's defaults.
type HubConfig struct {
	PingInterval    time.Duration
	PongWait        time.Duration
	WriteWait       time.Duration
	MaxMessageBytes int
	SendQueue       int // frames queued per connection; beyond: 4001
	SendQueueBytes  int // bytes of frames queued per connection; beyond: 4001
	MaxConnsPerUser int // 0 = no limit
	MaxConns        int // 0 = no limit
	// BroadcastHold is how long a write loop woken by a broadcast waits before writing, so that
	// broadcasts published meanwhile share its system call (0: defaultBroadcastHold; negative:
	// no wait).
	BroadcastHold time.Duration
}

func (c *HubConfig) fillDefaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PongWait <= 0 {
		c.PongWait = 30 * time.Second
	}
	if c.WriteWait <= 0 {
		c.WriteWait = 10 * time.Second
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 65536
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.BroadcastHold == 0 {
		c.BroadcastHold = defaultBroadcastHold
	}
}

// maxStoreReads bounds the backlog reads a node runs at once (see Hub.readBacklog).
const maxStoreReads = 64

// Hub is the registry of this node's connections: user -> set of clients. It delivers messages
// to the clients of a user, runs the shared heartbeat, and closes clients on kick or shutdown.
// Safe for concurrent use. Locks are held only to read or change the registry, never during
// I/O: delivery copies the target set under the read lock and enqueues outside it.
type Hub struct {
	cfg         HubConfig
	store       Store
	consecutive bool // the store's ids are consecutive per user: gaps are detectable
	watcher     UserWatcher
	metrics     *Metrics
	log         *slog.Logger

	mu       sync.RWMutex
	users    map[string]*userConns
	conns    int // registered, including those whose upgrade is still under way
	nextID   uint64
	shutdown bool

	clientGoroutines sync.WaitGroup // every reader and writer goroutine of every client
	stop             chan struct{}  // closed by Close: ends the heartbeat
	stopOnce         sync.Once
	heartbeatDone    chan struct{}
	heartbeatRound   atomic.Uint64 // heartbeat ticks so far; parked write loops retire by it
	storeReads       chan struct{} // a slot per backlog read in progress
}

// userConns is one user's entry. clients is copy-on-write: delivery reads it without copying.
type userConns struct {
	clients []*Client
}

// NewHub builds a hub and starts its heartbeat goroutine; Close stops it.
func NewHub(cfg HubConfig, store Store, metrics *Metrics, log *slog.Logger) *Hub {
	cfg.fillDefaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	consecutive := false
	if g, ok := store.(GapFiller); ok {
		consecutive = g.ConsecutiveIDs()
	}
	h := &Hub{
		cfg:           cfg,
		store:         store,
		consecutive:   consecutive,
		watcher:       noWatcher{},
		metrics:       metrics,
		log:           log,
		users:         make(map[string]*userConns),
		stop:          make(chan struct{}),
		heartbeatDone: make(chan struct{}),
		storeReads:    make(chan struct{}, maxStoreReads),
	}
	go h.runHeartbeat()
	return h
}

// UserWatcher is told which users this node holds connections for, so that a cluster broker
// listens to a user's channel only while needed. Watch and Unwatch calls pair up; Watch returns
// once live messages of the user will reach this node. Implementations count the calls.
type UserWatcher interface {
	Watch(ctx context.Context, userID string) error
	Unwatch(userID string) // must not block: called on connection teardown paths
}

type noWatcher struct{}

func (noWatcher) Watch(context.Context, string) error { return nil }
func (noWatcher) Unwatch(string)                      {}

// SetWatcher installs the cluster broker's watcher; call it before serving.
func (h *Hub) SetWatcher(w UserWatcher) { h.watcher = w }

// Ticket is a connection registered before the transport exists (before the WebSocket upgrade,
// before the event stream's headers), so limits answer 429 as plain HTTP and nothing published
// after the client sees the success can miss it: the client queues frames from Reserve on and its
// write loop starts at Connect. Use it once with Connect, or give it back with Cancel.
type Ticket struct {
	hub    *Hub
	client *Client
	used   bool
}

// ConnectOptions describe a subscriber.
type ConnectOptions struct {
	UserID     string
	Since      *uint64 // nil: send the pending messages (the unread queue) first
	Epoch      string  // version 2: the epoch Since belongs to ("" = not given)
	Version    int     // protocol version: 1 (or 0), or 2 (hello and acks; WebSocket only)
	Kind       TransportKind
	RemoteAddr string
	ExpiresAt  time.Time // token expiry; zero = never
}

// Reserve checks the limits, registers the connection (its frames queue until Connect) and
// then decides what it is owed from the store.
//
// Registering before the user's head is read is what makes a publish racing the connect
// neither lost nor doubled. The store makes an id visible to Head before it hands the message to
// delivery (Head's invariant), so a message is either at or below the LastID read here (and
// comes from the backlog, when owed) or delivered to the registered client live; both at once
// is deduplicated by id.
//
// A since above the user's newest id cannot come from this store (a cursor from another store,
// or from before a reset), nor can a since of another epoch: the connection then gets every
// stored message, as for since=0, and a version 2 client is told recovered=false.
func (h *Hub) Reserve(ctx context.Context, opts ConnectOptions) (*Ticket, error) {
	// Listen for the user's live messages first (a cluster broker subscribes here), so that
	// none published after the head read is missed.
	if err := h.watcher.Watch(ctx, opts.UserID); err != nil {
		return nil, fmt.Errorf("%w: watch user: %w", ErrUnavailable, err)
	}
	c := newClient(h, opts)
	if err := h.register(c); err != nil {
		h.watcher.Unwatch(opts.UserID)
		return nil, err
	}
	head, err := h.store.Head(ctx, opts.UserID)
	if err != nil {
		h.unregister(c) // also ends the Watch
		h.clientGoroutines.Done()
		return nil, fmt.Errorf("%w: store head: %w", ErrUnavailable, err)
	}
	since := opts.Since
	recovered := true
	if (since != nil && *since > head.LastID) || (c.version >= 2 && opts.Epoch != "" && opts.Epoch != head.Epoch) {
		recovered = false
		zero := uint64(0)
		since = &zero
	}
	last := head.LastID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version >= 2 {
		c.hello = &Frame{Kind: FrameControl, Body: helloFrame(head.Epoch, recovered)}
	}
	if since != nil {
		if *since < last {
			c.backlog = &BacklogQuery{After: *since, Since: *since}
		}
		c.floor = *since
	} else {
		// Messages up to last that left the unread queue went to another connection before this
		// one existed: this connection is owed the queued ones; later ones arrive live.
		if last > 0 {
			c.backlog = &BacklogQuery{Since: last, Pending: true}
		}
		c.floor = last
	}
	if c.backlog == nil {
		// Nothing stored is owed (a new user, or since at the newest id): no store read, and no
		// writer goroutine until a message arrives.
		c.lastSent = c.floor
	}
	return &Ticket{hub: h, client: c}, nil
}

// register adds c to the registry unless a limit or shutdown forbids it.
func (h *Hub) register(c *Client) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return ErrShuttingDown
	}
	if h.cfg.MaxConns > 0 && h.conns >= h.cfg.MaxConns {
		return ErrTooManyConns
	}
	u := h.users[c.userID]
	if u == nil {
		u = &userConns{}
		h.users[c.userID] = u
	}
	if h.cfg.MaxConnsPerUser > 0 && len(u.clients) >= h.cfg.MaxConnsPerUser {
		h.dropIfEmptyLocked(c.userID, u)
		return ErrTooManyUserConns
	}
	h.nextID++
	c.id = h.nextID
	u.clients = append(append(make([]*Client, 0, len(u.clients)+1), u.clients...), c)
	if len(u.clients) == 1 {
		h.metrics.UsersOnline.Inc()
	}
	h.metrics.Connections.Inc()
	h.conns++
	// The reader's share of clientGoroutines, taken here rather than at Connect: a connection
	// between Reserve and Connect is then one Shutdown waits for (it closes it with 1001 once
	// connected), and no Add can race Shutdown's Wait. Ticket.Cancel or ReadEnded gives it back.
	h.clientGoroutines.Add(1)
	return nil
}

// Admit takes one of the node's connection slots (websocket.maxConns) for a connection the hub
// does not serve itself, such as a demonstration route's; release gives it back (once; later
// calls do nothing). It fails with ErrTooManyConns when the node is full and ErrShuttingDown
// during shutdown.
func (h *Hub) Admit() (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return nil, ErrShuttingDown
	}
	if h.cfg.MaxConns > 0 && h.conns >= h.cfg.MaxConns {
		return nil, ErrTooManyConns
	}
	h.conns++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.conns--
			h.mu.Unlock()
		})
	}, nil
}

// Cancel gives the slot back when the upgrade failed. It does nothing after Connect.
func (t *Ticket) Cancel() {
	if t == nil || t.used {
		return
	}
	t.used = true
	t.hub.unregister(t.client)
	t.hub.clientGoroutines.Done() // the reader that will never run
}

// Connect attaches the transport to a reserved connection and starts its write loop when work
// waits. From here on the hub owns the transport; the caller runs the connection's reader and
// calls Client.ReadEnded exactly once when it ends (see peer.go). During shutdown, or when the
// connection was closed or cut before the transport existed, the transport is closed at once;
// the reader then ends quickly and reports as usual.
func (h *Hub) Connect(t *Ticket, tr Transport) *Client {
	t.used = true
	c := t.client
	startWriter, cut := c.attach(tr)
	if cut {
		c.abort()
		return c
	}
	h.mu.RLock()
	shutdown := h.shutdown
	h.mu.RUnlock()
	if shutdown {
		// Shutdown may have taken its snapshot of clients before this one was attached.
		c.closeWith(CloseGoingAway, "server shutting down", true) // drained, as Shutdown does
	}
	if startWriter {
		h.clientGoroutines.Add(1)
		go c.writeLoop()
	}
	return c
}

// unregister removes c from the registry; it is idempotent.
func (h *Hub) unregister(c *Client) {
	if h.unregisterLocked(c) {
		h.watcher.Unwatch(c.userID)
	}
}

func (h *Hub) unregisterLocked(c *Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.unregistered {
		return false
	}
	c.unregistered = true
	u := h.users[c.userID]
	if u == nil {
		return true
	}
	for i, x := range u.clients {
		if x == c {
			next := make([]*Client, 0, len(u.clients)-1)
			next = append(next, u.clients[:i]...)
			u.clients = append(next, u.clients[i+1:]...)
			h.conns--
			h.metrics.Connections.Dec()
			if len(u.clients) == 0 {
				h.metrics.UsersOnline.Dec()
			}
			break
		}
	}
	h.dropIfEmptyLocked(c.userID, u)
	return true
}

func (h *Hub) dropIfEmptyLocked(userID string, u *userConns) {
	if len(u.clients) == 0 {
		delete(h.users, userID)
	}
}

// clientsOf returns the live clients of a user; the slice must not be modified.
func (h *Hub) clientsOf(userID string) []*Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if u := h.users[userID]; u != nil {
		return u.clients
	}
	return nil
}

// Deliver enqueues committed messages to the live clients of their users, in the order given.
// It never blocks: a client whose queue is full is closed as a slow consumer. A message's frame
// is encoded once and shared by the user's connections.
func (h *Hub) Deliver(msgs []Message) {
	for i := range msgs {
		m := &msgs[i]
		clients := h.clientsOf(m.UserID)
		if len(clients) == 0 {
			continue
		}
		it := queued{frame: Frame{Kind: FrameMessage, ID: m.ID, Body: m.Frame()}, born: m.CreatedAt.UnixNano()}
		for _, c := range clients {
			c.enqueue(it)
		}
	}
}

// Broadcast sends data to every live connection and returns how many there were. The data is
// encoded once, in a body every recipient's queue shares; only the head naming the recipient is
// built per user.
func (h *Hub) Broadcast(data json.RawMessage, at time.Time) int {
	type target struct {
		userID  string
		clients []*Client
	}
	h.mu.RLock()
	targets := make([]target, 0, len(h.users))
	for id, u := range h.users {
		if len(u.clients) > 0 {
			targets = append(targets, target{id, u.clients})
		}
	}
	h.mu.RUnlock()
	body := broadcastBody(data, at)
	n := 0
	for _, t := range targets {
		it := queued{frame: Frame{Kind: FrameBroadcast, Head: broadcastHead(t.userID), Body: body}, born: at.UnixNano()}
		for _, c := range t.clients {
			c.enqueue(it)
			n++
		}
	}
	return n
}

// CatchUp makes every connection fetch from the store whatever was committed after the last
// message it wrote, then go on live. A cluster broker calls it after a reconnect, because
// Pub/Sub does not replay what was published while this node was cut off. The store reads run
// with bounded concurrency (Hub.readBacklog).
func (h *Hub) CatchUp() {
	for _, c := range h.snapshot(nil) {
		c.enqueue(queued{catchUp: true})
	}
}

// CatchUpUsers is CatchUp for the connections of these users only: a cluster broker that knows
// which users missed messages while it was cut off catches up those alone.
func (h *Hub) CatchUpUsers(userIDs []string) {
	for _, u := range userIDs {
		for _, c := range h.clientsOf(u) {
			c.enqueue(queued{catchUp: true})
		}
	}
}

// Kick closes every connection of the user with code and reason, and returns how many.
func (h *Hub) Kick(userID string, code int, reason string) int {
	clients := h.clientsOf(userID)
	for _, c := range clients {
		c.closeWith(code, reason, false)
	}
	return len(clients)
}

// Count returns the number of live connections of a user on this node.
func (h *Hub) Count(userID string) int { return len(h.clientsOf(userID)) }

// UserConns is one entry of the clients list.
type UserConns struct {
	UserID      string `json:"userId"`
	Connections int    `json:"connections"`
}

// Users lists online users in byte order of userId, with the total before paging.
func (h *Hub) Users() []UserConns {
	h.mu.RLock()
	out := make([]UserConns, 0, len(h.users))
	for id, u := range h.users {
		if len(u.clients) > 0 {
			out = append(out, UserConns{UserID: id, Connections: len(u.clients)})
		}
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// ConnInfo describes one connection for GET /clients/:id.
type ConnInfo struct {
	ID           string    `json:"id"`
	RemoteAddr   string    `json:"remoteAddr"`
	ConnectedAt  time.Time `json:"connectedAt"`
	MessagesSent int64     `json:"messagesSent"`
}

// Connections describes the live connections of a user on this node, oldest first.
func (h *Hub) Connections(userID string, node string) []ConnInfo {
	clients := h.clientsOf(userID)
	out := make([]ConnInfo, 0, len(clients))
	for _, c := range clients {
		out = append(out, c.info(node))
	}
	return out
}

// snapshot appends every registered client to buf.
func (h *Hub) snapshot(buf []*Client) []*Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, u := range h.users {
		buf = append(buf, u.clients...)
	}
	return buf
}

// Shutdown refuses new connections, closes every connection with 1001 after its queue drained,
// and waits for their goroutines until ctx ends; stragglers are then cut off.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shutdown = true
	h.mu.Unlock()
	clients := h.snapshot(nil)
	for _, c := range clients {
		c.closeWith(CloseGoingAway, "server shutting down", true)
	}
	done := make(chan struct{})
	go func() {
		h.clientGoroutines.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range clients {
		c.abort()
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return errors.New("hub shutdown: drain did not finish in time; remaining connections were cut off")
}

// Close stops the heartbeat. Call it after Shutdown.
func (h *Hub) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.heartbeatDone
}

// WaitIdle blocks until every client goroutine has exited or ctx ends (tests use it to prove
// that nothing leaks).
func (h *Hub) WaitIdle(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		h.clientGoroutines.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
