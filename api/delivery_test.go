package api

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// TestPendingQueue: an offline user's messages wait in the unread queue and arrive oldest first
// on connect, then live ones; once written they are not pending any more, so a later connection
// without since does not get them again, and messages written live are not queued either.
func TestPendingQueue(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u = "pend"
		var queued []uint64
		for i := range 5 {
			queued = append(queued, e.publish(u, map[string]int{"queued": i}))
		}
		if p := e.pending(u); p != 5 {
			t.Fatalf("pending %d before connecting, want 5", p)
		}

		c1 := e.dial(u, -1)
		requireIncreasingExactly(t, "backlog", c1.readIDs(5), queued)
		e.waitConns(u, 1)
		live := e.publish(u, "live")
		if f := c1.readMessage(); f.id() != live {
			t.Fatalf("after the backlog got %s, want the live message %d", f.raw, live)
		}
		// The written mark may lag the write a little (API.md: at least once); wait for it.
		waitFor(t, waitTimeout, "pending to drop to 0", func() bool { return e.pending(u) == 0 })

		// A second connection without since: nothing old, only what comes next.
		c2 := e.dial(u, -1)
		e.waitConns(u, 2)
		next := e.publish(u, "next")
		for name, c := range map[string]*client{"first": c1, "second": c2} {
			if f := c.readMessage(); f.id() != next {
				t.Fatalf("%s connection got %s, want only the new message %d", name, f.raw, next)
			}
		}

		// Everyone leaves; messages written live are not re-queued for the next connection.
		c1.conn.Close()
		c2.conn.Close()
		e.waitConns(u, 0)
		waitFor(t, waitTimeout, "pending to drop to 0", func() bool { return e.pending(u) == 0 })
		c3 := e.dial(u, -1)
		e.waitConns(u, 1)
		fresh := e.publish(u, "fresh")
		if f := c3.readMessage(); f.id() != fresh {
			t.Fatalf("reconnect without since got %s, want only the new message %d", f.raw, fresh)
		}
	})
}

// TestSince: since replays every stored message after the id, delivered or not; since=0 replays
// all; since=<latest> sends nothing old.
func TestSince(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u = "since-user"
		c := e.dial(u, -1)
		e.waitConns(u, 1)
		var all []uint64
		for i := range 6 {
			all = append(all, e.publish(u, i))
		}
		// These were delivered live.
		requireIncreasingExactly(t, "live", c.readIDs(6), all)
		waitFor(t, waitTimeout, "pending to drop to 0", func() bool { return e.pending(u) == 0 })
		c.conn.Close()
		e.waitConns(u, 0)
		// Another user's messages interleave in the global id sequence and must not show up.
		e.publish("since-other", "not yours")

		// Each round replays everything stored after since (including the live message of the
		// previous rounds), then goes live.
		for _, pick := range []int{-1, 0, 2, 4, 7} {
			since := uint64(0)
			if pick >= 0 {
				since = all[pick]
			}
			var want []uint64
			for _, id := range all {
				if id > since {
					want = append(want, id)
				}
			}
			c := e.dial(u, int64(since))
			requireIncreasingExactly(t, fmt.Sprintf("since=%d", since), c.readIDs(len(want)), want)
			e.waitConns(u, 1)
			// Then live, with nothing replayed twice.
			live := e.publish(u, "live")
			if f := c.readMessage(); f.id() != live {
				t.Fatalf("since=%d: after the replay got %s, want live %d", since, f.raw, live)
			}
			all = append(all, live)
			c.conn.Close()
			e.waitConns(u, 0)
		}

		// since=latest: nothing old, the next frame is the next message.
		latest := all[len(all)-1]
		c = e.dial(u, int64(latest))
		e.waitConns(u, 1)
		live := e.publish(u, "after latest")
		if f := c.readMessage(); f.id() != live {
			t.Fatalf("since=latest got %s, want only the new message %d", f.raw, live)
		}
	})
}

// TestPublishConnectRace is the race API.md promises to handle: publishes run while the user
// connects. Every answered id must reach the connection exactly once, in increasing order,
// whether it lands in the backlog (since=0, or the unread queue without since) or live.
func TestPublishConnectRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const iterations, perIteration, workers = 200, 6, 4
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= iterations {
						return
					}
					if err := raceOnce(e, int(i), perIteration); err != nil {
						errs <- fmt.Errorf("iteration %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// Both paths were taken: messages came from the store (backlog) and live, beyond the one
		// live sentinel per iteration.
		live := metricValue(t, e, `pushlane_frames_delivered_total{kind="live"}`)
		backlog := metricValue(t, e, `pushlane_frames_delivered_total{kind="backlog"}`)
		t.Logf("%v frames live (%d of them sentinels), %v from the backlog", live, iterations, backlog)
		if live <= iterations || backlog == 0 {
			t.Fatalf("the race was not exercised: %v live (%d sentinels), %v backlog", live, iterations, backlog)
		}
	})
}

// raceOnce publishes n messages to a fresh user while connecting it, then checks what arrived.
func raceOnce(e *env, i, n int) error {
	user := fmt.Sprintf("race-%d", i)
	since := int64(0)
	if i%2 == 1 {
		since = -1 // the unread queue: nothing was ever written, so it is every message too
	}
	published := make(chan []uint64, 1)
	pubErr := make(chan error, 1)
	// Some iterations publish a few before the dial starts, so both orders are exercised.
	head := rand.IntN(n + 1)
	var ids []uint64
	for range head {
		id, err := e.publishOne(user, "before")
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	go func() {
		for k := head; k < n; k++ {
			id, err := e.publishOne(user, k)
			if err != nil {
				pubErr <- err
				published <- ids
				return
			}
			ids = append(ids, id)
		}
		pubErr <- nil
		published <- ids
	}()
	conn, _, err := e.dialE(subQuery(user, since), nil)
	if err != nil {
		<-published
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if err := <-pubErr; err != nil {
		<-published
		return err
	}
	want := <-published
	var got []uint64
	for len(got) < len(want) {
		f, err := readFrameE(conn, readTimeout)
		if err == nil {
			err = checkMessageFrame(f, user)
		}
		if err != nil {
			return fmt.Errorf("after ids %v of %v: %w", got, want, err)
		}
		got = append(got, f.id())
	}
	if err := sameIDs(got, want); err != nil {
		return err
	}
	// Nothing more (no duplicate of the last one) comes before a sentinel.
	if err := poll(waitTimeout, func() bool { return e.hub.Count(user) == 1 }); err != nil {
		return fmt.Errorf("connection not registered: %w", err)
	}
	sentinel, err := e.publishOne(user, "sentinel")
	if err != nil {
		return err
	}
	f, err := readFrameE(conn, readTimeout)
	if err != nil {
		return fmt.Errorf("sentinel: %w", err)
	}
	if f.id() != sentinel {
		return fmt.Errorf("got %s after all ids %v, want the sentinel %d", f.raw, want, sentinel)
	}
	return nil
}

// TestConcurrentPublishersOrder: 16 publishers race 50 messages each to one user with two live
// connections; each connection gets every id exactly once, in increasing order.
func TestConcurrentPublishersOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u, publishers, each = "fan-in", 16, 50
		c1 := e.dial(u, -1)
		c2 := e.dial(u, -1)
		e.waitConns(u, 2)

		var mu sync.Mutex
		var ids []uint64
		col1 := collect(c1.conn, u)
		col2 := collect(c2.conn, u)

		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range each {
					id, err := e.publishOne(u, map[string]int{"p": p, "k": k})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := sortedUnique(ids)
		if len(want) != publishers*each {
			t.Fatalf("%d distinct ids for %d publishes", len(want), publishers*each)
		}
		// Everything up to the stop message: every id once, in order, no late duplicate.
		e.publish(u, json.RawMessage(stopData))
		requireIncreasingExactly(t, "connection 1", col1.wait(t), want)
		requireIncreasingExactly(t, "connection 2", col2.wait(t), want)
	})
}

func sortedUnique(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	for i := 1; i < len(out); i++ { // insertion sort: small inputs
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	n := 0
	for i, v := range out {
		if i == 0 || v != out[n-1] {
			out[n] = v
			n++
		}
	}
	return out[:n]
}

// TestPublishWhileDisconnecting races publishes against every way a connection ends (client
// close frame, TCP cut, /deleteClient). Under -race this finds unsynchronised access; a send on
// a closed channel would panic the whole test binary. Every publish must still be answered 200,
// and no connection may stay registered.
func TestPublishWhileDisconnecting(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, func(c *config.Config) { c.WebSocket.SendQueue = 8 })
		const iterations = 150
		for i := range iterations {
			user := fmt.Sprintf("bye-%d", i%10)
			c := e.dial(user, -1)
			done := make(chan error, 1)
			go func() {
				for k := range 6 {
					if _, err := e.publishOne(user, k); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			switch i % 3 {
			case 0:
				_ = c.conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
				c.conn.Close()
			case 1:
				c.conn.Close()
			case 2:
				status, _, _, err := e.do(http.MethodDelete, "/deleteClient/"+user, nil, nil)
				if err != nil || (status != http.StatusOK && status != http.StatusNotFound) {
					t.Fatalf("deleteClient: status %d, err %v", status, err)
				}
				c.conn.Close()
			}
			if err := <-done; err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
		}
		waitFor(t, waitTimeout, "every connection to leave", func() bool { return len(e.hub.Users()) == 0 })
	})
}
