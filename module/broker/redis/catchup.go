package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module/internal/rediskeys"
)

// catchUpReadChunk is how many users' last ids one pipeline reads after a reconnect (LINDEX of
// each list's meta element: O(1) each).
const catchUpReadChunk = 1000

// catchUp runs after the Pub/Sub connection came back. Only users whose last id in the store is
// above the last id this node received live can have missed a message; their connections read
// the store. Before, every connection of the node ran its catch-up read at the same moment.
//
// Only the connections of users who are behind catch up (Hub.CatchUpUsers); the hub runs their
// store reads a bounded number at a time (docs/redis.md, "After a Redis outage").
func (b *Broker) catchUp() {
	b.mu.Lock()
	users := make([]string, 0, len(b.users))
	seen := make([]uint64, 0, len(b.users))
	for u, w := range b.users {
		if w.refs > 0 {
			users = append(users, u)
			seen = append(seen, w.lastLive)
		}
	}
	b.mu.Unlock()
	behind, err := b.behind(users, seen)
	switch {
	case err != nil:
		b.log.Info("redis pub/sub restored; last ids unreadable, catching every connection up from the store", "err", err)
		b.hub.CatchUp()
	case len(behind) > 0:
		b.log.Info("redis pub/sub restored; catching connections up from the store", "usersBehind", len(behind), "users", len(users))
		b.hub.CatchUpUsers(behind)
	default:
		b.log.Info("redis pub/sub restored; no user missed a message", "users", len(users))
	}
}

// behind returns the users whose last id in the store is above seen[i], reading the ids in
// pipelines of catchUpReadChunk users.
func (b *Broker) behind(users []string, seen []uint64) ([]string, error) {
	var out []string
	for i := 0; i < len(users); i += catchUpReadChunk {
		chunk := users[i:min(i+catchUpReadChunk, len(users))]
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		pipe := b.rdb.Pipeline()
		cmds := make([]*goredis.StringCmd, len(chunk))
		for j, u := range chunk {
			cmds[j] = pipe.LIndex(ctx, b.keys.User(u), 0)
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil && err != goredis.Nil {
			return nil, fmt.Errorf("read %d users' last ids: %w", len(chunk), err)
		}
		for j, c := range cmds {
			meta, err := c.Result()
			if err == goredis.Nil {
				continue // nothing stored: nothing missed
			}
			last, ok := rediskeys.LastIDOfMeta(meta)
			if err != nil || !ok || last > seen[i+j] {
				out = append(out, chunk[j])
			}
		}
	}
	return out, nil
}
