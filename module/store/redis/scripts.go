package redis

import goredis "github.com/redis/go-redis/v9"

// The store's logic runs in Lua so that every step touching one user is atomic on the server,
// whichever node sends it. Numbers: Lua numbers are doubles, exact up to 2^53; ids, counts and
// unix milliseconds stay far below that, and string.format('%d') prints them without exponent.
// Key layout and field names: see package rediskeys.

// appendSrc stores one Append call atomically. The "#!lua" shebang (Redis >= 7) makes Redis
// refuse the whole script up front when it is out of memory, instead of failing half-way through
// a multi-user publish.
//
// KEYS: 4 per draft (stream, counter, cursor, delivered), then the expiry index.
// ARGV[1] now (unix ms), ARGV[2] maxPerUser, ARGV[3] user channel prefix (empty: do not publish),
// ARGV[4] n, the number of distinct data values, ARGV[5..4+n] the data values, then 3 per draft:
// data index (1-based), expiresAt (unix ms), userId; last, the key grace (ms).
// Returns the ids in draft order, then the number of entries the MAXLEN ~ trimming removed.
const appendSrc = `#!lua
local now = tonumber(ARGV[1])
local maxlen = ARGV[2]
local chprefix = ARGV[3]
local ndata = tonumber(ARGV[4])
local expiry = KEYS[#KEYS]
local drafts = (#KEYS - 1) / 4
local out = {}
local trimmed = 0
local a = 4 + ndata
local nowstr = string.format('%d', now)
local grace = tonumber(ARGV[5 + ndata + 3 * drafts] or '0')
for i = 1, drafts do
  local k = (i - 1) * 4
  local stream, counter, cursor, delivered = KEYS[k+1], KEYS[k+2], KEYS[k+3], KEYS[k+4]
  local data = ARGV[4 + tonumber(ARGV[a+1])]
  local exp = tonumber(ARGV[a+2])
  local user = ARGV[a+3]
  a = a + 3
  local id = redis.call('INCR', counter)
  if id == 1 then
    -- A fresh counter. If the stream still holds messages (the counter was lost, e.g. evicted),
    -- go on above them: ids never go back and XADD never refuses the id.
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    if #last > 0 then
      id = tonumber(string.match(last[1][1], '^(%d+)')) + 1
      redis.call('SET', counter, string.format('%d', id))
    end
  end
  local before = redis.call('XLEN', stream)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, string.format('%d-0', id),
    'e', string.format('%d', exp), 'c', nowstr, 'd', data)
  trimmed = trimmed + before + 1 - redis.call('XLEN', stream)
  -- The stream (and the delivery marks with it) lives as long as its longest-lived message,
  -- plus a grace that lets a sweeper count the expired messages before Redis drops the key, so
  -- an idle user's keys vanish by themselves even with no node sweeping; the counter stays.
  local ttl = exp - now
  if ttl < 1 then ttl = 1 end
  ttl = ttl + grace
  if redis.call('PTTL', stream) < ttl then
    redis.call('PEXPIRE', stream, ttl)
    redis.call('PEXPIRE', cursor, ttl)
    redis.call('PEXPIRE', delivered, ttl)
  end
  redis.call('ZADD', expiry, 'LT', exp, user)
  if chprefix ~= '' then
    redis.call('PUBLISH', chprefix .. user, string.format('%d:', id) .. nowstr .. ':' .. data)
  end
  out[i] = id
end
out[drafts + 1] = trimmed
return out
`

// readPrelude is shared by the scripts that read a user's stream.
const readPrelude = `
local function num(v) return tonumber(v) or 0 end
local function idOf(sid) return tonumber(string.match(sid, '^(%d+)')) end
-- scan calls fn(id, sid, expires, created, data) for every entry with id > lo, oldest first,
-- 100 entries per XRANGE, until fn returns true.
local function scan(stream, lo, fn)
  local start = string.format('(%d-0', lo)
  while true do
    local page = redis.call('XRANGE', stream, start, '+', 'COUNT', 100)
    for _, ent in ipairs(page) do
      local f = ent[2]
      local e, c, d
      for j = 1, #f, 2 do
        local name = f[j]
        if name == 'e' then e = f[j+1] elseif name == 'c' then c = f[j+1] elseif name == 'd' then d = f[j+1] end
      end
      if fn(idOf(ent[1]), ent[1], e, c, d) then return end
    end
    if #page < 100 then return end
    start = '(' .. page[#page][1]
  end
end
-- delivered: at or below the cursor, or marked out of order above it.
local function delivered(key, cursor, id)
  return id <= cursor or redis.call('ZSCORE', key, string.format('%d', id)) ~= false
end
-- window is the lowest id that still counts: only the newest maxPerUser ids do (MAXLEN ~ trims
-- approximately, so the stream may hold a few older entries for a while).
local function floorOf(last, maxlen)
  local f = last - maxlen
  if f < 0 then f = 0 end
  return f
end
`

// backlogSrc: KEYS stream, counter, cursor, delivered. ARGV after, since, pending ('1'/'0'),
// limit (0 = no limit), now, maxPerUser. Returns 4 strings per message: entry id, createdAt,
// expiresAt, data.
const backlogSrc = readPrelude + `
local last = num(redis.call('GET', KEYS[2]))
local after, since = tonumber(ARGV[1]), tonumber(ARGV[2])
local pending = ARGV[3] == '1'
local limit, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local cursor = 0
if pending then cursor = num(redis.call('GET', KEYS[3])) end
local lo = since
if pending and cursor < lo then lo = cursor end
if after > lo then lo = after end
local floor = floorOf(last, tonumber(ARGV[6]))
if floor > lo then lo = floor end
if lo >= last then return {} end
local out, n = {}, 0
scan(KEYS[1], lo, function(id, sid, e, c, d)
  if tonumber(e) > now and (id > since or not delivered(KEYS[4], cursor, id)) then
    out[#out+1] = sid
    out[#out+1] = c
    out[#out+1] = e
    out[#out+1] = d
    n = n + 1
    if limit > 0 and n >= limit then return true end
  end
  return false
end)
return out
`

// statsSrc: KEYS stream, counter, cursor, delivered. ARGV now, maxPerUser. Returns {stored, pending}.
const statsSrc = readPrelude + `
local last = num(redis.call('GET', KEYS[2]))
local cursor = num(redis.call('GET', KEYS[3]))
local now = tonumber(ARGV[1])
local stored, pend = 0, 0
local floor = floorOf(last, tonumber(ARGV[2]))
if floor < last then
  scan(KEYS[1], floor, function(id, sid, e)
    if tonumber(e) > now then
      stored = stored + 1
      if not delivered(KEYS[4], cursor, id) then pend = pend + 1 end
    end
    return false
  end)
end
return {stored, pend}
`

// purgeSrc: KEYS stream, counter, cursor, delivered, expiry index. ARGV now, maxPerUser, userId.
// Deletes everything of the user but the counter; returns how many live messages there were.
const purgeSrc = readPrelude + `
local last = num(redis.call('GET', KEYS[2]))
local now = tonumber(ARGV[1])
local n = 0
local floor = floorOf(last, tonumber(ARGV[2]))
if floor < last then
  scan(KEYS[1], floor, function(id, sid, e)
    if tonumber(e) > now then n = n + 1 end
    return false
  end)
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[3])
return n
`

// markSrc: KEYS stream, counter, cursor, delivered. ARGV maxPerUser, then the ids, ascending.
// Raises the cursor over every id marked (or no longer stored) right above it; marks further up
// wait in the delivered zset until the ids below them are marked, trimmed or gone. The cursor
// never goes down. Returns the cursor.
const markSrc = readPrelude + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = num(redis.call('GET', KEYS[2]))
local cursor = num(redis.call('GET', KEYS[3]))
local old = cursor
local floor = floorOf(last, tonumber(ARGV[1]))
if floor > cursor then cursor = floor end
for i = 2, #ARGV do
  local id = tonumber(ARGV[i])
  if id <= last then
    if id == cursor + 1 then
      cursor = id
    elseif id > cursor then
      redis.call('ZADD', KEYS[4], id, ARGV[i])
    end
  end
end
while true do
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if #first == 0 then break end
  local id = tonumber(first[2])
  if id > cursor + 1 then
    local between = redis.call('XRANGE', KEYS[1], string.format('(%d-0', cursor), string.format('(%d-0', id), 'COUNT', 1)
    if #between > 0 then break end
  end
  if id > cursor then cursor = id end
  redis.call('ZREM', KEYS[4], first[1])
end
if cursor ~= old then redis.call('SET', KEYS[3], string.format('%d', cursor)) end
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then
  redis.call('PEXPIRE', KEYS[3], pttl)
  redis.call('PEXPIRE', KEYS[4], pttl)
end
return cursor
`

// sweepSrc: KEYS stream, counter, cursor, delivered, expiry index. ARGV now, maxPerUser, userId.
// Drops the entries beyond maxPerUser and the expired head of the stream, deletes the user's
// keys (but the counter) when nothing is left, and re-indexes the user by its new head's expiry.
// Returns {expired, trimmed}. Expired entries behind a longer-lived head (mixed ttls) are hidden
// by every read and removed once they reach the head, or with the key.
const sweepSrc = readPrelude + `
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[3])
  return {0, 0}
end
local last = num(redis.call('GET', KEYS[2]))
local floor = floorOf(last, tonumber(ARGV[2]))
local trimmed = 0
if floor > 0 then trimmed = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', floor + 1)) end
local expired, head, headID = 0, nil, nil
scan(KEYS[1], 0, function(id, sid, e)
  if tonumber(e) <= now then
    expired = expired + 1
    return false
  end
  head, headID = tonumber(e), sid
  return true
end)
if head == nil then
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[3])
else
  if expired > 0 then redis.call('XTRIM', KEYS[1], 'MINID', headID) end
  redis.call('ZADD', KEYS[5], head, ARGV[3])
end
return {expired, trimmed}
`

// scripts are the store's Lua scripts; EVALSHA first, the source when Redis lost its cache.
type scripts struct {
	append, backlog, stats, purge, mark, sweep *goredis.Script
}

func newScripts() scripts {
	return scripts{
		append:  goredis.NewScript(appendSrc),
		backlog: goredis.NewScript(backlogSrc),
		stats:   goredis.NewScript(statsSrc),
		purge:   goredis.NewScript(purgeSrc),
		mark:    goredis.NewScript(markSrc),
		sweep:   goredis.NewScript(sweepSrc),
	}
}
