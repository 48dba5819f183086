package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// presenceMarker is a field every complete presence hash holds. It is not a valid userId, so it
// never collides with one. A hash without it was recreated by a partial write after it expired
// (Redis restarted without persistence, or this node stalled past PresenceTTL): the next refresh
// then writes the whole hash again.
const presenceMarker = "#"

// nodesRetention is how long a node that stopped refreshing stays in the node index (its
// presence hash is gone long before; the index entry only costs a lookup).
const nodesRetention = time.Minute

// presenceSrc reads the other nodes' presence in one round trip. It reads keys it computes
// (one hash per node in the index), which standalone Redis allows and Redis Cluster does not.
// KEYS[1] the node index. ARGV[1] the presence key prefix, ARGV[2] this node (skipped),
// ARGV[3] mode: "holders" (ARGV[4] userId; returns the nodes holding it), "all" (returns
// userId, count pairs, one pair per node holding the user) or "total" (the number of
// connections).
const presenceSrc = `
local out, total = {}, 0
local mode = ARGV[3]
for _, n in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if n ~= ARGV[2] then
    local key = ARGV[1] .. n
    if mode == 'holders' then
      if redis.call('HEXISTS', key, ARGV[4]) == 1 then out[#out+1] = n end
    else
      local kv = redis.call('HGETALL', key)
      for i = 1, #kv, 2 do
        if kv[i] ~= '#' then
          if mode == 'all' then
            out[#out+1] = kv[i]
            out[#out+1] = kv[i+1]
          else
            total = total + tonumber(kv[i+1])
          end
        end
      end
    end
  end
end
if mode == 'total' then return total end
return out
`

func (b *Broker) markPresenceStale() {
	b.mu.Lock()
	b.presenceStale = true
	b.mu.Unlock()
}

// writePresence applies one flush's changes to this node's presence hash.
func (b *Broker) writePresence(ctx context.Context, counts map[string]int, gone []string) error {
	if len(counts) == 0 && len(gone) == 0 {
		return nil
	}
	key := b.keys.Presence(b.node)
	pipe := b.rdb.Pipeline()
	if len(counts) > 0 {
		args := make([]any, 0, 2*len(counts))
		for u, n := range counts {
			args = append(args, u, n)
		}
		pipe.HSet(ctx, key, args...)
	}
	if len(gone) > 0 {
		pipe.HDel(ctx, key, gone...)
	}
	pipe.PExpire(ctx, key, b.opts.PresenceTTL)
	_, err := pipe.Exec(ctx)
	return err
}

// rewritePresence replaces this node's presence hash with counts, atomically, and indexes the
// node.
func (b *Broker) rewritePresence(ctx context.Context, counts map[string]int) error {
	key := b.keys.Presence(b.node)
	now := time.Now()
	pipe := b.rdb.TxPipeline()
	pipe.Del(ctx, key)
	args := make([]any, 0, 2+2*len(counts))
	args = append(args, presenceMarker, now.UnixMilli())
	for u, n := range counts {
		args = append(args, u, n)
	}
	pipe.HSet(ctx, key, args...)
	pipe.PExpire(ctx, key, b.opts.PresenceTTL)
	pipe.ZAdd(ctx, b.keys.Nodes(), goredis.Z{Score: float64(now.UnixMilli()), Member: b.node})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rewrite presence: %w", err)
	}
	return nil
}

// refresh runs every PresenceTTL/3 on the worker: keep this node's presence alive (or write it
// whole when it was lost), keep the node indexed, drop long-dead nodes from the index, and ping
// the Pub/Sub connection so that the reader notices a dead one.
func (b *Broker) refresh() {
	ctx, cancel := context.WithTimeout(b.ctx, b.refreshEvery*2)
	defer cancel()
	b.mu.Lock()
	ps, gen, stale := b.ps, b.gen, b.presenceStale
	var counts map[string]int
	if stale {
		counts = b.countsLocked()
	}
	b.presenceStale = false
	b.mu.Unlock()

	key := b.keys.Presence(b.node)
	now := time.Now()
	var err error
	if stale {
		err = b.rewritePresence(ctx, counts)
	} else {
		pipe := b.rdb.Pipeline()
		complete := pipe.HExists(ctx, key, presenceMarker)
		pipe.PExpire(ctx, key, b.opts.PresenceTTL)
		pipe.ZAdd(ctx, b.keys.Nodes(), goredis.Z{Score: float64(now.UnixMilli()), Member: b.node})
		pipe.ZRemRangeByScore(ctx, b.keys.Nodes(), "-inf", strconv.FormatInt(now.Add(-nodesRetention).UnixMilli(), 10))
		if _, err = pipe.Exec(ctx); err == nil && !complete.Val() {
			b.mu.Lock()
			counts = b.countsLocked()
			b.mu.Unlock()
			err = b.rewritePresence(ctx, counts)
		}
	}
	if err != nil {
		b.markPresenceStale()
		b.log.Debug("redis broker: presence refresh failed", "err", err)
	}
	if ps != nil {
		if err := ps.Ping(ctx, pongHealth); err != nil {
			b.resetPubSub(gen, err)
		}
	}
}

func (b *Broker) countsLocked() map[string]int {
	counts := make(map[string]int, len(b.users))
	for u, w := range b.users {
		if w.refs > 0 {
			counts[u] = w.refs
		}
	}
	return counts
}

func (b *Broker) runPresence(ctx context.Context, mode, userID string) *goredis.Cmd {
	return b.presence.Run(ctx, b.rdb, []string{b.keys.Nodes()}, b.keys.PresencePrefix(), b.node, mode, userID)
}

// holders lists the other nodes whose presence holds the user.
func (b *Broker) holders(ctx context.Context, userID string) ([]string, error) {
	nodes, err := b.runPresence(ctx, "holders", userID).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read presence of %s: %w", userID, err)
	}
	return nodes, nil
}

// presenceAll sums the other nodes' presence per user.
func (b *Broker) presenceAll(ctx context.Context) (map[string]int, error) {
	kv, err := b.runPresence(ctx, "all", "").StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	out := make(map[string]int, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		n, err := strconv.Atoi(kv[i+1])
		if err != nil {
			continue
		}
		out[kv[i]] += n
	}
	return out, nil
}

// presenceTotal counts the other nodes' connections.
func (b *Broker) presenceTotal(ctx context.Context) (int, error) {
	n, err := b.runPresence(ctx, "total", "").Int()
	if err != nil {
		return 0, fmt.Errorf("read presence: %w", err)
	}
	return n, nil
}
