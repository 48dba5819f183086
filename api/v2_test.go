package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// These tests hold API.md "Protocol version 2": the hello frame, epochs, and acknowledgements
// that make delivery at least once to the application, on every store.

// dialV2 opens a version 2 connection (extra is appended to the query).
func (e *env) dialV2(user, extra string) *client {
	e.t.Helper()
	return e.dialWith("userId="+user+"&v=2"+extra, user, nil)
}

// hello reads the first frame of a version 2 connection and returns epoch and recovered.
func (c *client) hello() (string, bool) {
	c.t.Helper()
	f := c.readFrame()
	if f.str("type") != "hello" || len(f.fields) != 3 {
		c.t.Fatalf("first frame %s, want exactly {type: hello, epoch, recovered}", f.raw)
	}
	var recovered bool
	switch string(f.fields["recovered"]) {
	case "true":
		recovered = true
	case "false":
	default:
		c.t.Fatalf("hello %s: recovered is not a boolean", f.raw)
	}
	return f.str("epoch"), recovered
}

func (c *client) ack(id uint64) {
	c.t.Helper()
	c.sendText(fmt.Sprintf(`{"type":"ack","id":"%d"}`, id))
}

func (e *env) epoch() string {
	e.t.Helper()
	ep, err := e.store.Epoch(context.Background())
	if err != nil {
		e.t.Fatalf("store epoch: %v", err)
	}
	return ep
}

func TestV2HelloCarriesTheStoreEpoch(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		id := e.publish("v2", "hi")
		c := e.dialV2("v2", "")
		epoch, recovered := c.hello()
		if epoch != e.epoch() || !recovered {
			t.Fatalf("hello epoch %q recovered %v, want the store's %q and true", epoch, recovered, e.epoch())
		}
		if got := c.readMessage().id(); got != id {
			t.Fatalf("after hello: message %d, want the pending %d", got, id)
		}
		// The same epoch with a since is honoured.
		c2 := e.dialV2("v2", fmt.Sprintf("&since=%d&epoch=%s", id, epoch))
		if _, recovered := c2.hello(); !recovered {
			t.Fatal("since at the newest id in the current epoch: recovered false, want true")
		}
		// Version 1 connections get no hello.
		c1 := e.dial("v2", 0)
		if f := c1.readMessage(); f.id() != id {
			t.Fatalf("version 1 with since=0: %s, want message %d first", f.raw, id)
		}
	})
}

func TestV2NotRecoveredReplaysEverything(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		a, b := e.publish("rs", "a"), e.publish("rs", "b")
		for name, extra := range map[string]string{
			"another epoch":           fmt.Sprintf("&since=%d&epoch=someOtherEpoch", b),
			"since above the newest":  fmt.Sprintf("&since=%d&epoch=%s", b+100, e.epoch()),
			"since above, no epoch":   fmt.Sprintf("&since=%d", b+100),
			"another epoch, no since": "&epoch=someOtherEpoch",
		} {
			c := e.dialV2("rs", extra)
			if _, recovered := c.hello(); recovered {
				t.Fatalf("%s: recovered true, want false", name)
			}
			requireIncreasingExactly(t, name, c.readIDs(2), []uint64{a, b})
			c.conn.Close()
		}
	})
}

func TestV2UnackedMessagesComeBack(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		ids := []uint64{e.publish("ack", 1), e.publish("ack", 2), e.publish("ack", 3)}
		c := e.dialV2("ack", "")
		c.hello()
		requireIncreasingExactly(t, "first connection", c.readIDs(3), ids)
		c.ack(ids[0])
		// Acks are applied asynchronously; the unread queue reflects them once committed.
		waitFor(t, waitTimeout, "the ack to take message 1 out of the unread queue", func() bool { return e.pending("ack") == 2 })
		c.conn.Close()
		e.waitConns("ack", 0)

		// Written to a version 2 connection is not read by the application: 2 and 3 come back.
		again := e.dialV2("ack", "")
		again.hello()
		requireIncreasingExactly(t, "reconnect without since", again.readIDs(2), ids[1:])
		// Acks from any connection of the user count: a second tab acks 2.
		other := e.dialV2("ack", fmt.Sprintf("&since=%d", ids[0]))
		other.hello()
		requireIncreasingExactly(t, "second tab", other.readIDs(2), ids[1:])
		other.ack(ids[1])
		waitFor(t, waitTimeout, "the second tab's ack", func() bool { return e.pending("ack") == 1 })
		again.conn.Close()
		other.conn.Close()
		e.waitConns("ack", 0)
		last := e.dialV2("ack", "")
		last.hello()
		if got := last.readMessage().id(); got != ids[2] {
			t.Fatalf("after acks of 1 and 2: got %d, want only %d", got, ids[2])
		}
	})
}

func TestV2AcksOfOtherUsersAndGarbageAreIgnored(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		mine := e.publish("alice", "for alice")
		theirs := e.publish("bob", "for bob")
		c := e.dialV2("alice", "")
		c.hello()
		c.readMessage()
		// Bob's id, ids never assigned, malformed ids: none of them change anything.
		c.ack(theirs)
		c.ack(mine + 1000)
		for _, s := range []string{`{"type":"ack"}`, `{"type":"ack","id":42}`, `{"type":"ack","id":"01"}`, `{"type":"ack","id":"-1"}`} {
			c.sendText(s)
		}
		// A ping round trip: every frame before it was read and handled.
		c.sendText(`{"type":"ping"}`)
		if f := c.readFrame(); f.str("type") != "pong" {
			t.Fatalf("got %s, want pong", f.raw)
		}
		if p := e.pending("bob"); p != 1 {
			t.Fatalf("bob's pending after alice acked his message: %d, want 1", p)
		}
		// Version 1 connections cannot ack: their frames other than ping are ignored.
		c1 := e.dial("bob", 0)
		c1.readMessage() // written to version 1: out of the queue anyway
		c1.sendText(fmt.Sprintf(`{"type":"ack","id":"%d"}`, theirs))
		c1.sendText(`{"type":"ping"}`)
		if f := c1.readFrame(); f.str("type") != "pong" {
			t.Fatalf("got %s, want pong", f.raw)
		}
	})
}

// TestV2StatusesFollowWritesAndAcks: the store's statuses, as GET /messages will show them.
func TestV2StatusesFollowWritesAndAcks(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		id := e.publish("st", "x")
		status := func() string {
			st, err := e.store.Status(context.Background(), "st", id)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			return st.Status()
		}
		if s := status(); s != "pending" {
			t.Fatalf("before any connection: %s, want pending", s)
		}
		c := e.dialV2("st", "")
		c.hello()
		c.readMessage()
		waitFor(t, waitTimeout, "status sent", func() bool { return status() == "sent" })
		c.ack(id)
		waitFor(t, waitTimeout, "status acked", func() bool { return status() == "acked" })
		// The metric of messages by status counts each message once per status reached.
		c.ack(id) // again: nothing changes
		c.sendText(`{"type":"ping"}`)
		c.readFrame()
		waitFor(t, waitTimeout, "the status metrics", func() bool {
			return metricValue(t, e, `pushlane_messages_status_total{status="acked"}`) == 1
		})
		if sent := metricValue(t, e, `pushlane_messages_status_total{status="sent"}`); sent != 1 {
			t.Fatalf("messages counted as sent: %v, want 1", sent)
		}
	})
}

// TestV2AcksAreCounted: the acks metric counts acknowledgements from version 2 clients.
func TestV2AcksAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.PingInterval = time.Hour })
	id := e.publish("m", 1)
	c := e.dialV2("m", "")
	c.hello()
	c.readMessage()
	c.ack(id)
	waitFor(t, waitTimeout, "the ack to be counted", func() bool { return metricValue(t, e, "pushlane_acks_received_total") == 1 })
}

// TestV2AckFloodIsBounded: acks are store writes shared by the whole node, so a connection that
// floods them gets only 2,000 a second (plus a burst of 2,000) through; the rest are counted as
// dropped and change nothing.
func TestV2AckFloodIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.PingInterval = time.Hour })
	id := e.publish("flood", 1)
	c := e.dialV2("flood", "")
	c.hello()
	c.readMessage()
	const sent = 20000
	frame := []byte(fmt.Sprintf(`{"type":"ack","id":"%d"}`, id))
	start := time.Now()
	for range sent {
		if err := c.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatal(err)
		}
	}
	c.sendText(`{"type":"ping"}`) // answered once every ack before it was handled
	if f := c.readFrame(); f.str("type") != "pong" {
		t.Fatalf("got %s, want pong", f.raw)
	}
	elapsed := time.Since(start).Seconds()
	received := metricValue(t, e, "pushlane_acks_received_total")
	dropped := metricValue(t, e, "pushlane_acks_dropped_total")
	if received+dropped != sent || received > 2000+2000*elapsed+1 || dropped == 0 {
		t.Fatalf("%d acks in %.2fs: %v received, %v dropped; want at most %.0f received and the rest dropped",
			sent, elapsed, received, dropped, 2000+2000*elapsed)
	}
}
