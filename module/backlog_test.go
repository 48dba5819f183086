package module_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/module"
)

// TestBacklogPageCutByBytesIsNotTheEnd: stored messages may be larger than this node's
// websocket.maxMessageBytes (the limit was lowered after they were stored, or another node of the
// cluster allows more). A backlog page cut by its byte bound must not be taken for the last one.
func TestBacklogPageCutByBytesIsNotTheEnd(t *testing.T) {
	hh := newHandshakeHubWith(t, module.HubConfig{MaxMessageBytes: 16 << 10}, func(*module.Hub, string) {})
	sizes := []int{10 << 10, 60 << 10, 60 << 10, 90 << 10, 10}
	for _, n := range sizes {
		data, _ := json.Marshal(strings.Repeat("x", n))
		if _, err := hh.store.Append(context.Background(), []module.Draft{{UserID: "big", Data: data, TTL: time.Hour}}); err != nil {
			t.Fatal(err)
		}
	}
	conn := hh.dial(t, "big")
	for i := range sizes {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := conn.ReadMessage(); err != nil {
			t.Fatalf("message %d of %d: %v", i+1, len(sizes), err)
		}
	}
}

// TestBacklogReadFailureCloses1013: when the store fails while a connection's backlog is being
// read, the connection is closed with 1013 (try again later) and nothing else is written to it:
// a live message after a backlog that could not be sent would hide the gap from a client that
// resumes with the greatest id it saw.
func TestBacklogReadFailureCloses1013(t *testing.T) {
	var hh *handshakeHub
	hh = newHandshakeHub(t, func(*module.Hub, string) {
		// The connection is registered and owes the stored message; the store goes away before
		// its writer reads it.
		_ = hh.store.Close()
	})
	if _, err := hh.store.Append(context.Background(), []module.Draft{{UserID: "gone", Data: json.RawMessage(`1`), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	conn := hh.dial(t, "gone")
	_, b, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != module.CloseTryAgainLater {
		t.Fatalf("got %s, %v; want close 1013 and no message", b, err)
	}
}
