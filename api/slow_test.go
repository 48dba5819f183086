package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// TestSlowConsumer: a client that stops reading while large messages arrive fills the TCP
// buffers, then its small send queue. It is closed with 4001 (the close frame reaches it once it
// reads again, within writeWait), the publisher is never held up, another user's connection
// keeps receiving everything, and the missed messages come back with since.
//
// Not parallel: it measures publish latency.
func TestSlowConsumer(t *testing.T) {
	const (
		// Publishing stops a few messages after the overflow shows (the slow user reported
		// offline): with small socket buffers after about 10 messages.
		maxMessages   = 400
		afterOverflow = 10
		writeWait     = 10 * time.Second
		// A publish that waited for the slow socket would take writeWait; a normal one takes
		// milliseconds. This bound sits far from both.
		maxPublish = 3 * time.Second
	)
	e := newEnv(t, "sqlite", func(c *config.Config) {
		c.WebSocket.SendQueue = 4
		c.WebSocket.MaxMessageBytes = 128 << 10
		c.WebSocket.WriteWait = writeWait
	}, smallSendBuffers)
	slow := e.dialWith(subQuery("slow", -1), "slow", smallReadBufferDialer())
	fast := e.dial("fast", -1)
	e.waitConns("slow", 1)
	e.waitConns("fast", 1)

	fastCol := collect(fast.conn, "fast")

	pad := strings.Repeat("x", 60<<10)
	var slowIDs, fastIDs []uint64
	start := time.Now()
	overflowAt := -1
	for i := 0; i < maxMessages && (overflowAt < 0 || i < overflowAt+afterOverflow); i++ {
		body := fmt.Appendf(nil, `{"userIds":["slow","fast"],"data":{"i":%d,"pad":%q}}`, i, pad)
		t0 := time.Now()
		resp, err := e.publishE(body)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if d := time.Since(t0); d > maxPublish {
			t.Fatalf("publish %d took %v: the publisher was held up by the slow consumer", i, d)
		}
		if len(resp.Results) != 2 {
			t.Fatalf("publish %d: results %+v", i, resp.Results)
		}
		for _, r := range resp.Results {
			id, err := parseID(r.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch r.UserID {
			case "slow":
				slowIDs = append(slowIDs, id)
				if !r.Online && overflowAt < 0 {
					overflowAt = i
				}
			case "fast":
				fastIDs = append(fastIDs, id)
				if !r.Online {
					t.Fatalf("publish %d: fast is reported offline", i)
				}
			}
		}
	}
	messages := len(slowIDs)
	t.Logf("%d publishes of 2x60 KB in %v; the slow user was offline from publish %d on", messages, time.Since(start), overflowAt)
	// The overflow unregistered the slow connection: later publishes see it offline.
	if overflowAt < 0 {
		t.Fatalf("the slow consumer still counted as online after %d messages of 60 KB it did not read", messages)
	}
	e.waitConns("slow", 0)

	// The slow client reads again: what was buffered, a prefix of its messages, then 4001.
	var got []uint64
	readStart := time.Now()
	for {
		f, err := readFrameE(slow.conn, time.Until(readStart.Add(writeWait)))
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("slow client: connection ended without a close frame after %d messages: %v", len(got), err)
			}
			if ce.Code != 4001 {
				t.Fatalf("slow client: close code %d (%q), want 4001", ce.Code, ce.Text)
			}
			break
		}
		if err := checkMessageFrame(f, "slow"); err != nil {
			t.Fatal(err)
		}
		got = append(got, f.id())
	}
	t.Logf("slow client read %d messages and the close frame in %v", len(got), time.Since(readStart))
	if len(got) == 0 || len(got) >= overflowAt+1 {
		t.Fatalf("slow client got %d of %d messages before 4001; the test did not overflow the queue", len(got), messages)
	}
	requireIncreasingExactly(t, "slow client before 4001", got, slowIDs[:len(got)])

	// The missed messages stay stored: since brings back exactly the rest.
	again := e.dial("slow", int64(got[len(got)-1]))
	rest := slowIDs[len(got):]
	requireIncreasingExactly(t, "slow client resumed with since", again.readIDs(len(rest)), rest)

	// The fast user received every message, in order.
	e.publish("fast", json.RawMessage(stopData))
	requireIncreasingExactly(t, "fast user", fastCol.wait(t), fastIDs)
}

// TestSlowConsumerLateOverflow: the write that blocks on a slow client may have started long
// before its queue overflows. A client that reads again within writeWait of the overflow, but
// after the blocked write's own deadline, still gets the 4001 close frame.
//
// Not parallel: it relies on real time passing (the behaviour under test is a deadline).
func TestSlowConsumerLateOverflow(t *testing.T) {
	const (
		writeWait = 3 * time.Second
		queue     = 16
	)
	e := newEnv(t, "sqlite", func(c *config.Config) {
		c.WebSocket.SendQueue = queue
		c.WebSocket.MaxMessageBytes = 128 << 10
		c.WebSocket.WriteWait = writeWait
		c.WebSocket.PingInterval = time.Minute // no pings in the queue
		c.WebSocket.PongWait = 2 * time.Minute
	}, smallSendBuffers)
	slow := e.dial("late", -1) // normal buffers: once it reads again it drains at once
	e.waitConns("late", 1)
	pad := strings.Repeat("y", 60<<10)
	publish := func(i int) bool {
		resp, err := e.publishE(fmt.Appendf(nil, `{"userId":"late","data":{"i":%d,"pad":%q}}`, i, pad))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		return resp.Results[0].Online
	}
	// Fill the socket buffers so the write loop blocks, but stay below the queue bound.
	i := 0
	for ; i < 8; i++ {
		if !publish(i) {
			t.Fatalf("overflowed after %d messages while filling the buffers; raise the queue", i)
		}
	}
	// Let half of the blocked write's deadline pass, then overflow the queue.
	time.Sleep(writeWait / 2)
	for ; publish(i); i++ {
		if i > 200 {
			t.Fatal("the queue never overflowed")
		}
	}
	// Read again within writeWait of the overflow, but after the first write's deadline.
	time.Sleep(writeWait * 2 / 3)
	readStart := time.Now()
	frames := 0
	for {
		_, err := readFrameE(slow.conn, time.Until(readStart.Add(2*writeWait)))
		if err == nil {
			frames++
			continue
		}
		t.Logf("read %d frames, then %v after %v", frames, err, time.Since(readStart))
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("slow client: want close 4001, got %v", err)
		}
		return
	}
}
