package api

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"pushlane/config"
)

// These tests hold the core promise of API.md "Bounds": frames reach each connection in id order
// whatever their sizes (a 60 KB message between two small ones included), live and from the
// store alike, on every store.

// TestBigMessageDoesNotOvertakeSmallOnes is the reproduction of issue 11: six messages to an
// offline user, two of them larger than gorilla's write buffer, replayed with since=0. Frames
// larger than the buffer used to bypass the batch and reach the socket first (2,5,1,3,4,6).
func TestBigMessageDoesNotOvertakeSmallOnes(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		big := strings.Repeat("x", 10<<10)
		data := []string{"s1", big, "s3", "s4", big, "s6"}
		// since=0 (the store), and without since (the unread queue), each for a user of its own:
		// a version 1 connection takes what it was written out of the unread queue.
		for _, since := range []int64{0, -1} {
			user := fmt.Sprintf("u%d", since+1)
			want := make([]uint64, len(data))
			for i, d := range data {
				want[i] = e.publish(user, d)
			}
			c := e.dial(user, since)
			got := make([]uint64, 0, len(data))
			for i := range data {
				f := c.readMessage()
				if f.str("data") != data[i] {
					t.Fatalf("since %d: frame %d carries %.20q..., want %.20q...", since, i, f.str("data"), data[i])
				}
				got = append(got, f.id())
			}
			requireIncreasingExactly(t, fmt.Sprintf("since %d", since), got, want)
			c.conn.Close()
		}
	})
}

// mixedSizes returns n payloads of random sizes up to max bytes of JSON, each starting with its
// index so that a frame shows which message it is.
func mixedSizes(rng *rand.Rand, n, max int) []string {
	out := make([]string, n)
	for i := range out {
		size := 1 + rng.IntN(max-40)
		if rng.IntN(3) == 0 {
			size = 1 + rng.IntN(64) // plenty of small ones between the big ones
		}
		out[i] = fmt.Sprintf("%d:%s", i, strings.Repeat("y", size))
	}
	return out
}

// readAllInOrder reads len(data) messages and requires them to be data, in order, with
// increasing ids equal to want.
func readAllInOrder(t *testing.T, what string, c *client, data []string, want []uint64) {
	t.Helper()
	got := make([]uint64, 0, len(data))
	for i := range data {
		f := c.readMessage()
		if s := f.str("data"); s != data[i] {
			head, _, _ := strings.Cut(s, ":")
			t.Fatalf("%s: frame %d is message %s, want %d (in order)", what, i, head, i)
		}
		got = append(got, f.id())
	}
	requireIncreasingExactly(t, what, got, want)
}

// TestMixedSizesInOrderToSlowReader sends messages of random sizes up to the publish limit to a
// reader that does not read until everything was published (its socket buffers are small, so
// the server's writes block and frames pile up in its queue, then go out in batches): from the
// store with since=0, from the unread queue, and live.
func TestMixedSizesInOrderToSlowReader(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		const n = 60
		e := newEnv(t, driver, func(c *config.Config) {
			c.WebSocket.SendQueueBytes = 8 << 20 // this test is about order, not overflow
		}, smallSendBuffers)
		rng := rand.New(rand.NewPCG(uint64(len(driver)), 11))
		maxData := e.cfg.WebSocket.MaxMessageBytes - 200 // room for the publish body around data

		// Backlog and unread queue: stored while nobody is connected (a user for each, as a
		// version 1 connection takes what it was written out of the unread queue).
		for _, since := range []int64{0, -1} {
			user := fmt.Sprintf("stored%d", since+1)
			stored := mixedSizes(rng, n, maxData)
			ids := make([]uint64, n)
			for i, d := range stored {
				ids[i] = e.publish(user, d)
			}
			c := e.dialWith(subQuery(user, since), user, smallReadBufferDialer())
			readAllInOrder(t, fmt.Sprintf("stored, since %d", since), c, stored, ids)
			c.conn.Close()
		}

		// Live: the reader is connected but reads nothing until every publish was answered.
		c := e.dialWith(subQuery("live", -1), "live", smallReadBufferDialer())
		e.waitConns("live", 1)
		live := mixedSizes(rng, n, maxData)
		liveIDs := make([]uint64, n)
		for i, d := range live {
			liveIDs[i] = e.publish("live", d)
		}
		readAllInOrder(t, "live", c, live, liveIDs)
	})
}

// TestConcurrentMixedSizesInOrder: many publishers race messages of mixed sizes to one user with
// two connections (one reading at once, one only at the end); each connection gets every
// message once, in increasing id order.
func TestConcurrentMixedSizesInOrder(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		const publishers, each = 8, 10
		e := newEnv(t, driver, func(c *config.Config) { c.WebSocket.SendQueueBytes = 16 << 20 }, smallSendBuffers)
		fast := e.dial("race", -1)
		slow := e.dialWith(subQuery("race", -1), "race", smallReadBufferDialer())
		e.waitConns("race", 2)
		col := collect(fast.conn, "race")

		var wg sync.WaitGroup
		var mu sync.Mutex
		var published []uint64
		maxData := e.cfg.WebSocket.MaxMessageBytes - 200
		for p := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(p), 7))
				for _, d := range mixedSizes(rng, each, maxData) {
					id, err := e.publishOne("race", d)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					published = append(published, id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// The stop message ends the collector.
		stop := e.publish("race", json.RawMessage(stopData))
		got := col.wait(t)
		want := sortedIDs(published)
		requireIncreasingExactly(t, "fast reader", got, want)
		var slowGot []uint64
		for {
			f := slow.readMessage()
			if f.id() == stop {
				break
			}
			slowGot = append(slowGot, f.id())
		}
		requireIncreasingExactly(t, "slow reader", slowGot, want)
	})
}

func sortedIDs(ids []uint64) []uint64 {
	out := append([]uint64(nil), ids...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestSinceAboveNewestReplaysAll: a since above the newest id ever assigned to the user cannot
// come from this store (a cursor from another store, or from before a reset); the server then
// replays every stored message of the user, as for since=0, on every store alike.
func TestSinceAboveNewestReplaysAll(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		a := e.publish("ahead", "one")
		b := e.publish("ahead", "two")
		c := e.dial("ahead", int64(b+1000))
		requireIncreasingExactly(t, "since above the newest id", c.readIDs(2), []uint64{a, b})
		// Then live, as usual.
		d := e.publish("ahead", "three")
		if got := c.readMessage().id(); got != d {
			t.Fatalf("live after the replay: got %d, want %d", got, d)
		}
		// A since at the newest id is honoured: nothing is replayed.
		c2 := e.dial("ahead", int64(d))
		e.waitConns("ahead", 2)
		f := e.publish("ahead", "four")
		if got := c2.readMessage().id(); got != f {
			t.Fatalf("since at the newest id: got %d, want only the new message %d", got, f)
		}
	})
}
