package redis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/webpush"
)

// Web Push keys (rediskeys): each user's subscriptions are one hash, the users that have any a
// set (read by the append script, which adds a message's fan-out due push in the same atomic
// step), and every due push one member "U id sub attempt" of one sorted set scored by its due
// time. A claim moves the member's score to when the claim runs out: other nodes' claims skip it
// until then. That score is the claim's token: a later claim of the same member is made at a
// later time, so it writes a greater score, and a claimer whose lease ran out finds its token
// gone and changes nothing.

// saveSubSrc: KEYS subs, users. ARGV id, userId, created (ms), endpoint, p256dh, auth,
// maxPerUser. Returns {id, created, 1 new / 0 existing, removed}.
const saveSubSrc = `
local all = redis.call('HGETALL', KEYS[1])
local entries = {}
for i = 1, #all, 2 do
  local id, v = all[i], all[i+1]
  if string.sub(id, 1, 1) ~= '#' then
    local seq, created, ep = string.match(v, '^(%d+) (%d+) (%S+) ')
    if ep == ARGV[4] then
      redis.call('HSET', KEYS[1], id, seq .. ' ' .. created .. ' ' .. ep .. ' ' .. ARGV[5] .. ' ' .. ARGV[6])
      return {id, created, 0, 0}
    end
    entries[#entries+1] = {id = id, seq = tonumber(seq)}
  end
end
table.sort(entries, function(x, y) return x.seq < y.seq end)
local removed, max = 0, tonumber(ARGV[7])
while #entries - removed >= max do
  removed = removed + 1
  redis.call('HDEL', KEYS[1], entries[removed].id)
end
local seq = redis.call('HINCRBY', KEYS[1], '#seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', seq) .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. ARGV[6])
redis.call('SADD', KEYS[2], ARGV[2])
return {ARGV[1], ARGV[3], 1, removed}
`

// deleteSubSrc: KEYS subs, users. ARGV id, userId. Returns 1 when it was there. The user leaves
// the users set with its last subscription.
const deleteSubSrc = `
if string.sub(ARGV[1], 1, 1) == '#' then return 0 end
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n == 1 and redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return n
`

// claimSrc: KEYS due. ARGV now (ms), claim end (ms), limit. Returns the claimed members.
const claimSrc = `
local items = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(items) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m) end
return items
`

// heldSrc is shared by expand and finish: is member still claimed under token?
const heldSrc = `
local function held(key, member, token)
  local s = redis.call('ZSCORE', key, member)
  return s and tonumber(s) == tonumber(token)
end
`

// expandSrc: KEYS due, subs. ARGV member, token, userId, message id, now (ms). Replaces a held
// fan-out member by one member per subscription. Returns -1 when the claim is lost.
const expandSrc = heldSrc + `
if not held(KEYS[1], ARGV[1], ARGV[2]) then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
local n = 0
for _, sub in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(sub, 1, 1) ~= '#' then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[5], ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. sub .. ' 0')
    n = n + 1
  end
end
return n
`

// finishSrc: KEYS due. ARGV member, token, then member and due time (ms) of each retry.
// Returns 0 when the claim is lost.
const finishDueSrc = heldSrc + `
if not held(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i+1], ARGV[i]) end
return 1
`

// pushScripts are the Web Push scripts.
type pushScripts struct {
	saveSub, deleteSub, claim, expand, finish *goredis.Script
}

func newPushScripts() pushScripts {
	return pushScripts{
		saveSub:   goredis.NewScript(saveSubSrc),
		deleteSub: goredis.NewScript(deleteSubSrc),
		claim:     goredis.NewScript(claimSrc),
		expand:    goredis.NewScript(expandSrc),
		finish:    goredis.NewScript(finishDueSrc),
	}
}

var _ webpush.Store = (*Store)(nil)

// dueMember is a due record's member: "U id sub attempt", sub "*" for a fan-out record.
// UserIds and subscription ids hold no spaces.
func dueMember(userID string, id uint64, sub string, attempt int) string {
	if sub == "" {
		sub = "*"
	}
	return userID + " " + strconv.FormatUint(id, 10) + " " + sub + " " + strconv.Itoa(attempt)
}

func parseDueMember(m string) (webpush.Due, error) {
	f := strings.Split(m, " ")
	if len(f) != 4 {
		return webpush.Due{}, fmt.Errorf("due member %q", m)
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return webpush.Due{}, fmt.Errorf("due member %q: %w", m, err)
	}
	attempt, err := strconv.Atoi(f[3])
	if err != nil {
		return webpush.Due{}, fmt.Errorf("due member %q: %w", m, err)
	}
	d := webpush.Due{UserID: f[0], MsgID: id, SubID: f[2], Attempt: attempt}
	if d.SubID == "*" {
		d.SubID = ""
	}
	return d, nil
}

func (s *Store) checkOpen(what string) error {
	if s.closed.Load() {
		return fmt.Errorf("redis store %s: %w", what, module.ErrClosed)
	}
	return nil
}

// SaveSubscription implements webpush.Store.
func (s *Store) SaveSubscription(ctx context.Context, sub webpush.Subscription, maxPerUser int) (webpush.Subscription, bool, int, error) {
	if err := s.checkOpen("save subscription"); err != nil {
		return webpush.Subscription{}, false, 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.push.saveSub.Run(ctx, s.rdb, []string{s.keys.WebPushSubs(sub.UserID), s.keys.WebPushUsers()},
		sub.ID, sub.UserID, sub.CreatedAt.UnixMilli(), sub.Endpoint, sub.P256dh, sub.Auth, max(maxPerUser, 1)).Slice()
	if err != nil {
		return webpush.Subscription{}, false, 0, fmt.Errorf("redis store save subscription of %s: %w", sub.UserID, err)
	}
	if len(res) != 4 {
		return webpush.Subscription{}, false, 0, fmt.Errorf("redis store save subscription of %s: reply of %d fields", sub.UserID, len(res))
	}
	id, _ := res[0].(string)
	created, err := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	if err != nil || id == "" {
		return webpush.Subscription{}, false, 0, fmt.Errorf("redis store save subscription of %s: malformed reply %v", sub.UserID, res)
	}
	isNew, _ := res[2].(int64)
	removed, _ := res[3].(int64)
	saved := sub
	saved.ID, saved.CreatedAt = id, time.UnixMilli(created)
	return saved, isNew == 1, int(removed), nil
}

// DeleteSubscription implements webpush.Store.
func (s *Store) DeleteSubscription(ctx context.Context, userID, id string) (bool, error) {
	if err := s.checkOpen("delete subscription"); err != nil {
		return false, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.push.deleteSub.Run(ctx, s.rdb, []string{s.keys.WebPushSubs(userID), s.keys.WebPushUsers()}, id, userID).Int()
	if err != nil {
		return false, fmt.Errorf("redis store delete subscription of %s: %w", userID, err)
	}
	return n == 1, nil
}

// Subscriptions implements webpush.Store.
func (s *Store) Subscriptions(ctx context.Context, userID string) ([]webpush.Subscription, error) {
	if err := s.checkOpen("subscriptions"); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	all, err := s.rdb.HGetAll(ctx, s.keys.WebPushSubs(userID)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store subscriptions of %s: %w", userID, err)
	}
	type entry struct {
		seq int64
		sub webpush.Subscription
	}
	var entries []entry
	for id, v := range all {
		if strings.HasPrefix(id, "#") {
			continue
		}
		f := strings.Split(v, " ")
		if len(f) != 5 {
			return nil, fmt.Errorf("redis store subscriptions of %s: record %q", userID, v)
		}
		seq, err1 := strconv.ParseInt(f[0], 10, 64)
		created, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("redis store subscriptions of %s: record %q", userID, v)
		}
		entries = append(entries, entry{seq: seq, sub: webpush.Subscription{ID: id, UserID: userID, Endpoint: f[2],
			P256dh: f[3], Auth: f[4], CreatedAt: time.UnixMilli(created)}})
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) }) // oldest first
	out := make([]webpush.Subscription, len(entries))
	for i, e := range entries {
		out[i] = e.sub
	}
	return out, nil
}

// ClaimDue implements webpush.Store. The claim's token is its end in unix ms.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]webpush.Due, error) {
	if err := s.checkOpen("claim due"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	until := strconv.FormatInt(now.Add(lease).UnixMilli(), 10)
	members, err := s.push.claim.Run(ctx, s.rdb, []string{s.keys.WebPushDue()}, now.UnixMilli(), until, limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis store claim due: %w", err)
	}
	out := make([]webpush.Due, 0, len(members))
	for _, m := range members {
		d, err := parseDueMember(m)
		if err != nil {
			s.log.Warn("redis store: malformed due push member skipped", "err", err)
			continue
		}
		d.Claim = until
		out = append(out, d)
	}
	return out, nil
}

// ExpandDue implements webpush.Store.
func (s *Store) ExpandDue(ctx context.Context, d webpush.Due, now time.Time) error {
	if err := s.checkOpen("expand due"); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.push.expand.Run(ctx, s.rdb, []string{s.keys.WebPushDue(), s.keys.WebPushSubs(d.UserID)},
		dueMember(d.UserID, d.MsgID, d.SubID, d.Attempt), d.Claim, d.UserID, d.MsgID, now.UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("redis store expand due: %w", err)
	}
	if n < 0 {
		return webpush.ErrClaimLost
	}
	return nil
}

// FinishDue implements webpush.Store.
func (s *Store) FinishDue(ctx context.Context, d webpush.Due, retries []webpush.Retry) error {
	if err := s.checkOpen("finish due"); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	args := make([]any, 0, 2+2*len(retries))
	args = append(args, dueMember(d.UserID, d.MsgID, d.SubID, d.Attempt), d.Claim)
	for _, r := range retries {
		args = append(args, dueMember(d.UserID, d.MsgID, r.SubID, r.Attempt), r.At.UnixMilli())
	}
	n, err := s.push.finish.Run(ctx, s.rdb, []string{s.keys.WebPushDue()}, args...).Int()
	if err != nil {
		return fmt.Errorf("redis store finish due: %w", err)
	}
	if n == 0 {
		return webpush.ErrClaimLost
	}
	return nil
}

// CountDue implements webpush.Store.
func (s *Store) CountDue(ctx context.Context) (int, error) {
	if err := s.checkOpen("count due"); err != nil {
		return 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.rdb.ZCard(ctx, s.keys.WebPushDue()).Result()
	if err != nil {
		return 0, fmt.Errorf("redis store count due: %w", err)
	}
	return int(n), nil
}
