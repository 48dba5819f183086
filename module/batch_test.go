//go:build linux

package module_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/module"
)

// Frames that queue up while a connection's socket is busy go out together: these tests count
// the write system calls of the test process (server and clients; the clients only read).

// writeCalls is the number of write system calls this process has made so far.
func writeCalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("counting write calls: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("counting write calls: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("counting write calls: no syscw in /proc/self/io")
	return 0
}

// socketSpy shrinks the send buffer of the sockets it hijacks (so a client that does not read
// blocks the server's writes after a few KB) and can break them as a failing network would.
type socketSpy struct {
	mu    sync.Mutex
	socks []*net.TCPConn
}

func (s *socketSpy) wrap(w http.ResponseWriter) http.ResponseWriter { return spyResponse{w, s} }

// breakWrites shuts down the sending side of every socket: the next write fails.
func (s *socketSpy) breakWrites(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tcp := range s.socks {
		if err := tcp.CloseWrite(); err != nil {
			t.Fatalf("break writes: %v", err)
		}
	}
	s.socks = nil
}

type spyResponse struct {
	http.ResponseWriter
	spy *socketSpy
}

func (w spyResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	tcp := conn.(*net.TCPConn)
	if err := tcp.SetWriteBuffer(4096); err != nil {
		return nil, nil, err
	}
	w.spy.mu.Lock()
	w.spy.socks = append(w.spy.socks, tcp)
	w.spy.mu.Unlock()
	return conn, rw, nil
}

// dialSmall dials with a small receive buffer, so that a client that does not read stops the
// server's writes after a few KB.
func dialSmall(t *testing.T, hh *handshakeHub, user string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}).DialContext}
	conn, _, err := d.Dial(hh.url+user, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// slowSubscriber connects user to a hub with the given send queue through small socket buffers
// on both sides, and waits until the connection is registered.
func slowSubscriber(t *testing.T, user string, sendQueue int) (*handshakeHub, *socketSpy, *websocket.Conn) {
	t.Helper()
	spy := &socketSpy{}
	hh := newHandshakeHubWrapped(t, module.HubConfig{SendQueue: sendQueue}, func(*module.Hub, string) {}, spy.wrap)
	conn := dialSmall(t, hh, user)
	waitFor(t, "registered", 5*time.Second, func() bool { return registered(hh.hub) == 1 })
	return hh, spy, conn
}

func TestQueuedBroadcastsShareWrites(t *testing.T) {
	const frames = 1000
	hh, _, conn := slowSubscriber(t, "slow", 2*frames)

	// The client reads nothing yet: after a few KB the writer blocks and the rest queue up.
	before := writeCalls(t)
	pad := strings.Repeat("x", 100)
	for i := 0; i < frames; i++ {
		hh.hub.Broadcast(json.RawMessage(fmt.Sprintf(`"%d %s"`, i, pad)), time.Now())
	}
	for i := 0; i < frames; i++ {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := fmt.Sprintf(`"data":"%d `, i); !strings.Contains(string(b), want) {
			t.Fatalf("frame %d is %s, want broadcast %d (in order)", i, b, i)
		}
	}
	// One write per frame without batching; a batch holds up to 32 KB (about 200 of these).
	if writes := writeCalls(t) - before; writes > frames/10 {
		t.Fatalf("%d writes for %d queued frames, want them batched (at most %d)", writes, frames, frames/10)
	}
}

func TestBacklogSharesWrites(t *testing.T) {
	const stored = 500
	hh := newHandshakeHub(t, func(*module.Hub, string) {})
	drafts := make([]module.Draft, stored)
	for i := range drafts {
		drafts[i] = module.Draft{UserID: "back", Data: json.RawMessage(fmt.Sprint(i)), TTL: time.Hour}
	}
	if _, err := hh.store.Append(context.Background(), drafts); err != nil {
		t.Fatal(err)
	}
	before := writeCalls(t)
	conn := hh.dial(t, "back")
	for i := 0; i < stored; i++ {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := fmt.Sprintf(`"data":%d,`, i); !strings.Contains(string(b), want) {
			t.Fatalf("message %d is %s, want data %d (in order)", i, b, i)
		}
	}
	// The client's request, the 101 answer, then each backlog page of 200 in one write (a page
	// is under 32 KB): 5, or a few more when the kernel takes a page in two. One write per
	// message would be 502.
	if writes := writeCalls(t) - before; writes > stored/20 {
		t.Fatalf("%d writes for the handshake and a backlog of %d, want about one per page", writes, stored)
	}
}

func TestBatchThatCannotBeWrittenStaysOwed(t *testing.T) {
	const published = 300
	hh, spy, conn := slowSubscriber(t, "cut", 2*published)

	// The writer blocks on the full socket with the rest queued behind it; then the socket breaks.
	pad := strings.Repeat("y", 200)
	for i := 1; i <= published; i++ {
		draft := module.Draft{UserID: "cut", Data: json.RawMessage(fmt.Sprintf(`"%d %s"`, i, pad)), TTL: time.Hour}
		if _, err := hh.store.Append(context.Background(), []module.Draft{draft}); err != nil {
			t.Fatal(err)
		}
	}
	spy.breakWrites(t)
	got := map[string]bool{}
	collect := func(c *websocket.Conn) {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f struct{ Data string }
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatalf("frame %s: %v", b, err)
			}
			got[strings.Fields(f.Data)[0]] = true
		}
	}
	collect(conn)
	firstTime := len(got)
	waitFor(t, "broken connection unregistered", 5*time.Second, func() bool { return registered(hh.hub) == 0 })

	// Reconnecting without since brings every message the broken socket did not carry.
	again := hh.dial(t, "cut")
	_ = again.SetReadDeadline(time.Now().Add(2 * time.Second))
	collect(again)
	for i := 1; i <= published; i++ {
		if !got[fmt.Sprint(i)] {
			t.Fatalf("message %d never arrived (%d before the break, %d in all)", i, firstTime, len(got))
		}
	}
	if firstTime == published {
		t.Fatalf("all %d messages arrived before the break: the test did not break a batch", published)
	}
}

// A write loop woken by a broadcast holds it for HubConfig.BroadcastHold, so that broadcasts
// published a few milliseconds apart (each an HTTP request) reach a reading client in one write
// instead of one write each.
func TestBroadcastHoldSharesWrites(t *testing.T) {
	const frames = 20
	for _, tc := range []struct {
		name string
		hold time.Duration
		ok   func(writes int64) bool
		want string
	}{
		// The broadcasts are published within about 60 ms: one write carries them all (two at
		// most, should the hold end while they are being queued).
		{"held", time.Second, func(w int64) bool { return w <= 2 }, "at most 2"},
		// Without the hold the loop writes each as soon as it wakes: this case shows the test
		// can tell the two apart.
		{"not held", -1, func(w int64) bool { return w >= frames/4 }, "one per broadcast or so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var writes atomic.Int64
			hh := newHandshakeHubWrapped(t, module.HubConfig{BroadcastHold: tc.hold}, func(*module.Hub, string) {},
				func(w http.ResponseWriter) http.ResponseWriter { return countingResponse{w, &writes} })
			conn, _, err := websocket.DefaultDialer.Dial(hh.url+"reader", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			waitFor(t, "registered", 5*time.Second, func() bool { return registered(hh.hub) == 1 })
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))

			before := writes.Load()
			for i := 0; i < frames; i++ {
				hh.hub.Broadcast(json.RawMessage(strconv.Itoa(i)), time.Now())
				time.Sleep(3 * time.Millisecond) // a publisher's pace, not a wait for a condition
			}
			for i := 0; i < frames; i++ {
				_, b, err := conn.ReadMessage()
				if err != nil {
					t.Fatalf("broadcast %d: %v", i, err)
				}
				if want := fmt.Sprintf(`"data":%d,`, i); !strings.Contains(string(b), want) {
					t.Fatalf("frame %d is %s, want broadcast %d (in order)", i, b, i)
				}
			}
			if writes := writes.Load() - before; !tc.ok(writes) {
				t.Fatalf("%d socket writes for %d broadcasts published 3 ms apart, want %s", writes, frames, tc.want)
			}
		})
	}
}

// countingResponse hands out hijacked connections that count their writes: one per system call
// the server's side of the socket makes.
type countingResponse struct {
	http.ResponseWriter
	writes *atomic.Int64
}

func (w countingResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	return countingConn{conn, w.writes}, rw, err
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
