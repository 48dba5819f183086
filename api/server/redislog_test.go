package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"pushlane/config"
	"pushlane/module/store/redis/redistest"
)

// syncBuffer is a log destination safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRedisLossLoggedOnce: while Redis is down and commands keep failing, the log holds one
// line for the loss and one for the recovery, structured, and no raw go-redis line.
func TestRedisLossLoggedOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := config.Default().Redis
	cfg.Addr = srv.Addr
	c := newRedisClient(cfg, log)
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	for range 20 {
		if c.Ping(ctx).Err() == nil {
			t.Fatal("PING answered with Redis down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the client never reconnected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN msg=\"redis unreachable") ||
		!strings.Contains(lines[1], "level=INFO msg=\"redis reachable again\"") {
		t.Fatalf("log = %q, want one loss line and one recovery line", lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, "redis="+srv.Addr) {
			t.Fatalf("line %q does not name the Redis address", l)
		}
	}
}
