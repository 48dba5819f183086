package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

// TestHubShutdownDrains: Shutdown closes every socket with 1001, after writing what was queued
// for it; afterwards subscribing is refused with 503.
func TestHubShutdownDrains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.MaxMessageBytes = 128 << 10 }, smallSendBuffers)
	busy := e.dialWith(subQuery("busy", -1), "busy", smallReadBufferDialer())
	idle := e.dial("idle", -1)
	e.waitConns("busy", 1)
	e.waitConns("idle", 1)

	// busy does not read: its small socket buffers fill, then frames wait in its send queue.
	// Publish until some do.
	pad := strings.Repeat("y", 60<<10)
	var want []uint64
	for i := 0; len(want) < 300; i++ {
		resp, err := e.publishE(fmt.Appendf(nil, `{"userId":"busy","data":{"i":%d,"pad":%q}}`, i, pad))
		if err != nil {
			t.Fatal(err)
		}
		id, err := parseID(resp.Results[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if metricValue(t, e, "pushlane_frames_queued") >= 5 {
			break
		}
	}
	if metricValue(t, e, "pushlane_frames_queued") < 5 {
		t.Fatalf("nothing waits in the send queue after %d messages of 60 KB", len(want))
	}
	t.Logf("%d messages published, some of them queued", len(want))

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- e.hub.Shutdown(ctx)
	}()
	idle.expectClose(websocket.CloseGoingAway)
	requireIncreasingExactly(t, "queued messages before 1001", busy.readIDs(len(want)), want)
	busy.expectClose(websocket.CloseGoingAway)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not return")
	}
	if n := len(e.hub.Users()); n != 0 {
		t.Fatalf("%d users still registered after Shutdown", n)
	}
	requireRefused(t, e, "userId=late", http.StatusServiceUnavailable)
}

// TestDrainingRefusesSubscribers: after SetDraining every subscribe attempt is a 503 JSON error,
// while connections that exist keep working.
func TestDrainingRefusesSubscribers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	c := e.dial("before", -1)
	e.waitConns("before", 1)
	e.handlers.SetDraining()
	for i := range 3 {
		requireRefused(t, e, fmt.Sprintf("userId=after-%d", i), http.StatusServiceUnavailable)
		requireRefused(t, e, "userId=before&since=0", http.StatusServiceUnavailable)
	}
	id := e.publish("before", "still served")
	if f := c.readMessage(); f.id() != id {
		t.Fatalf("got %s, want %d", f.raw, id)
	}
}

// requireRefused dials and requires a refused handshake with status and a JSON error body.
func requireRefused(t *testing.T, e *env, rawQuery string, status int) {
	t.Helper()
	conn, resp, err := e.dialE(rawQuery, nil)
	if err == nil {
		conn.Close()
		t.Fatalf("subscribe %q was accepted, want %d", rawQuery, status)
	}
	if resp == nil {
		t.Fatalf("subscribe %q: no HTTP answer: %v", rawQuery, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("subscribe %q: status %d, want %d", rawQuery, resp.StatusCode, status)
	}
	b := make([]byte, 1024)
	n, _ := resp.Body.Read(b)
	if err := errorBodyOK(b[:n], resp.Header); err != nil {
		t.Fatalf("subscribe %q: %v", rawQuery, err)
	}
}
