package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pushlane/client"
	"pushlane/config"
)

// queries records the query of every subscribe request.
type queries struct {
	mu   sync.Mutex
	seen []string
	// refuse answers subscribe requests with 503 while set.
	refuse bool
}

func (q *queries) hook(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/getPushNews" {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seen = append(q.seen, r.URL.RawQuery)
	if q.refuse {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"test: shutting down"}`))
		return true
	}
	return false
}

func (q *queries) all() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.seen...)
}

func (q *queries) setRefuse(v bool) {
	q.mu.Lock()
	q.refuse = v
	q.mu.Unlock()
}

var fastBackoff = client.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}

// TestSubscribeResumes: when the network drops the connection, the subscription reconnects with
// since = the last id handed out, gets what was published meanwhile, and nothing twice.
func TestSubscribeResumes(t *testing.T) {
	n := newNode(t, nil)
	q := &queries{}
	n.intercept(q.hook)
	c := n.client()
	ctx := t.Context()
	var mu sync.Mutex
	var connects []client.ConnectInfo
	var disconnects []client.DisconnectInfo
	s, err := c.Subscribe(ctx, "ivy", client.SubscribeOptions{
		Backoff:      fastBackoff,
		OnConnect:    func(i client.ConnectInfo) { mu.Lock(); connects = append(connects, i); mu.Unlock() },
		OnDisconnect: func(d client.DisconnectInfo) { mu.Lock(); disconnects = append(disconnects, d); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n.waitConns("ivy", 1)
	first, _ := c.Publish(ctx, "ivy", "one")
	if m := next(t, s); m.ID != first.ID {
		t.Fatalf("got %s, want %s", m.ID, first.ID)
	}

	q.setRefuse(true) // hold the reconnect off until the next message is stored
	n.ln.dropAll()
	waitFor(t, "a refused reconnect", func() bool { return len(q.all()) >= 2 })
	second, _ := c.Publish(ctx, "ivy", "two")
	q.setRefuse(false)
	if m := next(t, s); m.ID != second.ID {
		t.Fatalf("after the reconnect got %s (%s), want %s", m.ID, m.Data, second.ID)
	}
	seen := q.all()
	if strings.Contains(seen[0], "since") {
		t.Errorf("first connect sent %q: no since before any message", seen[0])
	}
	last := seen[len(seen)-1]
	if !strings.Contains(last, "since="+first.ID) {
		t.Errorf("reconnect sent %q, want since=%s", last, first.ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(connects) < 2 || connects[1].Since != first.ID || strings.Contains(connects[0].URL, "?") {
		t.Errorf("OnConnect calls %+v", connects)
	}
	if len(disconnects) < 2 || disconnects[0].Since != first.ID || !errors.Is(disconnects[1].Err, client.ErrUnavailable) {
		t.Errorf("OnDisconnect calls %+v: want the lost connection, then the 503", disconnects)
	}
}

// TestSubscribeSinceOption: Since replays what is stored after it, already-delivered included.
func TestSubscribeSinceOption(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()
	var ids []string
	for _, d := range []string{"a", "b", "c"} {
		r, err := c.Publish(ctx, "jack", d)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	s, err := c.Subscribe(ctx, "jack", client.SubscribeOptions{Since: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, b := next(t, s), next(t, s); a.ID != ids[1] || b.ID != ids[2] {
		t.Errorf("got %s, %s; want %s, %s", a.ID, b.ID, ids[1], ids[2])
	}
	if _, err := c.Subscribe(ctx, "jack", client.SubscribeOptions{Since: "01"}); err == nil {
		t.Error("Since 01: no error")
	}
}

// TestSubscribeEnds: a kick (4000) and refusals that retrying cannot fix end the subscription
// with a typed error; Close ends it with ErrClosed.
func TestSubscribeEnds(t *testing.T) {
	n := newNode(t, func(c *config.Config) { c.Auth.JWTSecret = "0123456789abcdef0123456789abcdef" })
	c := n.client()
	ctx := t.Context()
	token := func(sub string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).
			SignedString([]byte("0123456789abcdef0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wait := func(s *client.Subscription) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		_, err := s.Next(ctx)
		return err
	}

	kicked, _ := c.Subscribe(ctx, "kim", client.SubscribeOptions{Token: token("kim"), Backoff: fastBackoff})
	defer kicked.Close()
	n.waitConns("kim", 1)
	if _, err := c.Kick(ctx, "kim", false); err != nil {
		t.Fatal(err)
	}
	var ce *client.CloseError
	if err := wait(kicked); !errors.As(err, &ce) || ce.Code != client.CloseRemoved {
		t.Errorf("kicked: %v, want a CloseError 4000", err)
	}
	if !errors.As(kicked.Err(), &ce) {
		t.Errorf("Err() = %v after the end", kicked.Err())
	}

	noToken, _ := c.Subscribe(ctx, "kim", client.SubscribeOptions{Backoff: fastBackoff})
	defer noToken.Close()
	if err := wait(noToken); !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("no token: %v, want ErrUnauthorized", err)
	}
	badUser, _ := c.Subscribe(ctx, "not valid", client.SubscribeOptions{Token: token("not valid"), Backoff: fastBackoff})
	defer badUser.Close()
	if err := wait(badUser); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("bad user id: %v, want ErrBadRequest", err)
	}

	// With TokenFunc a 401 is retried with a fresh token.
	var calls int
	var mu sync.Mutex
	refreshed, _ := c.Subscribe(ctx, "lee", client.SubscribeOptions{Backoff: fastBackoff, TokenFunc: func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return token("somebody-else"), nil
		}
		return token("lee"), nil
	}})
	defer refreshed.Close()
	n.waitConns("lee", 1)

	closed, _ := c.Subscribe(ctx, "max", client.SubscribeOptions{Token: token("max")})
	n.waitConns("max", 1)
	closed.Close()
	if err := wait(closed); !errors.Is(err, client.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	n.waitConns("max", 0)
}

// TestSubscribeProtocol2: hello with the epoch, acks that take messages out of the unread
// queue, and resume with the epoch.
func TestSubscribeProtocol2(t *testing.T) {
	n := newNode(t, nil)
	c := n.client()
	ctx := t.Context()
	first, _ := c.Publish(ctx, "nia", "one")
	second, _ := c.Publish(ctx, "nia", "two")
	hello := make(chan client.ConnectInfo, 4)
	s, err := c.Subscribe(ctx, "nia", client.SubscribeOptions{Protocol: 2, OnConnect: func(i client.ConnectInfo) { hello <- i }})
	if err != nil {
		t.Fatal(err)
	}
	info := <-hello
	if !info.Hello || info.Epoch == "" || !info.Recovered {
		t.Errorf("connect info %+v, want a hello with an epoch", info)
	}
	if m := next(t, s); m.ID != first.ID {
		t.Fatalf("got %s, want %s", m.ID, first.ID)
	}
	if err := s.Ack(first.ID); err != nil {
		t.Fatal(err)
	}
	next(t, s) // second, not acknowledged
	waitFor(t, "message one acked", func() bool {
		st, err := c.Status(ctx, "nia", first.ID)
		return err == nil && st.Status == client.StatusAcked
	})
	s.Close()
	// Without since, a new subscription gets the unacknowledged message again.
	again, _ := c.Subscribe(ctx, "nia", client.SubscribeOptions{Protocol: 2, AutoAck: true})
	defer again.Close()
	if m := next(t, again); m.ID != second.ID {
		t.Errorf("after reconnect got %s, want the unacknowledged %s", m.ID, second.ID)
	}
	// A since from another epoch: not recovered, everything replayed.
	other := make(chan client.ConnectInfo, 1)
	resync, _ := c.Subscribe(ctx, "nia", client.SubscribeOptions{Protocol: 2, Since: second.ID, Epoch: "another-epoch", OnConnect: func(i client.ConnectInfo) { other <- i }})
	defer resync.Close()
	if i := <-other; i.Recovered {
		t.Errorf("since from another epoch: %+v, want recovered false", i)
	}
	if m := next(t, resync); m.ID != first.ID {
		t.Errorf("resync replay starts at %s, want %s", m.ID, first.ID)
	}
}
