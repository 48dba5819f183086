package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// presenceTotalField holds a node's connection count in its presence hash, so that a broadcast
// counts every node's connections in O(nodes), whatever the number of users. Not a valid userId.
const presenceTotalField = "#n"

// presenceSrc reads the other nodes' presence in one round trip, with work bounded by the
// number of nodes times the users asked about: never a whole presence hash. It reads keys it
// computes (one hash per node in the index), which standalone Redis allows and Redis Cluster
// does not. KEYS[1] the node index. ARGV[1] the presence key prefix, ARGV[2] this node
// (skipped), ARGV[3] mode:
//   - "holders", ARGV[4] a userId: the nodes holding it;
//   - "many", ARGV[4..] userIds: a string of '0'/'1', one per user, '1' when a node holds it;
//   - "total": the sum of the nodes' connection counts (their "#n" fields).
const presenceSrc = `
local mode = ARGV[3]
local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)
if mode == 'holders' then
  local out = {}
  for _, n in ipairs(nodes) do
    if n ~= ARGV[2] and redis.call('HEXISTS', ARGV[1] .. n, ARGV[4]) == 1 then out[#out+1] = n end
  end
  return out
elseif mode == 'many' then
  local online = {}
  local users = {unpack(ARGV, 4)}
  for _, n in ipairs(nodes) do
    if n ~= ARGV[2] and #users > 0 then
      local got = redis.call('HMGET', ARGV[1] .. n, unpack(users))
      for i = 1, #users do
        if got[i] then online[i] = true end
      end
    end
  end
  local out = {}
  for i = 1, #users do out[i] = online[i] and '1' or '0' end
  return table.concat(out)
end
local total = 0
for _, n in ipairs(nodes) do
  if n ~= ARGV[2] then total = total + (tonumber(redis.call('HGET', ARGV[1] .. n, '#n')) or 0) end
end
return total
`

func (b *Broker) markPresenceStale() {
	b.mu.Lock()
	b.presenceStale = true
	b.mu.Unlock()
}

// writePresence applies one flush's changes to this node's presence hash, with its new total.
func (b *Broker) writePresence(ctx context.Context, counts map[string]int, gone []string, total int) error {
	if len(counts) == 0 && len(gone) == 0 {
		return nil
	}
	key := b.keys.Presence(b.node)
	pipe := b.rdb.Pipeline()
	args := make([]any, 0, 2+2*len(counts))
	args = append(args, presenceTotalField, total)
	for u, n := range counts {
		args = append(args, u, n)
	}
	pipe.HSet(ctx, key, args...)
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
	args := make([]any, 0, 4+2*len(counts))
	total := 0
	for u, n := range counts {
		args = append(args, u, n)
		total += n
	}
	args = append(args, presenceMarker, now.UnixMilli(), presenceTotalField, total)
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

func (b *Broker) runPresence(ctx context.Context, mode string, users ...string) *goredis.Cmd {
	args := make([]any, 0, 3+len(users))
	args = append(args, b.keys.PresencePrefix(), b.node, mode)
	for _, u := range users {
		args = append(args, u)
	}
	return b.presence.Run(ctx, b.rdb, []string{b.keys.Nodes()}, args...)
}

// holders lists the other nodes whose presence holds the user.
func (b *Broker) holders(ctx context.Context, userID string) ([]string, error) {
	nodes, err := b.runPresence(ctx, "holders", userID).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read presence of %s: %w", userID, err)
	}
	return nodes, nil
}

// presenceTotal counts the other nodes' connections: one field per node.
func (b *Broker) presenceTotal(ctx context.Context) (int, error) {
	n, err := b.runPresence(ctx, "total").Int()
	if err != nil {
		return 0, fmt.Errorf("read presence: %w", err)
	}
	return n, nil
}

// presenceScanCount is the COUNT of one HSCAN of a presence hash: the most work one call asks
// of Redis while listing users (about 0.3 ms for 1,000 fields).
const presenceScanCount = 1000

// presenceAll sums the other nodes' presence per user. It reads each node's hash with HSCAN,
// presenceScanCount fields a call, so Redis never blocks for more than one page however many
// users are online; the price is one round trip per page, and a listing that is not a snapshot
// of one instant (a user who moves between nodes while it runs may be seen twice or not at all).
func (b *Broker) presenceAll(ctx context.Context) (map[string]int, error) {
	nodes, err := b.rdb.ZRange(ctx, b.keys.Nodes(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read the node index: %w", err)
	}
	out := make(map[string]int)
	for _, n := range nodes {
		if n == b.node {
			continue
		}
		key := b.keys.Presence(n)
		var cursor uint64
		for {
			kv, next, err := b.rdb.HScan(ctx, key, cursor, "", presenceScanCount).Result()
			if err != nil {
				return nil, fmt.Errorf("read presence of node %s: %w", n, err)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if strings.HasPrefix(kv[i], "#") {
					continue
				}
				if c, err := strconv.Atoi(kv[i+1]); err == nil && c > 0 {
					out[kv[i]] += c
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return out, nil
}

// onlineElsewhere asks, in one round trip, which of users another node holds.
func (b *Broker) onlineElsewhere(ctx context.Context, users []string) ([]bool, error) {
	flags, err := b.runPresence(ctx, "many", users...).Text()
	if err != nil {
		return nil, fmt.Errorf("read presence of %d users: %w", len(users), err)
	}
	if len(flags) != len(users) {
		return nil, fmt.Errorf("read presence of %d users: %d answers", len(users), len(flags))
	}
	out := make([]bool, len(users))
	for i := range users {
		out[i] = flags[i] == '1'
	}
	return out, nil
}
