package redis_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module/store/redis/redistest"
)

// redisWork is what Redis did for one operation, from its slow log (every command logged):
// how many commands it ran and the longest one, which is how long it blocked everything else.
type redisWork struct {
	byName   map[string]int
	commands int
	longest  time.Duration
	total    time.Duration
}

func (w redisWork) String() string {
	return fmt.Sprintf("%d commands %v, longest %v, sum %v", w.commands, w.byName, w.longest, w.total)
}

// measureRedis runs op with every command going to the slow log and reports the work.
func measureRedis(t *testing.T, admin *goredis.Client, op func()) (time.Duration, redisWork) {
	t.Helper()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(ctx, "slowlog-max-len", "100000").Err(); err != nil {
		t.Fatal(err)
	}
	admin.SlowLogReset(ctx)
	start := time.Now()
	op()
	wall := time.Since(start)
	logs, err := admin.SlowLogGet(ctx, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	admin.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
	w := redisWork{byName: map[string]int{}}
	for _, l := range logs {
		if len(l.Args) > 0 && strings.EqualFold(l.Args[0], "slowlog") {
			continue
		}
		w.commands++
		w.byName[strings.ToLower(l.Args[0])]++
		w.total += l.Duration
		w.longest = max(w.longest, l.Duration)
	}
	return wall, w
}

// TestMeasureClusterCost measures, on a private redis-server, what a 1,000-user publish, a
// broadcast and GET /clients cost Redis on 3 nodes, with 300 users connected and a fourth
// (simulated) node whose presence holds 100,000 users, as a large cluster's would. Figures only:
// run with PUSHLANE_MEASURE=1 -v (docs/redis.md quotes them).
func TestMeasureClusterCost(t *testing.T) {
	if os.Getenv("PUSHLANE_MEASURE") == "" {
		t.Skip("set PUSHLANE_MEASURE=1 to measure")
	}
	srv := redistest.StartServer(t)
	admin := srv.Client()
	defer admin.Close()
	prefix := "cost:"
	n := []*node{newNode(t, prefix, "n1", srv.Addr, true), newNode(t, prefix, "n2", srv.Addr, true), newNode(t, prefix, "n3", srv.Addr, true)}
	ctx := context.Background()
	// The simulated node: 100,000 users in its presence, indexed as alive.
	ghost := prefix + "presence:ghost"
	for i := 0; i < 100_000; i += 10_000 {
		args := []any{"#", time.Now().UnixMilli(), "#n", 100_000}
		for j := i; j < i+10_000; j++ {
			args = append(args, fmt.Sprintf("ghost-%06d", j), 1)
		}
		admin.HSet(ctx, ghost, args...)
	}
	admin.ZAdd(ctx, prefix+"nodes", goredis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "ghost"})

	var users []string
	for i := range 1000 {
		users = append(users, strconv.Quote(fmt.Sprintf("u%04d", i)))
	}
	for i := 0; i < 300; i++ {
		n[i%3].dial(t, fmt.Sprintf("u%04d", i), "")
	}
	waitFor(t, "300 users online", func() bool {
		got := 0
		for _, nd := range n {
			got += len(nd.hub.Users())
		}
		return got == 300
	})
	body := `{"userIds":[` + strings.Join(users, ",") + `],"data":{"title":"hi"}}`
	n[0].publish(t, body) // warm up: scripts loaded, connections open
	wall, w := measureRedis(t, admin, func() { n[0].publish(t, body) })
	t.Logf("publish to 1,000 users (300 online, 3 nodes): %v wall; Redis: %v", wall, w)

	wall, w = measureRedis(t, admin, func() {
		n[1].doJSON(t, http.MethodPost, "/broadcast", `{"data":1}`, http.StatusOK, nil)
	})
	t.Logf("broadcast (100,300 connections in presence): %v wall; Redis: %v", wall, w)

	wall, w = measureRedis(t, admin, func() {
		n[2].doJSON(t, http.MethodGet, "/clients?limit=100", "", http.StatusOK, nil)
	})
	t.Logf("GET /clients (100,300 users in presence): %v wall; Redis: %v", wall, w)
}
