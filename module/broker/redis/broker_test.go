package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
	"pushlane/module/store/memory"
	"pushlane/module/store/redis/redistest"
)

const waitTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testBroker is a broker on its own client (like a separate process) over a hub with a memory
// store.
type testBroker struct {
	*Broker
	rdb *goredis.Client
	hub *module.Hub
}

func newTestBroker(t testing.TB, prefix, node string, opts Options) *testBroker {
	t.Helper()
	o := redistest.Options()
	o.ClientName = strings.ReplaceAll(prefix+node, " ", "_")
	rdb := goredis.NewClient(o)
	store := memory.New(module.StoreOptions{})
	hub := module.NewHub(module.HubConfig{}, store, nil, nil)
	opts.KeyPrefix = prefix
	opts.NodeID = node
	b, err := New(rdb, hub, opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.SetWatcher(b)
	t.Cleanup(func() {
		_ = b.Close()
		hub.Close()
		_ = store.Close()
		_ = rdb.Close()
	})
	waitFor(t, "the broker to connect", func() bool { return b.Ping(context.Background()) == nil })
	return &testBroker{Broker: b, rdb: rdb, hub: hub}
}

// TestWatchConfirmsSubscription: when Watch returns, a PUBLISH to the user's channel already
// reaches this node (Redis counts one receiver), every time.
func TestWatchConfirmsSubscription(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	b := newTestBroker(t, prefix, "n1", Options{})
	keys := rediskeys.New(prefix)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			if err := b.Watch(testCtx(t), user); err != nil {
				errs <- err
				return
			}
			n, err := rdb.Publish(testCtx(t), keys.UserChannel(user), "probe").Result()
			if err != nil || n != 1 {
				errs <- fmt.Errorf("PUBLISH right after Watch(%s) reached %d subscribers (%v), want 1", user, n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWatchCountsReferences: the channel stays subscribed, and presence counts connections,
// until the last Unwatch; then both go.
func TestWatchCountsReferences(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	b := newTestBroker(t, prefix, "n1", Options{})
	keys := rediskeys.New(prefix)
	ctx := testCtx(t)
	numsub := func() int64 {
		m, err := rdb.PubSubNumSub(ctx, keys.UserChannel("u")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m[keys.UserChannel("u")]
	}
	presence := func() string {
		v, _ := rdb.HGet(ctx, keys.Presence("n1"), "u").Result()
		return v
	}
	for range 3 {
		if err := b.Watch(ctx, "u"); err != nil {
			t.Fatal(err)
		}
	}
	if n, p := numsub(), presence(); n != 1 || p != "3" {
		t.Fatalf("after 3 Watch: %d subscribers, presence %q; want 1, 3", n, p)
	}
	b.Unwatch("u")
	b.Unwatch("u")
	waitFor(t, "presence 1", func() bool { return presence() == "1" })
	if n := numsub(); n != 1 {
		t.Fatalf("unsubscribed with one connection left (%d subscribers)", n)
	}
	b.Unwatch("u")
	b.Unwatch("u") // unmatched: ignored
	waitFor(t, "the unsubscribe", func() bool { return numsub() == 0 && presence() == "" })
	// Watch again after the last Unwatch: subscribed again, whatever the order the worker sees.
	for range 20 {
		if err := b.Watch(ctx, "u"); err != nil {
			t.Fatal(err)
		}
		if n := numsub(); n != 1 {
			t.Fatalf("Watch returned with %d subscribers", n)
		}
		b.Unwatch("u")
	}
}

// TestPresenceAcrossNodes: another node sees this node's users as online, in Users and in
// the broadcast count; a node that stops refreshing disappears within the presence ttl; a node
// that closes leaves at once.
func TestPresenceAcrossNodes(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	ttl := 500 * time.Millisecond
	a := newTestBroker(t, prefix, "a", Options{PresenceTTL: ttl})
	b := newTestBroker(t, prefix, "b", Options{PresenceTTL: ttl})
	c := newTestBroker(t, prefix, "c", Options{PresenceTTL: ttl})
	ctx := testCtx(t)
	for _, w := range []struct {
		b    *testBroker
		user string
	}{{a, "x"}, {a, "x"}, {a, "y"}, {b, "y"}} {
		if err := w.b.Watch(ctx, w.user); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"x", "y"} {
		if on, err := c.Online(ctx, user); err != nil || !on {
			t.Fatalf("Online(%s) on c = %v, %v", user, on, err)
		}
	}
	if on, _ := c.Online(ctx, "z"); on {
		t.Fatal("Online(z) = true")
	}
	users, err := c.Users(ctx)
	if err != nil || fmt.Sprint(users) != "[{x 2} {y 2}]" {
		t.Fatalf("Users on c = %v, %v", users, err)
	}
	if n, err := c.presenceTotal(ctx); err != nil || n != 4 {
		t.Fatalf("presence total = %d, %v; want 4", n, err)
	}
	// a dies: its client goes away without cleaning up. Its users vanish within the ttl.
	_ = a.rdb.Close()
	start := time.Now()
	waitFor(t, "a's users to leave presence", func() bool {
		users, err := c.Users(ctx)
		return err == nil && fmt.Sprint(users) == "[{y 1}]"
	})
	if d := time.Since(start); d > ttl+300*time.Millisecond {
		t.Fatalf("a's presence lasted %v after it died, ttl %v", d, ttl)
	}
	// b closes: gone at once.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if users, err := c.Users(ctx); err != nil || len(users) != 0 {
		t.Fatalf("Users after b closed = %v, %v", users, err)
	}
}

// TestReconnect: when Redis drops the Pub/Sub connection, Ping reports it until the broker has
// reconnected by itself, and the subscriptions are back.
func TestReconnect(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	b := newTestBroker(t, prefix, "n1", Options{})
	keys := rediskeys.New(prefix)
	ctx := testCtx(t)
	if err := b.Watch(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		KillPubSub(t, rdb, prefix+"n1")
		waitFor(t, "the broker to reconnect", func() bool {
			n, err := rdb.Publish(ctx, keys.UserChannel("u"), "probe").Result()
			return err == nil && n == 1 && b.Ping(ctx) == nil
		})
		t.Logf("round %d: reconnected", round)
	}
	if err := b.Watch(ctx, "v"); err != nil {
		t.Fatalf("Watch after reconnecting: %v", err)
	}
}

// TestDownAtStart: a broker whose Redis is unreachable reports it (Ping, Watch) and does not
// block Close.
func TestDownAtStart(t *testing.T) {
	o := redistest.Options()
	o.Addr = "127.0.0.1:1"
	o.DialTimeout = 100 * time.Millisecond
	rdb := goredis.NewClient(o)
	defer rdb.Close()
	store := memory.New(module.StoreOptions{})
	defer store.Close()
	hub := module.NewHub(module.HubConfig{}, store, nil, nil)
	defer hub.Close()
	b, err := New(rdb, hub, Options{KeyPrefix: "x:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping = nil without Redis")
	}
	if err := b.Watch(ctx, "u"); err == nil {
		t.Fatal("Watch = nil without Redis")
	}
	b.Unwatch("u") // unmatched: harmless
	done := make(chan struct{})
	go func() { _ = b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked")
	}
}

// KillPubSub drops the Pub/Sub connections of clients named name, as a Redis restart or a
// network cut would.
func KillPubSub(t testing.TB, rdb *goredis.Client, name string) {
	t.Helper()
	ctx := testCtx(t)
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name && (fields["flags"] == "P" || strings.Contains(fields["flags"], "P")) {
			if err := rdb.Do(ctx, "CLIENT", "KILL", "ID", fields["id"]).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no pub/sub connection named %s", name)
	}
}
