package redis_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module/store/redis/redistest"
)

// privateRedis is a redis-server of this test only, with AOF on, that the test can restart.
type privateRedis struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed and CI is set: %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	r := &privateRedis{t: t, bin: bin, dir: t.TempDir(), addr: addr}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(r.bin, "--bind", "127.0.0.1", "--port", port, "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	c := r.client()
	defer c.Close()
	waitFor(r.t, "the private redis to answer", func() bool { return c.Ping(context.Background()).Err() == nil })
}

func (r *privateRedis) client() *goredis.Client {
	o := redistest.Options()
	o.Addr = r.addr
	return goredis.NewClient(o)
}

// shutdown stops the server gracefully (AOF flushed), as a restart does.
func (r *privateRedis) shutdown() {
	r.t.Helper()
	c := r.client()
	defer c.Close()
	_ = c.Shutdown(context.Background()).Err() // the connection drops: an error is expected
	_ = r.cmd.Wait()
	r.cmd = nil
}

// TestClusterRedisRestart: Redis (AOF on) restarts in the middle of steady publishing. While it
// is down, publishes answer 503 and /healthz says so; afterwards the nodes reconnect by
// themselves, and every message answered 200 reaches every connection in order.
func TestClusterRedisRestart(t *testing.T) {
	r := startPrivateRedis(t)
	prefix := "restart:"
	n := []*node{newNode(t, prefix, "n1", r.addr, true), newNode(t, prefix, "n2", r.addr, true)}
	users := []string{"r0", "r1", "r2"}
	g := startFollowers(t, users, [][]*node{{n[0]}, {n[1]}}, 45*time.Second)
	waitOpen(t, n, g.all, users, 2)

	var down, sawUnhealthy atomic.Bool
	restarted := make(chan struct{})
	answered := publisher(t, n[1], users, 150, func(i int) {
		switch {
		case i == 50:
			r.shutdown()
			down.Store(true)
			go func() {
				defer close(restarted)
				time.Sleep(500 * time.Millisecond)
				if status, _ := n[0].do(t, http.MethodGet, "/healthz", ""); status == http.StatusServiceUnavailable {
					sawUnhealthy.Store(true)
				}
				r.start()
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
