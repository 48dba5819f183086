package api

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric reads one sample from GET /metrics: name with exactly these labels ("" for none).
func (e *env) metric(name, labels string) float64 {
	e.t.Helper()
	status, body := e.request(http.MethodGet, "/metrics", nil)
	if status != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d", status)
	}
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if sample, value, ok := strings.Cut(line, " "); ok && sample == want {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// TestMetricsFollowTraffic: the Prometheus figures an operator watches move with real traffic.
func TestMetricsFollowTraffic(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	live := e.dial("metrics-live", -1)
	e.waitConns("metrics-live", 1)
	if got := e.metric("pushlane_connections", ""); got != 1 {
		t.Fatalf("pushlane_connections = %v, want 1", got)
	}
	if got := e.metric("pushlane_users_online", ""); got != 1 {
		t.Fatalf("pushlane_users_online = %v, want 1", got)
	}
	var liveIDs []uint64
	for i := 0; i < 3; i++ {
		liveIDs = append(liveIDs, e.publish("metrics-live", i))
		live.readMessage()
	}
	for i := 0; i < 2; i++ {
		e.publish("metrics-offline", i)
	}
	if got := e.metric("pushlane_messages_published_total", ""); got != 5 {
		t.Fatalf("published = %v, want 5", got)
	}
	if got := e.metric("pushlane_frames_delivered_total", `kind="live"`); got != 3 {
		t.Fatalf("live deliveries = %v, want 3", got)
	}
	if got := e.metric("pushlane_publish_to_write_seconds_count", ""); got != 3 {
		t.Fatalf("publish-to-write samples = %v, want 3", got)
	}
	if got := e.metric("pushlane_store_seconds_count", `op="append"`); got != 5 {
		t.Fatalf("store append samples = %v, want 5", got)
	}
	if got := e.metric("pushlane_http_requests_total", `method="POST",route="/pushNews",status="200"`); got != 5 {
		t.Fatalf("http requests = %v, want 5", got)
	}

	// The offline user's two messages come from the store on connect.
	late := e.dial("metrics-offline", -1)
	late.readIDs(2)
	waitFor(t, 5*time.Second, "backlog deliveries counted", func() bool {
		return e.metric("pushlane_frames_delivered_total", `kind="backlog"`) == 2
	})

	// A refused publish is counted by route and status, and changes nothing else.
	if status, _ := e.request(http.MethodPost, "/pushNews", []byte(`{"userId":"x"}`)); status != http.StatusBadRequest {
		t.Fatalf("bad publish: %d", status)
	}
	if got := e.metric("pushlane_http_requests_total", `method="POST",route="/pushNews",status="400"`); got != 1 {
		t.Fatalf("400s = %v, want 1", got)
	}
	if got := e.metric("pushlane_messages_published_total", ""); got != 5 {
		t.Fatalf("published after a refused publish = %v, want 5", got)
	}

	// An idempotent retry is counted as a replay and stores nothing; status lookups are counted
	// by what they found.
	body := []byte(`{"userId":"metrics-offline","data":"once"}`)
	for range 2 {
		if status, b, _ := e.publishRaw("", "metrics-key", body); status != http.StatusOK {
			t.Fatalf("idempotent publish: %d %s", status, b)
		}
	}
	if got := e.metric("pushlane_idempotent_replays_total", ""); got != 1 {
		t.Fatalf("replays = %v, want 1", got)
	}
	if got := e.metric("pushlane_messages_published_total", ""); got != 6 {
		t.Fatalf("published after a publish and its replay = %v, want 6", got)
	}
	e.getJSON("/messages/metrics-live/"+strconv.FormatUint(liveIDs[0], 10), http.StatusOK, nil)
	e.getJSON("/messages/metrics-live/"+strconv.FormatUint(liveIDs[2]+1000, 10), http.StatusNotFound, nil)
	if got := e.metric("pushlane_status_lookups_total", `result="not_found"`); got != 1 {
		t.Fatalf("not_found lookups = %v, want 1", got)
	}
	found := 0.0
	for _, r := range []string{"pending", "sent", "acked"} {
		found += e.metric("pushlane_status_lookups_total", `result="`+r+`"`)
	}
	if found != 1 {
		t.Fatalf("lookups that found a message = %v, want 1", found)
	}

	// Connections leave the gauges when they close.
	live.conn.Close()
	late.conn.Close()
	waitFor(t, 5*time.Second, "gauges back to zero", func() bool {
		return e.metric("pushlane_connections", "") == 0 && e.metric("pushlane_users_online", "") == 0
	})
}
