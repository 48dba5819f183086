package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"pushlane/module"
)

// Control channel operations.
const (
	opBroadcast = "broadcast" // deliver data to every local connection
	opKick      = "kick"      // close the user's local connections; reply with how many
	opConns     = "conns"     // reply with the user's local connections
)

// control is the header of a control message. The payload is the header's JSON, a newline,
// and for a broadcast the data exactly as published (never re-encoded).
type control struct {
	Op   string `json:"op"`
	From string `json:"from"`
	Req  uint64 `json:"req,omitempty"`
	User string `json:"user,omitempty"`
	At   int64  `json:"at,omitempty"` // broadcast time, unix nanoseconds
}

// reply is a node's answer to a request, published on the requester's node channel.
type reply struct {
	Req    uint64            `json:"req"`
	From   string            `json:"from"`
	Closed int               `json:"closed,omitempty"`
	Conns  []module.ConnInfo `json:"conns,omitempty"`
}

func (b *Broker) publishControl(ctx context.Context, c control, data []byte) error {
	c.From = b.node
	head, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode control message: %w", err)
	}
	payload := make([]byte, 0, len(head)+1+len(data))
	payload = append(append(append(payload, head...), '\n'), data...)
	if err := b.rdb.Publish(ctx, b.keys.Control(), payload).Err(); err != nil {
		return fmt.Errorf("publish on the control channel: %w", err)
	}
	return nil
}

// onControl runs on the reader: broadcasts are delivered at once (the hub never blocks);
// requests are answered on their own goroutine, since answering is a network round trip.
func (b *Broker) onControl(payload string) {
	head, data, _ := strings.Cut(payload, "\n")
	var c control
	if err := json.Unmarshal([]byte(head), &c); err != nil {
		b.log.Warn("redis broker: malformed control message", "err", err)
		return
	}
	if c.From == b.node {
		return // this node acted directly when it published
	}
	switch c.Op {
	case opBroadcast:
		b.hub.Broadcast(json.RawMessage(data), time.Unix(0, c.At))
	case opKick, opConns:
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.answer(c)
		}()
	}
}

func (b *Broker) answer(c control) {
	r := reply{Req: c.Req, From: b.node}
	switch c.Op {
	case opKick:
		r.Closed = b.hub.Kick(c.User, module.CloseRemoved, "removed by deleteClient")
	case opConns:
		r.Conns = b.hub.Connections(c.User, b.node)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.RequestTimeout)
	defer cancel()
	if err := b.rdb.Publish(ctx, b.keys.NodeChannel(c.From), body).Err(); err != nil {
		b.log.Warn("redis broker: could not answer a request", "op", c.Op, "to", c.From, "err", err)
	}
}

func (b *Broker) onReply(payload string) {
	var r reply
	if err := json.Unmarshal([]byte(payload), &r); err != nil {
		b.log.Warn("redis broker: malformed reply", "err", err)
		return
	}
	b.reqMu.Lock()
	ch := b.reqs[r.Req]
	b.reqMu.Unlock()
	if ch == nil {
		return // too late: the request gave up waiting
	}
	select {
	case ch <- r:
	default:
	}
}

// ask sends a request to every node and waits until each node in holders has answered, up to
// Options.RequestTimeout. Answers from other nodes that arrive meanwhile count too. A node that
// does not answer in time (it died, and presence has not expired yet) is left out.
func (b *Broker) ask(ctx context.Context, op, userID string, holders []string) ([]reply, error) {
	if len(holders) == 0 {
		return nil, nil
	}
	id := b.reqSeq.Add(1)
	ch := make(chan reply, len(holders)+16)
	b.reqMu.Lock()
	b.reqs[id] = ch
	b.reqMu.Unlock()
	defer func() {
		b.reqMu.Lock()
		delete(b.reqs, id)
		b.reqMu.Unlock()
	}()
	if err := b.publishControl(ctx, control{Op: op, Req: id, User: userID}, nil); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(holders))
	for _, n := range holders {
		want[n] = true
	}
	timer := time.NewTimer(b.opts.RequestTimeout)
	defer timer.Stop()
	var out []reply
	for len(want) > 0 {
		select {
		case r := <-ch:
			out = append(out, r)
			delete(want, r.From)
		case <-timer.C:
			b.log.Warn("redis broker: nodes did not answer in time", "op", op, "user", userID, "missing", len(want))
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}
