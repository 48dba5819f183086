package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// redisLink turns the Redis client's connection troubles into two structured log lines: one
// when Redis becomes unreachable, one when it is reachable again. Without it go-redis prints a
// raw line on every failed dial, several a second while Redis is down.
//
// It watches dials through the client's documented hook (goredis.Hook.DialHook): while Redis is
// down, every command needs a new connection, so the first failed dial is the loss and the
// first successful dial after it the recovery. go-redis's own messages go to slog at debug
// level through goredis.SetLogger, which is process-wide (go-redis keeps one logger): the last
// node built in a process owns it, which only matters to tests that build several.
type redisLink struct {
	log  *slog.Logger
	addr string

	mu   sync.Mutex
	down bool
}

func newRedisLink(log *slog.Logger, addr string) *redisLink {
	return &redisLink{log: log, addr: addr}
}

// DialHook implements goredis.Hook.
func (l *redisLink) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		l.mu.Lock()
		defer l.mu.Unlock()
		switch {
		case err != nil && !l.down:
			l.down = true
			l.log.Warn("redis unreachable; publishes answer 503 until it is back", "redis", l.addr, "err", err)
		case err == nil && l.down:
			l.down = false
			l.log.Info("redis reachable again", "redis", l.addr)
		}
		return conn, err
	}
}

// ProcessHook implements goredis.Hook.
func (l *redisLink) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

// ProcessPipelineHook implements goredis.Hook.
func (l *redisLink) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// redisDebugLog receives go-redis's internal messages (goredis.SetLogger) at debug level.
type redisDebugLog struct{ log *slog.Logger }

// Printf implements go-redis's internal logging interface.
func (d redisDebugLog) Printf(ctx context.Context, format string, v ...any) {
	d.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
