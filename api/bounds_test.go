package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// These tests measure the memory the server holds for connections whose clients do not keep up,
// against API.md "Bounds": per connection, websocket.sendQueueBytes plus one message plus a
// small constant, whatever the client does, and a broadcast's data held once. They measure the
// heap of this process (server and test clients share it; the clients hold little: they do not
// read). They do not run in parallel with other tests, which would add their own heap.

// boundSlack is the "small constant" per connection: the write loop's batch (maxWriteBatch, or
// one message when it is larger), a backlog page's encoding, gorilla's write buffer while a frame
// is encoded, the connection's own structures. About 200 KB; generous.
const boundSlack = 256 << 10

// heapNow is the live heap after a full collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// peakHeap samples the live heap every 50 ms for window and returns the highest value. It is a
// measurement over a fixed window (the writers block on full sockets within it), not a wait.
func peakHeap(window time.Duration) uint64 {
	peak := uint64(0)
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, heapNow())
	}
	return peak
}

func growth(before, after uint64) uint64 {
	if after < before {
		return 0
	}
	return after - before
}

// dialIdle opens n connections (users prefix-0 .. prefix-(n-1), or all the same user when
// sameUser) that never read, with small socket buffers, so the server's writes block within a
// few tens of KB.
func dialIdle(t *testing.T, e *env, prefix string, n int, rawSince string, sameUser bool) []*websocket.Conn {
	t.Helper()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		user := fmt.Sprintf("%s-%d", prefix, i)
		if sameUser {
			user = prefix
		}
		q := "userId=" + user + rawSince
		conn, resp, err := e.dialE(q, smallReadBufferDialer())
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial %s: %v (%d)", q, err, status)
		}
		t.Cleanup(func() { conn.Close() })
		conns[i] = conn
	}
	return conns
}

// TestNeverReadingClientsHeldToTheByteBound: live messages of 60 KB keep coming to connections
// that never read. Each connection may hold sendQueueBytes of frames; beyond that it is closed
// with 4001 (its messages stay stored), so what the server holds stays within the bound.
// (Before the byte bound, 40 messages of 60 KB stayed queued per connection: 2.4 MB each.)
func TestNeverReadingClientsHeldToTheByteBound(t *testing.T) {
	const users, messages, size = 30, 40, 60 << 10
	e := newEnv(t, "sqlite", func(c *config.Config) {
		c.WebSocket.MaxConnsPerUser = 0
		// API.md: a client that reads again within writeWait of its overflow gets the 4001 close
		// frame. This one reads once every publish was answered, which may take a while.
		c.WebSocket.WriteWait = time.Minute
	}, smallSendBuffers)
	conns := dialIdle(t, e, "idle", users, "", false)
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("idle-%d", i)
	}
	e.waitConns(ids[users-1], 1)
	before := heapNow()
	data := strings.Repeat("m", size)
	for range messages {
		body, _ := json.Marshal(map[string]any{"userIds": ids, "data": data})
		if status, b := e.request(http.MethodPost, "/pushNews", body); status != http.StatusOK {
			t.Fatalf("publish: %d %s", status, b)
		}
	}
	held := growth(before, peakHeap(time.Second))
	bound := uint64(users) * uint64(e.cfg.WebSocket.SendQueueBytes+e.cfg.WebSocket.MaxMessageBytes+boundSlack)
	t.Logf("heap held for %d never-reading connections after %d messages of %d KB: %.1f MB (%.0f KB per connection; bound %.0f KB)",
		users, messages, size>>10, float64(held)/(1<<20), float64(held)/users/1024, float64(bound)/users/1024)
	if held > bound {
		t.Fatalf("the server holds %d bytes for %d connections, over the bound of %d", held, users, bound)
	}
	// Every connection overflowed its byte bound: 4001, and its messages are still stored. The
	// clients read all at once: with such small socket buffers, TCP's zero-window probes back off
	// while a peer does not read, so a connection may take seconds to start moving again.
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := expectCloseE(conn, 4001, 45*time.Second); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := e.dial(ids[0], 0)
	if got := c.readIDs(messages); len(got) != messages {
		t.Fatalf("since=0 after the slow-consumer close: %d messages, want %d (they stay stored)", len(got), messages)
	}
}

// TestSlowBacklogReadersHeldToTheByteBound: connections replay a large stored backlog with
// since=0 and read slowly. A backlog page is bounded by bytes, so each holds about one page
// (before: 200 messages a page whatever their size, 12 MB for 60 KB messages).
func TestSlowBacklogReadersHeldToTheByteBound(t *testing.T) {
	const conns, stored, size = 12, 300, 60 << 10
	e := newEnv(t, "sqlite", func(c *config.Config) { c.WebSocket.MaxConnsPerUser = 0 }, smallSendBuffers)
	data := strings.Repeat("b", size)
	for range stored {
		e.publish("backlog", data)
	}
	before := heapNow()
	cs := dialIdle(t, e, "backlog", conns, "&since=0", true)
	// Each reads 8 KB every 50 ms: slow, but it reads.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc := c.NetConn()
			buf := make([]byte, 8<<10)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				_ = nc.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := nc.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	held := growth(before, peakHeap(2*time.Second))
	close(stop)
	wg.Wait()
	// Nothing is queued live here: a backlog reader holds about a page of data and a chunk of its
	// frames (each up to 64 KB plus one message), and the socket's copy of the chunk.
	bound := uint64(conns) * uint64(4*e.cfg.WebSocket.MaxMessageBytes+boundSlack)
	t.Logf("heap held for %d slow readers of a %d x %d KB backlog: %.1f MB (%.0f KB per connection; bound %.0f KB)",
		conns, stored, size>>10, float64(held)/(1<<20), float64(held)/conns/1024, float64(bound)/conns/1024)
	if held > bound {
		t.Fatalf("the server holds %d bytes for %d slow backlog readers, over the bound of %d", held, conns, bound)
	}
}

// TestBroadcastDataHeldOnce: large broadcasts to many connections that do not read. The data is
// encoded once and shared by every queue; only the per-recipient head and the frame being
// written to each blocked socket are per connection. (Before: a copy of every broadcast per
// recipient, 720 KB per connection here.)
func TestBroadcastDataHeldOnce(t *testing.T) {
	const conns, broadcasts, size = 200, 12, 60 << 10
	e := newEnv(t, "memory", nil, smallSendBuffers)
	dialIdle(t, e, "bc", conns, "", false)
	e.waitConns(fmt.Sprintf("bc-%d", conns-1), 1)
	before := heapNow()
	data := strings.Repeat("c", size)
	body, _ := json.Marshal(map[string]any{"data": data})
	for range broadcasts {
		if status, b := e.request(http.MethodPost, "/broadcast", body); status != http.StatusOK {
			t.Fatalf("broadcast: %d %s", status, b)
		}
	}
	held := growth(before, peakHeap(time.Second))
	// The shared bodies, plus per connection what one blocked write holds.
	bound := uint64(broadcasts*size*2) + uint64(conns)*uint64(2*size+boundSlack/4)
	t.Logf("heap held for %d broadcasts of %d KB to %d non-reading connections: %.1f MB (%.0f KB per connection; a copy per recipient would be %d KB)",
		broadcasts, size>>10, conns, float64(held)/(1<<20), float64(held)/conns/1024, broadcasts*size>>10)
	if held > bound {
		t.Fatalf("the server holds %d bytes, over %d: broadcast data is not shared", held, bound)
	}
}
