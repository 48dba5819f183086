package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pushlane/client"
	"pushlane/config"
)

func TestPublishAndDeliver(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()

	res, err := c.Publish(ctx, "alice", map[string]any{"title": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if res.UserID != "alice" || res.ID == "" || res.Online || res.Replayed {
		t.Errorf("result %+v", res)
	}
	many, err := c.PublishMany(ctx, []string{"alice", "bob", "alice"}, json.RawMessage(`["raw",1]`), client.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 2 || many[0].UserID != "alice" || many[1].UserID != "bob" {
		t.Fatalf("PublishMany results %+v, want one per distinct user", many)
	}

	// alice's unread queue holds both, in order, with the data as published.
	s, err := c.Subscribe(ctx, "alice", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m1, m2 := next(t, s), next(t, s)
	if m1.ID != res.ID || m2.ID != many[0].ID {
		t.Errorf("ids %s, %s; want %s, %s", m1.ID, m2.ID, res.ID, many[0].ID)
	}
	sameJSON(t, m1.Data, `{"title":"hi"}`)
	sameJSON(t, m2.Data, `["raw",1]`)
	if m1.UserID != "alice" || m1.CreatedAt.IsZero() || len(m1.Raw) == 0 {
		t.Errorf("message %+v", m1)
	}
	n.waitConns("alice", 1)

	// Live now, and online says so.
	live, err := c.Publish(ctx, "alice", "live")
	if err != nil || !live.Online {
		t.Fatalf("live publish %+v, %v", live, err)
	}
	if m := next(t, s); m.ID != live.ID {
		t.Errorf("live id %s, want %s", m.ID, live.ID)
	}
	if s.LastID() != live.ID {
		t.Errorf("LastID %q, want %q", s.LastID(), live.ID)
	}

	// A broadcast reaches the connection with no id.
	conns, err := c.Broadcast(ctx, map[string]string{"notice": "maintenance"})
	if err != nil || conns != 1 {
		t.Fatalf("Broadcast = %d, %v; want 1 connection", conns, err)
	}
	if m := next(t, s); !m.Broadcast || m.ID != "" || m.UserID != "alice" {
		t.Errorf("broadcast frame %+v", m)
	}
}

// TestTypedErrors: each documented status the server can be made to answer comes back as an
// *Error with the server's reason, matching its sentinel.
func TestTypedErrors(t *testing.T) {
	n := newNode(t, func(c *config.Config) {
		c.Auth.APIKeys = []string{"right-key"}
		c.WebSocket.MaxMessageBytes = 1024
	})
	ctx := t.Context()
	good := n.client(client.WithAPIKey("right-key"))
	wrong := n.client(client.WithAPIKey("wrong-key"))

	cases := []struct {
		name     string
		call     func() error
		sentinel error
		status   int
		reason   string
	}{
		{"400 bad user id", func() error { _, err := good.Publish(ctx, "bad user", "x"); return err }, client.ErrBadRequest, 400, "userId"},
		{"401 wrong key", func() error { _, err := wrong.Publish(ctx, "alice", "x"); return err }, client.ErrUnauthorized, 401, ""},
		{"413 too large", func() error { _, err := good.Publish(ctx, "alice", strings.Repeat("x", 2000)); return err }, client.ErrTooLarge, 413, ""},
		{"404 kick of nobody", func() error { _, err := good.Kick(ctx, "nobody", false); return err }, client.ErrNotFound, 404, ""},
		{"404 unknown user", func() error { _, err := good.Client(ctx, "nobody"); return err }, client.ErrNotFound, 404, ""},
		{"400 bad limit", func() error { _, err := good.Clients(ctx, client.ClientsQuery{Limit: -5}); return err }, nil, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.sentinel == nil {
				if err != nil {
					t.Fatalf("err %v, want none (a negative limit other than OnlyTotal is not sent)", err)
				}
				return
			}
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("err %v, want one matching %v", err, tc.sentinel)
			}
			var e *client.Error
			if !errors.As(err, &e) || e.StatusCode != tc.status || e.Message == "" || e.Message == "(empty body)" {
				t.Fatalf("err %#v: want an *Error with status %d and the server's reason", err, tc.status)
			}
			if !strings.Contains(e.Message, tc.reason) {
				t.Errorf("reason %q does not mention %q", e.Message, tc.reason)
			}
			for _, other := range []error{client.ErrConflict, client.ErrUnavailable, client.ErrForbidden} {
				if errors.Is(err, other) {
					t.Errorf("err %v also matches %v", err, other)
				}
			}
		})
	}
	// 429: a second connection over websocket.maxConnsPerUser.
	limited := newNode(t, func(c *config.Config) { c.WebSocket.MaxConnsPerUser = 1 })
	lc := limited.client()
	s1, _ := lc.Subscribe(ctx, "carol", client.SubscribeOptions{})
	defer s1.Close()
	limited.waitConns("carol", 1)
	refused := make(chan client.DisconnectInfo, 1)
	s2, _ := lc.Subscribe(ctx, "carol", client.SubscribeOptions{
		Backoff: client.Backoff{Min: time.Hour, Max: time.Hour},
		OnDisconnect: func(d client.DisconnectInfo) {
			select {
			case refused <- d:
			default:
			}
		},
	})
	defer s2.Close()
	select {
	case d := <-refused:
		// Not final: a connection may free up, so the subscription retries.
		if !errors.Is(d.Err, client.ErrTooManyRequests) || d.RetryIn < 30*time.Minute {
			t.Errorf("refused subscribe: %+v, want ErrTooManyRequests and a retry", d)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no OnDisconnect for the refused connection")
	}
}

// flaky answers the first `fail` publishes with 503 (or cuts the connection), records every
// Idempotency-Key it sees, then lets requests through to the node.
type flaky struct {
	mu   sync.Mutex
	keys []string
	fail int
	cut  bool
}

func (f *flaky) hook(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/pushNews" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	if f.fail == 0 {
		return false
	}
	f.fail--
	if f.cut {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"error":"test: store unavailable"}`))
	return true
}

// TestPublishRetriesWithTheSameKey: after 503s and cut connections the publish is sent again
// with the same Idempotency-Key, and stored once.
func TestPublishRetriesWithTheSameKey(t *testing.T) {
	for _, cut := range []bool{false, true} {
		name := "503"
		if cut {
			name = "connection cut"
		}
		t.Run(name, func(t *testing.T) {
			n := newNode(t, nil)
			f := &flaky{fail: 2, cut: cut}
			n.intercept(f.hook)
			c := n.client(client.WithRetries(4, client.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}))
			res, err := c.Publish(t.Context(), "dave", "once")
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			keys := append([]string(nil), f.keys...)
			f.mu.Unlock()
			if len(keys) != 3 {
				t.Fatalf("%d attempts, want 3", len(keys))
			}
			if len(keys[0]) != 32 || keys[1] != keys[0] || keys[2] != keys[0] {
				t.Errorf("Idempotency-Keys %q: want one generated key, reused by every retry", keys)
			}
			page, err := c.Client(t.Context(), "dave")
			if err != nil || page.Pending != 1 {
				t.Errorf("dave's pending %d (%v), want the message stored once", page.Pending, err)
			}
			_ = res
			// A second publish gets a key of its own.
			if _, err := c.Publish(t.Context(), "dave", "twice"); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if last := f.keys[len(f.keys)-1]; last == keys[0] {
				t.Errorf("the next publish reused the key %q", last)
			}
		})
	}
}

// TestPublishGivesUp: retries are bounded; the last error is returned, typed.
func TestPublishGivesUp(t *testing.T) {
	n := newNode(t, nil)
	f := &flaky{fail: 100}
	n.intercept(f.hook)
	c := n.client(client.WithRetries(3, client.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}))
	_, err := c.Publish(t.Context(), "erin", "never", client.WithIdempotencyKey("my-key-1"))
	var e *client.Error
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &e) || e.Message != "test: store unavailable" {
		t.Fatalf("err %v, want the 503 with the server's reason", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.keys) != 3 || f.keys[0] != "my-key-1" || f.keys[2] != "my-key-1" {
		t.Errorf("attempts with keys %q, want 3 with my-key-1", f.keys)
	}
}

// TestPublishStopsWithContext: a cancelled context ends the retries at once.
func TestPublishStopsWithContext(t *testing.T) {
	n := newNode(t, nil)
	n.intercept((&flaky{fail: 100}).hook)
	c := n.client(client.WithRetries(100, client.Backoff{Min: time.Hour, Max: time.Hour}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := c.Publish(ctx, "frank", "x"); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Publish did not return after cancel")
	}
}

// TestBroadcastIsNotRetried: a broadcast could be delivered twice, so a 503 is returned as is.
func TestBroadcastIsNotRetried(t *testing.T) {
	n := newNode(t, nil)
	var calls int
	var mu sync.Mutex
	n.intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/broadcast" {
			return false
		}
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"test: unavailable"}`))
		return true
	})
	c := n.client(client.WithRetries(5, client.Backoff{Min: time.Millisecond, Max: time.Millisecond}))
	if _, err := c.Broadcast(t.Context(), "x"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("%d attempts, want 1", calls)
	}
}

func TestOperations(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()
	for _, u := range []string{"u-b", "u-a", "u-c"} {
		s, err := c.Subscribe(ctx, u, client.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n.waitConns(u, 1)
	}
	page, err := c.Clients(ctx, client.ClientsQuery{Limit: 2, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 3 || len(page.Users) != 2 || page.Users[0].UserID != "u-b" || page.Users[1].UserID != "u-c" || page.Users[0].Connections != 1 {
		t.Errorf("page %+v, want u-b and u-c of 3", page)
	}
	total, err := c.Clients(ctx, client.ClientsQuery{Limit: client.OnlyTotal})
	if err != nil || total.Total != 3 || len(total.Users) != 0 {
		t.Errorf("OnlyTotal: %+v, %v", total, err)
	}
	if _, err := c.Publish(ctx, "u-a", "kept"); err != nil {
		t.Fatal(err)
	}
	info, err := c.Client(ctx, "u-a")
	if err != nil || info.UserID != "u-a" || len(info.Connections) != 1 || info.Connections[0].ConnectedAt.IsZero() {
		t.Fatalf("Client: %+v, %v", info, err)
	}
	kicked, err := c.Kick(ctx, "u-a", true)
	if err != nil || kicked.Closed != 1 || kicked.Purged != 1 || kicked.UserID != "u-a" {
		t.Errorf("Kick: %+v, %v; want 1 closed, 1 purged", kicked, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || h.Store != "ok" {
		t.Errorf("Health: %+v, %v", h, err)
	}
}

// TestMessageStatus: Status and Messages against GET /messages (API.md "Message status").
func TestMessageStatus(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()
	res, err := c.Publish(ctx, "gina", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, "gina", res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != client.StatusPending || st.ID != res.ID || st.SentAt != nil || st.ExpiresAt.Before(st.CreatedAt) {
		t.Errorf("status %+v, want pending", st)
	}
	sameJSON(t, st.Data, `{"n":1}`)
	s, _ := c.Subscribe(ctx, "gina", client.SubscribeOptions{})
	defer s.Close()
	next(t, s)
	waitFor(t, "status sent", func() bool {
		st, err := c.Status(ctx, "gina", res.ID)
		return err == nil && st.Status == client.StatusSent && st.SentAt != nil
	})
	page, err := c.Messages(ctx, "gina", "0", 10)
	if err != nil || len(page.Messages) != 1 || page.Epoch == "" {
		t.Errorf("Messages: %+v, %v", page, err)
	}
	if _, err := c.Status(ctx, "gina", "999999"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	if _, err := c.Status(ctx, "gina", "007"); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("bad id: %v, want ErrBadRequest", err)
	}
}

// TestIdempotentReplay: the server answers a repeated key with the first answer (replayed), and
// a different body under the same key with 422.
func TestIdempotentReplay(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()
	first, err := c.Publish(ctx, "hank", "x", client.WithIdempotencyKey("order-42"))
	if err != nil || first.Replayed {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := c.Publish(ctx, "hank", "x", client.WithIdempotencyKey("order-42"))
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Fatalf("again: %+v, %v; want the first id, replayed", again, err)
	}
	_, err = c.Publish(ctx, "hank", "other", client.WithIdempotencyKey("order-42"))
	if !errors.Is(err, client.ErrUnprocessable) {
		t.Errorf("another body under the key: %v, want ErrUnprocessable", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://", "::"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q): no error", u)
		}
	}
	c, err := client.New("wss://push.example.com/prefix/")
	if err != nil || c.BaseURL() != "https://push.example.com/prefix" {
		t.Errorf("New(wss://...): %v, %v", c, err)
	}
}
