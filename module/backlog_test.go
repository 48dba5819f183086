package module_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

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
