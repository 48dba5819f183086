package redis

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
	"pushlane/module/store/redis/redistest"
	"pushlane/module/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
		rdb := redistest.Client(t)
		return openT(t, rdb, redistest.Prefix(t, rdb), opts, false)
	})
}

// openT opens a store under prefix and closes it when the test ends.
func openT(t testing.TB, rdb *goredis.Client, prefix string, opts module.StoreOptions, publish bool) *Store {
	t.Helper()
	s, err := New(rdb, opts, Options{KeyPrefix: prefix, PublishLive: publish})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func draft(user, data string) module.Draft {
	return module.Draft{UserID: user, Data: []byte(data), TTL: time.Hour}
}

func mustAppend(t testing.TB, s *Store, drafts ...module.Draft) []module.Message {
	t.Helper()
	msgs, err := s.Append(testCtx(t), drafts)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return msgs
}

func ids(msgs []module.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestIDsAreConsecutivePerUser(t *testing.T) {
	rdb := redistest.Client(t)
	s := openT(t, rdb, redistest.Prefix(t, rdb), module.StoreOptions{}, false)
	var got = map[string][]uint64{}
	for i := range 20 {
		user := []string{"a", "b", "c"}[i%3]
		msgs := mustAppend(t, s, draft(user, fmt.Sprint(i)), draft("d", fmt.Sprint(i)))
		got[user] = append(got[user], msgs[0].ID)
		got["d"] = append(got["d"], msgs[1].ID)
	}
	want := map[string][]uint64{"a": seq(1, 7), "b": seq(1, 7), "c": seq(1, 6), "d": seq(1, 20)}
	for u, w := range want {
		if !slices.Equal(got[u], w) {
			t.Errorf("ids of %s = %v, want %v", u, got[u], w)
		}
		if h, err := s.Head(testCtx(t), u); err != nil || h.LastID != w[len(w)-1] {
			t.Errorf("Head(%s) = %+v, %v; want last id %d", u, h, err, w[len(w)-1])
		}
	}
	if !s.ConsecutiveIDs() {
		t.Fatal("ConsecutiveIDs() = false")
	}
}

// TestCounterGoesWithLastMessage: a user whose last message is purged or expired leaves no key
// behind (its counter included), yet its ids keep increasing: the deleting script raised the
// floor, a new list starts above it, and Head reports the floor meanwhile, so a client's since
// from before stays valid (not above the newest id).
func TestCounterGoesWithLastMessage(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	s := openT(t, rdb, prefix, module.StoreOptions{SweepInterval: 10 * time.Millisecond}, false)
	keys := rediskeys.New(prefix)
	userKeys := func(u string) []string {
		t.Helper()
		found, err := rdb.Keys(testCtx(t), prefix+"*{"+u+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	mustAppend(t, s, draft("u", "1"), draft("u", "2"), draft("u", "3"))
	if n, err := s.Purge(testCtx(t), "u"); err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v; want 3", n, err)
	}
	if k := userKeys("u"); len(k) != 0 {
		t.Fatalf("keys of u after Purge: %v", k)
	}
	if h, err := s.Head(testCtx(t), "u"); err != nil || h.LastID != 3 {
		t.Fatalf("Head after purge = %+v, %v; want last id 3 (the floor)", h, err)
	}
	if got := mustAppend(t, s, draft("u", "4")); got[0].ID != 4 {
		t.Fatalf("id after purge = %d, want 4", got[0].ID)
	}

	// A short-lived message: the sweeper removes it, with the user's key and index entry.
	mustAppend(t, s, module.Draft{UserID: "v", Data: []byte(`"x"`), TTL: 20 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, zerr := rdb.ZScore(testCtx(t), keys.Expiry(), "v").Result()
		if len(userKeys("v")) == 0 && zerr == goredis.Nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired user's keys %v or index entry (%v) are still there", userKeys("v"), zerr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The floor is global: v started above u's purged ids (at 4), and after v's list went, v's
	// next id is above it, and so is that of a user never seen before.
	if got := mustAppend(t, s, draft("v", "2"), draft("new", "1")); got[0].ID != 5 || got[1].ID != 5 {
		t.Fatalf("ids after expiry = %d, and %d for a new user; want 5 and 5 (above the floor 4)", got[0].ID, got[1].ID)
	}
	got, err := s.Backlog(testCtx(t), "v", module.BacklogQuery{})
	if err != nil || !slices.Equal(ids(got), []uint64{5}) {
		t.Fatalf("backlog of v = %v, %v", ids(got), err)
	}
}

// TestPipelinedAppendsKeepOrder: many goroutines append at once; the writer batches them into
// pipelines (observed: fewer pipelines than appends), each user's ids are 1..n with no hole,
// and the commit hook sees every user's messages in id order.
func TestPipelinedAppendsKeepOrder(t *testing.T) {
	rdb := redistest.Client(t)
	var mu sync.Mutex
	var hooked []module.Message
	calls := 0
	opts := module.StoreOptions{MaxPerUser: 100_000, OnCommit: func(msgs []module.Message) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		hooked = append(hooked, msgs...)
	}}
	s := openT(t, rdb, redistest.Prefix(t, rdb), opts, false)
	const goroutines, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				user := fmt.Sprintf("u%d", (g+i)%4)
				if _, err := s.Append(testCtx(t), []module.Draft{draft(user, fmt.Sprintf(`[%d,%d]`, g, i))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != goroutines*each {
		t.Fatalf("hook saw %d messages, want %d", len(hooked), goroutines*each)
	}
	if calls >= goroutines*each {
		t.Errorf("%d hook calls for %d appends: the writer did not batch", calls, goroutines*each)
	}
	t.Logf("%d appends committed in %d pipelines", goroutines*each, calls)
	per := map[string][]uint64{}
	for _, m := range hooked {
		per[m.UserID] = append(per[m.UserID], m.ID)
	}
	for u, got := range per {
		if !slices.Equal(got, seq(1, uint64(len(got)))) {
			t.Fatalf("hook order of %s: %v", u, got)
		}
		stored, err := s.Backlog(testCtx(t), u, module.BacklogQuery{})
		if err != nil || !slices.Equal(ids(stored), got) {
			t.Fatalf("stored ids of %s = %v, %v; hook saw %v", u, ids(stored), err, got)
		}
	}
}

// TestPublishLive: with PublishLive the append script PUBLISHes each message to its user's
// channel, in id order, and the commit hook is not called (the broker delivers).
func TestPublishLive(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	hooked := 0
	var mu sync.Mutex
	s := openT(t, rdb, prefix, module.StoreOptions{OnCommit: func(m []module.Message) {
		mu.Lock()
		hooked += len(m)
		mu.Unlock()
	}}, true)
	keys := rediskeys.New(prefix)
	ps := rdb.Subscribe(testCtx(t), keys.UserChannel("u"), keys.UserChannel("w"))
	defer ps.Close()
	if _, err := ps.Receive(testCtx(t)); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	if _, err := ps.Receive(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	sent := mustAppend(t, s, draft("u", `{"a":1}`), draft("w", `{"a":1}`), draft("u", `"two:with:colons"`))
	for _, want := range []module.Message{sent[0], sent[1], sent[2]} {
		msg, err := ps.ReceiveMessage(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		id, created, data, err := rediskeys.DecodeLive(msg.Payload)
		if err != nil || msg.Channel != keys.UserChannel(want.UserID) || id != want.ID ||
			created != want.CreatedAt.UnixMilli() || data != string(want.Data) {
			t.Fatalf("live %s %q (%d %d %q %v), want %s/%d %s", msg.Channel, msg.Payload, id, created, data, err, want.UserID, want.ID, want.Data)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hooked != 0 {
		t.Fatalf("OnCommit saw %d messages with PublishLive", hooked)
	}
}

// TestUnreachable: with Redis gone every call fails promptly with an error, nothing hangs, and
// Close still returns.
func TestUnreachable(t *testing.T) {
	opt := redistest.Options()
	opt.Addr = "127.0.0.1:1" // nothing listens there
	opt.DialTimeout = 200 * time.Millisecond
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	s, err := New(rdb, module.StoreOptions{}, Options{KeyPrefix: "x:", OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testCtx(t)
	if _, err := s.Append(ctx, []module.Draft{draft("u", "1")}); err == nil {
		t.Fatal("Append succeeded without Redis")
	}
	if err := s.Health(ctx); err == nil {
		t.Fatal("Health succeeded without Redis")
	}
	if _, err := s.Head(ctx, "u"); err == nil {
		t.Fatal("Head succeeded without Redis")
	}
	if _, err := s.Backlog(ctx, "u", module.BacklogQuery{}); err == nil {
		t.Fatal("Backlog succeeded without Redis")
	}
	s.MarkWritten("u", []uint64{1}, true, time.Now())
	if _, err := s.Backlog(ctx, "u", module.BacklogQuery{Pending: true}); err == nil {
		t.Fatal("pending Backlog succeeded without Redis")
	}
}

// TestScriptCacheFlushed: after SCRIPT FLUSH (as after a Redis restart) appends and marks load
// the scripts again and go on.
func TestScriptCacheFlushed(t *testing.T) {
	rdb := redistest.Client(t)
	s := openT(t, rdb, redistest.Prefix(t, rdb), module.StoreOptions{}, false)
	a := mustAppend(t, s, draft("u", "1"))
	if err := rdb.ScriptFlush(testCtx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	s.MarkWritten("u", ids(a), true, time.Now())
	b := mustAppend(t, s, draft("u", "2"))
	if b[0].ID != 2 {
		t.Fatalf("id after flush = %d", b[0].ID)
	}
	got, err := s.Backlog(testCtx(t), "u", module.BacklogQuery{Pending: true, Since: 2})
	if err != nil || !slices.Equal(ids(got), []uint64{2}) {
		t.Fatalf("pending after flush = %v, %v; want [2]", ids(got), err)
	}
}

// BenchmarkAppendParallel: concurrent single-message appends (as concurrent publishes are),
// grouped by the writer into pipelines.
func BenchmarkAppendParallel(b *testing.B) {
	rdb := redistest.Client(b)
	s := openT(b, rdb, redistest.Prefix(b, rdb), module.StoreOptions{MaxPerUser: 1000}, false)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := fmt.Sprintf("u%d", n.Add(1))
		for pb.Next() {
			if _, err := s.Append(context.Background(), []module.Draft{draft(user, `{"title":"hi"}`)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
