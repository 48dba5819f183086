package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"pushlane/config"
	"pushlane/module/store/redis/redistest"
)

// TestHealthzDoesNotShowTheRedisAddress: a node whose Redis is unreachable answers /healthz 503
// without naming the address, to callers without the API key.
func TestHealthzDoesNotShowTheRedisAddress(t *testing.T) {
	redistest.Client(t) // fail or skip like every Redis test
	const dead = "127.0.0.1:1"
	n := newSecNode(t, func(c *config.Config) {
		c.Store.Driver, c.Broker.Driver = "redis", "redis"
		c.Redis.Addr = dead
		c.Auth.APIKeys = []string{secKey}
	})
	health := func(key string) (int, string, map[string]string) {
		t.Helper()
		status, raw := n.send(t, http.MethodGet, "/healthz", key, nil)
		var m map[string]string
		_ = json.Unmarshal(raw, &m)
		return status, string(raw), m
	}
	status, raw, body := health("")
	if status != http.StatusServiceUnavailable || body["store"] != "unavailable" || body["broker"] != "unavailable" || strings.Contains(raw, dead) {
		t.Fatalf("healthz with Redis down: %d %s, want 503 with store and broker unavailable", status, raw)
	}
	status, raw, body = health(secKey)
	if status != http.StatusServiceUnavailable || body["store"] == "unavailable" || body["store"] == "ok" {
		t.Fatalf("healthz with the key: %d %s, want the cause", status, raw)
	}
	st, pub := n.do(t, http.MethodPost, "/pushNews", secKey, map[string]any{"userId": "u", "data": 1})
	if msg, _ := pub["error"].(string); st != http.StatusServiceUnavailable || strings.Contains(msg, dead) {
		t.Fatalf("publish with Redis down: %d %v", st, pub)
	}
}
