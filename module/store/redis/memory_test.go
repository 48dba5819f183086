package redis

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/store/redis/redistest"
)

// memoryData is a typical notification: 97 bytes of JSON.
const memoryData = `{"title":"hello","body":"a message of about a hundred bytes, as a typical notification would be"}`

// usedMemory reads INFO memory's used_memory.
func usedMemory(t testing.TB, rdb *goredis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// keyUsage lists MEMORY USAGE of every key under prefix (at most 20, largest first).
func keyUsage(t testing.TB, rdb *goredis.Client, prefix string) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	type ku struct {
		key string
		n   int64
	}
	var all []ku
	for _, k := range keys {
		n, _ := rdb.MemoryUsage(ctx, k).Result()
		all = append(all, ku{strings.TrimPrefix(k, prefix), n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	var b strings.Builder
	for i, k := range all {
		if i == 20 {
			fmt.Fprintf(&b, " ... (%d keys)", len(all))
			break
		}
		fmt.Fprintf(&b, " %s=%d", k.key, k.n)
	}
	return b.String()
}

// measure appends drafts in calls of 1000 and returns the used_memory growth.
func measure(t *testing.T, rdb *goredis.Client, s *Store, drafts []module.Draft) int64 {
	t.Helper()
	before := usedMemory(t, rdb)
	for i := 0; i < len(drafts); i += 1000 {
		if _, err := s.Append(testCtx(t), drafts[i:min(i+1000, len(drafts))]); err != nil {
			t.Fatal(err)
		}
	}
	return usedMemory(t, rdb) - before
}

// TestMemoryCost measures the Redis memory of users and messages on a private redis-server (so
// nobody else's keys count) and holds the layout to its documented budget (docs/redis.md):
// a user with one 97-byte message costs under 600 bytes, a further message under its data plus
// 80 bytes. Run with -v to see the figures.
func TestMemoryCost(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := srv.Client()
	defer rdb.Close()
	const n = 10_000
	s := openT(t, rdb, "m:", module.StoreOptions{MaxPerUser: n}, false)

	users := make([]module.Draft, n)
	for i := range users {
		users[i] = module.Draft{UserID: fmt.Sprintf("user-%06d", i), Data: []byte(memoryData), TTL: 72 * time.Hour}
	}
	perUser := measure(t, rdb, s, users) / n
	t.Logf("%d users x 1 message: %d bytes per user (used_memory growth); MEMORY USAGE of one user's keys:%s", n, perUser, keyUsage(t, rdb, "m:*user-000042*"))

	one := make([]module.Draft, n)
	for i := range one {
		one[i] = module.Draft{UserID: "heavy", Data: []byte(memoryData), TTL: 72 * time.Hour}
	}
	perMsg := measure(t, rdb, s, one) / n
	t.Logf("1 user x %d messages: %d bytes per message (data %d bytes);%s", n, perMsg, len(memoryData), keyUsage(t, rdb, "m:*heavy"))

	// Every message of the heavy user written to a connection, then acknowledged: statuses must
	// not blow the cost up again.
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	// The key's own size (every element counted): used_memory would also count the client
	// buffers the marks passed through, which Redis frees only later.
	keyBytes := func() int64 {
		t.Helper()
		n, err := rdb.MemoryUsage(context.Background(), "m:u:{heavy}", 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := keyBytes()
	markAll(t, s, "heavy", ids)
	perStatus := (keyBytes() - before) / n
	t.Logf("statuses (sent and acked) of those messages: %d bytes per message more (MEMORY USAGE SAMPLES 0)", perStatus)

	if perUser > 600 {
		t.Errorf("a user with one message costs %d bytes of Redis memory, budget 600", perUser)
	}
	if perMsg > int64(len(memoryData))+80 {
		t.Errorf("a message of %d bytes costs %d bytes, budget data+80", len(memoryData), perMsg)
	}
	if perStatus > 40 {
		t.Errorf("statuses cost %d bytes per message, budget 40", perStatus)
	}
}

// markAll marks ids written (not dequeued) and then acknowledged, and waits until Redis has them.
func markAll(t testing.TB, s *Store, user string, ids []uint64) {
	t.Helper()
	now := time.Now()
	s.MarkWritten(user, ids, false, now)
	s.Ack(user, ids, now.Add(time.Second))
	if _, err := s.Stats(testCtx(t), user); err != nil { // waits for the marks
		t.Fatal(err)
	}
}
