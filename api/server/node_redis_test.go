package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/config"
	"pushlane/module/store/redis/redistest"
)

// TestAppRedisWiring: two nodes built by newApp with store.driver and broker.driver redis (as
// the binary builds them) deliver across each other, report healthy, and close cleanly.
func TestAppRedisWiring(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	cfg := config.Default()
	cfg.Store.Driver = "redis"
	cfg.Broker.Driver = "redis"
	cfg.Redis.Addr = redistest.Addr()
	cfg.Redis.KeyPrefix = prefix
	var nodes [2]*httptest.Server
	for i := range nodes {
		a, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("newApp: %v", err)
		}
		srv := httptest.NewServer(a.handler)
		nodes[i] = srv
		t.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a.Close(ctx)
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(srv.URL + "/healthz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d not healthy: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(nodes[0].URL, "http")+"/getPushNews?userId=u1", nil)
	if err != nil {
		t.Fatalf("subscribe on node 1: %v", err)
	}
	defer conn.Close()
	resp, err := http.Post(nodes[1].URL+"/pushNews", "application/json", strings.NewReader(`{"userId":"u1","data":{"hi":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"online":true`) || !strings.Contains(string(body), `"id":"1"`) {
		t.Fatalf("publish on node 2 = %d %s", resp.StatusCode, body)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read on node 1: %v", err)
	}
	var f struct {
		ID   string          `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(msg, &f); err != nil || f.ID != "1" || string(f.Data) != `{"hi":1}` {
		t.Fatalf("frame %s (%v)", msg, err)
	}
}
