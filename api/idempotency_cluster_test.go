package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"pushlane/config"
	"pushlane/module/store/redis/redistest"
)

// TestIdempotentPublishAcrossRedisNodes: on a cluster with the redis store and broker, a retry
// with the same Idempotency-Key on another node replays the first answer, and a subscriber on a
// third node receives the message once (the store's atomic step publishes only what it stored).
func TestIdempotentPublishAcrossRedisNodes(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	cluster := func(c *config.Config) {
		c.Store.Driver, c.Broker.Driver = "redis", "redis"
		c.Redis.Addr, c.Redis.KeyPrefix = redistest.Addr(), prefix
	}
	n1, n2, n3 := newSecNode(t, cluster), newSecNode(t, cluster), newSecNode(t, cluster)

	for _, n := range []*secNode{n1, n2, n3} {
		deadline := time.Now().Add(10 * time.Second)
		for { // the broker connects its subscription in the background
			if st, _ := n.send(t, http.MethodGet, "/healthz", "", nil); st == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a node did not become healthy")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	const u = "idem-cluster"
	conn, st := n3.dial(t, url.Values{"userId": {u}}, nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("subscribe: %d", st)
	}
	post := func(n *secNode, key string, body []byte) (int, []byte, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.srv.URL+"/pushNews", bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header.Get("Idempotent-Replayed")
	}
	body := []byte(`{"userId":"idem-cluster","data":"once across nodes"}`)
	status, first, replayed := post(n1, "cluster-key", body)
	if status != http.StatusOK || replayed != "" {
		t.Fatalf("first publish on n1: %d %s (replayed %q)", status, first, replayed)
	}
	status, again, replayed := post(n2, "cluster-key", body)
	if status != http.StatusOK || replayed != "true" || !bytes.Equal(again, first) {
		t.Fatalf("retry on n2: %d %s (replayed %q), want %s replayed", status, again, replayed, first)
	}
	if status, b, _ := post(n2, "", []byte(`{"userId":"idem-cluster","data":"marker"}`)); status != http.StatusOK {
		t.Fatalf("marker: %d %s", status, b)
	}
	for _, want := range []string{`"once across nodes"`, `"marker"`} {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, raw, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !bytes.Contains(raw, []byte(`"data":`+want)) {
			t.Fatalf("frame %s, want data %s (the replay must deliver nothing)", raw, want)
		}
	}
}
