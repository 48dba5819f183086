package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
)

// How a subscription is confirmed: the worker writes SUBSCRIBE and then PING "w:<seq>" on the
// Pub/Sub connection. Redis answers commands of one connection in order, so the PONG carrying
// that seq proves every earlier SUBSCRIBE is in effect; the reader then releases the Watch calls
// of that flush. A new connection ends its setup with PING "b:<seq>" the same way; health pings
// carry "h".
const (
	pongWatch   = "w:"
	pongBarrier = "b:"
	pongHealth  = "h"
)

// subscribeChunk bounds the channels of one SUBSCRIBE when a connection is set up again.
const subscribeChunk = 1000

// Backoff between reconnection attempts: doubling from backoffMin up to backoffMax, with jitter.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 5 * time.Second
)

// Watch implements module.UserWatcher: it counts the user's local connections and returns once
// this node is subscribed to the user's channel (confirmed by Redis) and the user is in this
// node's presence.
func (b *Broker) Watch(ctx context.Context, userID string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("redis broker watch: %w", module.ErrClosed)
	}
	if !b.connected {
		err := b.lastErr
		b.mu.Unlock()
		return fmt.Errorf("redis broker watch: %w: %v", ErrNotConnected, err)
	}
	w := b.users[userID]
	if w == nil {
		w = &watch{}
		b.users[userID] = w
	}
	w.refs++
	b.total++
	b.dirty[userID] = struct{}{}
	wt := &waiter{done: make(chan error, 1)}
	b.waiters = append(b.waiters, wt)
	b.mu.Unlock()
	b.signal()

	timer := time.NewTimer(b.opts.WatchTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-wt.done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errors.New("subscription not confirmed in time")
	}
	if err != nil {
		b.Unwatch(userID)
		return fmt.Errorf("redis broker watch %s: %w", userID, err)
	}
	return nil
}

// Unwatch implements module.UserWatcher. It never blocks: the worker writes the UNSUBSCRIBE (after
// the last Unwatch) and the presence change.
func (b *Broker) Unwatch(userID string) {
	b.mu.Lock()
	w := b.users[userID]
	if w == nil || w.refs == 0 {
		b.mu.Unlock()
		return
	}
	w.refs--
	b.total--
	b.dirty[userID] = struct{}{}
	b.mu.Unlock()
	b.signal()
}

func (b *Broker) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run is the worker: the only goroutine that writes to the Pub/Sub connection or this node's
// presence, so subscriptions and presence change in the order Watch and Unwatch asked.
func (b *Broker) run() {
	defer b.wg.Done()
	tick := time.NewTicker(b.refreshEvery)
	defer tick.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	var backoff time.Duration
	var nextAttempt time.Time
	for {
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-tick.C:
			b.refresh()
		case <-retry.C:
		}
		if !b.hasPubSub() {
			if time.Now().Before(nextAttempt) {
				continue
			}
			if err := b.connect(); err != nil {
				if errors.Is(err, module.ErrClosed) {
					return
				}
				backoff = min(max(2*backoff, backoffMin), backoffMax)
				wait := backoff/2 + rand.N(backoff/2+1)
				nextAttempt = time.Now().Add(wait)
				retry.Reset(wait)
				b.setLastErr(err)
				b.log.Warn("redis pub/sub: connect failed; retrying", "in", wait, "err", err)
				continue
			}
			backoff = 0
		}
		b.flush()
	}
}

func (b *Broker) hasPubSub() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ps != nil
}

func (b *Broker) setLastErr(err error) {
	b.mu.Lock()
	b.lastErr = err
	b.mu.Unlock()
}

// connect opens a new Pub/Sub connection, subscribes to the control channel, this node's reply
// channel and every watched user's channel, rewrites this node's presence, and installs the
// connection for the reader. The reader marks it connected, and catches local connections up
// from the store, when the closing PING comes back.
func (b *Broker) connect() error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	ps := b.rdb.Subscribe(ctx)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ps.Close()
		return module.ErrClosed
	}
	channels := []string{b.keys.Control(), b.keys.NodeChannel(b.node)}
	refs := make(map[string]int, len(b.users))
	for u, w := range b.users {
		if w.refs > 0 {
			w.subscribed = true
			channels = append(channels, b.keys.UserChannel(u))
			refs[u] = w.refs
		} else {
			delete(b.users, u)
		}
	}
	clear(b.dirty)
	b.seq++
	seq := b.seq
	b.mu.Unlock()

	err := b.rewritePresence(ctx, refs)
	for i := 0; err == nil && i < len(channels); i += subscribeChunk {
		err = ps.Subscribe(ctx, channels[i:min(i+subscribeChunk, len(channels))]...)
	}
	if err == nil {
		err = ps.Ping(ctx, pongBarrier+strconv.FormatUint(seq, 10))
	}
	if err != nil {
		_ = ps.Close()
		b.markPresenceStale()
		return fmt.Errorf("subscribe %d channels: %w", len(channels), err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ps.Close()
		return module.ErrClosed
	}
	b.ps = ps
	b.gen++
	b.barrier = seq
	close(b.psChanged)
	b.psChanged = make(chan struct{})
	b.mu.Unlock()
	return nil
}

// flush writes the subscription and presence changes asked for since the last flush, then the
// PING that confirms them to the waiting Watch calls.
func (b *Broker) flush() {
	b.mu.Lock()
	if b.ps == nil || (len(b.dirty) == 0 && len(b.waiters) == 0) {
		b.mu.Unlock()
		return
	}
	ps, gen := b.ps, b.gen
	var subs, unsubs, gone []string
	counts := make(map[string]int, len(b.dirty))
	for u := range b.dirty {
		w := b.users[u]
		if w == nil {
			continue
		}
		if w.refs > 0 {
			counts[u] = w.refs
			if !w.subscribed {
				w.subscribed = true
				subs = append(subs, b.keys.UserChannel(u))
			}
			continue
		}
		gone = append(gone, u)
		if w.subscribed {
			unsubs = append(unsubs, b.keys.UserChannel(u))
		}
		delete(b.users, u)
	}
	clear(b.dirty)
	waiters := b.waiters
	b.waiters = nil
	total := b.total
	b.seq++
	seq := b.seq
	if len(waiters) > 0 {
		// Registered before the PING goes out, so its PONG always finds them.
		b.flushing[seq] = waiters
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if err := b.writePresence(ctx, counts, gone, total); err != nil {
		b.markPresenceStale()
		b.failFlush(seq, fmt.Errorf("presence: %w", err))
	}
	var err error
	if len(subs) > 0 {
		err = ps.Subscribe(ctx, subs...)
	}
	if err == nil && len(unsubs) > 0 {
		err = ps.Unsubscribe(ctx, unsubs...)
	}
	if err == nil && len(waiters) > 0 {
		err = ps.Ping(ctx, pongWatch+strconv.FormatUint(seq, 10))
	}
	if err != nil {
		b.resetPubSub(gen, err)
	}
}

// failFlush fails the Watch calls of one flush.
func (b *Broker) failFlush(seq uint64, err error) {
	b.mu.Lock()
	ws := b.flushing[seq]
	delete(b.flushing, seq)
	b.mu.Unlock()
	for _, w := range ws {
		w.finish(err)
	}
}

func (b *Broker) failWaitersLocked(err error) {
	for seq, ws := range b.flushing {
		for _, w := range ws {
			w.finish(err)
		}
		delete(b.flushing, seq)
	}
	for _, w := range b.waiters {
		w.finish(err)
	}
	b.waiters = nil
}

// resetPubSub drops the Pub/Sub connection of generation gen after err; the worker then opens
// a new one. Pending Watch calls fail (their subscribers answer 503 and retry).
func (b *Broker) resetPubSub(gen uint64, err error) {
	b.mu.Lock()
	if b.gen != gen || b.ps == nil {
		b.mu.Unlock()
		return
	}
	ps := b.ps
	b.ps = nil
	b.connected = false
	b.lastErr = err
	b.failWaitersLocked(fmt.Errorf("%w: %v", ErrNotConnected, err))
	closed := b.closed
	b.mu.Unlock()
	_ = ps.Close()
	if !closed {
		b.log.Warn("redis pub/sub connection lost; reconnecting", "err", err)
	}
	b.signal()
}

// nextPubSub waits for a connection newer than generation after.
func (b *Broker) nextPubSub(after uint64) (*goredis.PubSub, uint64, bool) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, 0, false
		}
		if b.ps != nil && b.gen > after {
			ps, gen := b.ps, b.gen
			b.mu.Unlock()
			return ps, gen, true
		}
		changed := b.psChanged
		b.mu.Unlock()
		select {
		case <-changed:
		case <-b.stop:
			return nil, 0, false
		}
	}
}

// read is the reader: the only goroutine that receives from the Pub/Sub connection.
func (b *Broker) read() {
	defer b.wg.Done()
	ctx := context.Background()
	var gen uint64
	for {
		ps, g, ok := b.nextPubSub(gen)
		if !ok {
			return
		}
		gen = g
		for {
			msg, err := ps.ReceiveTimeout(ctx, b.readTimeout)
			if err != nil {
				select {
				case <-b.stop:
					return
				default:
				}
				b.resetPubSub(gen, err)
				break
			}
			b.dispatch(gen, msg)
		}
	}
}

func (b *Broker) dispatch(gen uint64, msg any) {
	switch m := msg.(type) {
	case *goredis.Message:
		switch {
		case strings.HasPrefix(m.Channel, b.keys.UserChannelPrefix()):
			b.deliver(m.Channel[len(b.keys.UserChannelPrefix()):], m.Payload)
		case m.Channel == b.keys.Control():
			b.onControl(m.Payload)
		case m.Channel == b.keys.NodeChannel(b.node):
			b.onReply(m.Payload)
		}
	case *goredis.Pong:
		b.onPong(gen, m.Payload)
	case *goredis.Subscription:
		// Confirmations are covered by the PING that follows the SUBSCRIBE.
	}
}

// deliver hands one live message to the hub; it never blocks.
func (b *Broker) deliver(userID, payload string) {
	id, created, data, err := rediskeys.DecodeLive(payload)
	if err != nil {
		b.log.Warn("redis broker: dropped a malformed live message (the store still has it)", "user", userID, "err", err)
		return
	}
	b.mu.Lock()
	if w := b.users[userID]; w != nil && id > w.lastLive {
		w.lastLive = id
	}
	b.mu.Unlock()
	b.hub.Deliver([]module.Message{{ID: id, UserID: userID, Data: []byte(data), CreatedAt: time.UnixMilli(created)}})
}

func (b *Broker) onPong(gen uint64, payload string) {
	switch {
	case strings.HasPrefix(payload, pongWatch):
		seq, err := strconv.ParseUint(payload[len(pongWatch):], 10, 64)
		if err != nil {
			return
		}
		var done []*waiter
		b.mu.Lock()
		if gen == b.gen {
			for s, ws := range b.flushing {
				if s <= seq {
					done = append(done, ws...)
					delete(b.flushing, s)
				}
			}
		}
		b.mu.Unlock()
		for _, w := range done {
			w.finish(nil)
		}
	case strings.HasPrefix(payload, pongBarrier):
		seq, err := strconv.ParseUint(payload[len(pongBarrier):], 10, 64)
		if err != nil {
			return
		}
		b.mu.Lock()
		if gen != b.gen || seq != b.barrier || b.closed {
			b.mu.Unlock()
			return
		}
		b.connected = true
		b.lastErr = nil
		again := b.everConnected
		b.everConnected = true
		b.mu.Unlock()
		if again {
			// Messages published while this node was cut off never reach it by Pub/Sub; the
			// connections of users who missed some read them from the store.
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.catchUp()
			}()
		} else {
			b.log.Info("redis pub/sub connected")
		}
	}
}
