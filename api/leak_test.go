package api

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestNoGoroutinesLeftAfterClientsLeave connects 50 clients, lets them leave in every way (close
// frame, TCP cut, server kick) and waits until the goroutine count is back near where it was.
// Not parallel: it counts every goroutine of the process. TestMain's goleak check covers the
// rest (listener, hub, store) once everything is torn down.
func TestNoGoroutinesLeftAfterClientsLeave(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	// Settle what the node itself runs (listener, heartbeat, store writer, idle HTTP conns).
	e.getJSON("/healthz", 200, nil)
	baseline := runtime.NumGoroutine()

	const clients = 50
	conns := make([]*websocket.Conn, 0, clients)
	for i := range clients {
		c := e.dial(fmt.Sprintf("leak-%d", i%10), 0)
		conns = append(conns, c.conn)
	}
	waitFor(t, waitTimeout, "50 registered connections", func() bool {
		n := 0
		for _, u := range e.hub.Users() {
			n += u.Connections
		}
		return n == clients
	})
	for i := range 10 {
		e.publish(fmt.Sprintf("leak-%d", i), i) // writers start and stop again
	}
	during := runtime.NumGoroutine()
	if during < baseline+clients/2 {
		t.Fatalf("%d goroutines with %d clients, baseline %d: the count does not see the clients", during, clients, baseline)
	}

	for i, conn := range conns {
		switch i % 3 {
		case 0:
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			conn.Close()
		case 1:
			conn.Close()
		}
	}
	// The rest (i%3 == 2) are closed by the server.
	for i := range 10 {
		e.request("DELETE", fmt.Sprintf("/deleteClient/leak-%d", i), nil)
	}
	for i, conn := range conns {
		if i%3 == 2 {
			_ = expectCloseE(conn, 4000, readTimeout) // read the close frame so the close completes
			conn.Close()
		}
	}
	waitFor(t, waitTimeout, "every client to leave", func() bool { return len(e.hub.Users()) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.hub.WaitIdle(ctx); err != nil {
		t.Fatalf("client goroutines still running: %v", err)
	}
	const slack = 2
	var now int
	if err := poll(waitTimeout, func() bool {
		now = runtime.NumGoroutine()
		return now <= baseline+slack
	}); err != nil {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after the clients left, baseline %d (with clients %d):\n%s",
			now, baseline, during, buf[:runtime.Stack(buf, true)])
	}
}
