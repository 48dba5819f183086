package redis_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"pushlane/module/store/redis/redistest"
)

// TestClusterRedisRestart: Redis (AOF on) restarts in the middle of steady publishing. While it
// is down, publishes answer 503 and /healthz says so; afterwards the nodes reconnect by
// themselves, and every message answered 200 reaches every connection in order.
func TestClusterRedisRestart(t *testing.T) {
	r := redistest.StartServer(t)
	prefix := "restart:"
	n := []*node{newNode(t, prefix, "n1", r.Addr, true), newNode(t, prefix, "n2", r.Addr, true)}
	users := []string{"r0", "r1", "r2"}
	g := startFollowers(t, users, [][]*node{{n[0]}, {n[1]}}, 45*time.Second)
	waitOpen(t, n, g.all, users, 2)

	var down, sawUnhealthy atomic.Bool
	restarted := make(chan struct{})
	answered := publisher(t, n[1], users, 150, func(i int) {
		switch {
		case i == 50:
			r.Shutdown()
			down.Store(true)
			go func() {
				defer close(restarted)
				time.Sleep(500 * time.Millisecond)
				if status, _ := n[0].do(t, http.MethodGet, "/healthz", ""); status == http.StatusServiceUnavailable {
					sawUnhealthy.Store(true)
				}
				r.Start()
				down.Store(false)
			}()
		case i > 50 && down.Load():
			time.Sleep(20 * time.Millisecond) // publishes fail fast while down; do not burn rounds
		}
	})
	<-restarted
	if !sawUnhealthy.Load() {
		t.Error("/healthz did not answer 503 while Redis was down")
	}
	got := 0
	for _, u := range users {
		got += len(answered[u])
	}
	g.donePublishing(answered)
	if got == 0 || got == 150*len(users) {
		t.Fatalf("%d of %d publishes answered 200: the outage did not show", got, 150*len(users))
	}
	g.wg.Wait()
	for _, f := range g.all {
		f.check(t, answered[f.user])
	}
	for _, u := range users {
		ids := answered[u]
		for i := 1; i < len(ids); i++ {
			if ids[i] != ids[i-1]+1 {
				t.Fatalf("%s: ids answered 200 jump from %d to %d: an id was taken by a publish that failed", u, ids[i-1], ids[i])
			}
		}
	}
	waitFor(t, "both nodes healthy again", func() bool {
		s1, _ := n[0].do(t, http.MethodGet, "/healthz", "")
		s2, _ := n[1].do(t, http.MethodGet, "/healthz", "")
		return s1 == http.StatusOK && s2 == http.StatusOK
	})
	t.Logf("answered 200: %d of %d publishes", got, 150*len(users))
}
