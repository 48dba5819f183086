package redis

import goredis "github.com/redis/go-redis/v9"

// The store's logic runs in Lua so that every step touching one user is atomic on the server,
// whichever node sends it. Numbers: Lua numbers are doubles, exact up to 2^53; ids, counts and
// unix milliseconds stay far below that, and string.format('%d') prints them without exponent.
// Key layout: see rediskeys.Keys.User. Invariants every script keeps:
//   - a user's list holds its meta element and then consecutive ids f..n, two elements each;
//     f = n - (LLEN-1)/2 + 1, so the ids need not be stored;
//   - the list exists iff the user has a stored (perhaps expired, not yet swept) message; the
//     script that deletes it raises the floor to its last id first, and a new list starts above
//     the floor, so a user's ids strictly increase within an epoch;
//   - the cursor q only grows; ids at or below max(q, f-1) are out of the unread queue.

// prelude is shared by every script that touches a user's list.
const prelude = `
local function num(v) return tonumber(v) or 0 end
local function fmt(n) return string.format('%d', n) end
-- meta returns n (last id), q (cursor), f (first stored id), count, and mixed (true when a
-- message expires before one stored ahead of it); nil when there is no list.
local function meta(key)
  local m = redis.call('LINDEX', key, 0)
  if not m then return nil end
  local n, q, x = string.match(m, '^(%d+),(%d+),?(%d*)$')
  n, q = tonumber(n), tonumber(q)
  local count = (redis.call('LLEN', key) - 1) / 2
  local f = n - count + 1
  if q < f - 1 then q = f - 1 end
  return n, q, f, count, x == '1'
end
local function metaOf(n, q, mixed)
  local m = fmt(n) .. ',' .. fmt(q)
  if mixed then m = m .. ',1' end
  return m
end
local function setMeta(key, n, q, mixed) redis.call('LSET', key, 0, metaOf(n, q, mixed)) end
-- split parses a status "C,T[,D[,S[,A[,P]]]]" into a table of 6 strings ('' when absent).
local function split(s)
  local f = {}
  for v in string.gmatch(s .. ',', '([^,]*),') do f[#f+1] = v end
  for i = #f + 1, 6 do f[i] = '' end
  return f
end
local function join(f)
  local last = 6
  while last > 2 and f[last] == '' do last = last - 1 end
  return table.concat(f, ',', 1, last)
end
-- A status "X" is a tombstone: an expired message behind a longer-lived one, counted by the
-- sweeper and emptied; it stays only to keep the ids consecutive until it reaches the head.
local function expired(st, now) return st[1] == 'X' or tonumber(st[1]) + tonumber(st[2]) <= now end
local function expiresAt(st) return tonumber(st[1]) + tonumber(st[2]) end
-- statusIndex is the list index of id's status; its data follows it.
local function statusIndex(f, id) return 1 + 2 * (id - f) end
-- drop deletes the user's list after raising the floor to its last id.
local function drop(key, floorKey, expiryKey, user, n)
  if n > num(redis.call('GET', floorKey)) then redis.call('SET', floorKey, fmt(n)) end
  redis.call('DEL', key)
  redis.call('ZREM', expiryKey, user)
end
-- popOldest removes the k oldest messages, keeping the meta element first.
local function popOldest(key, k, n, q, mixed)
  if k <= 0 then return end
  redis.call('LPOP', key, 1 + 2 * k)
  redis.call('LPUSH', key, metaOf(n, q, mixed))
end
local function epochOf(key, candidate)
  local e = redis.call('GET', key)
  if not e then
    redis.call('SET', key, candidate)
    e = candidate
  end
  return e
end
`

// appendSrc stores one Append (or AppendOnce) call atomically. The "#!lua" shebang (Redis >= 7)
// makes Redis refuse the whole script up front when it is out of memory, instead of failing
// half-way through a multi-user publish.
//
// KEYS: one per draft (the user's list), then expiry, epoch, floor, the idempotency record
// ("" when the call has no key: the script then skips it), and the Web Push users and due keys
// (read only when ARGV[6] is set).
// ARGV[1] now (unix ms), ARGV[2] maxPerUser, ARGV[3] user channel prefix (empty: do not
// publish), ARGV[4] epoch candidate, ARGV[5] n, the number of distinct data values, ARGV[6]
// the Web Push delay in ms (empty: Web Push is off), ARGV[7..6+n] the data values, then 3 per
// draft: data index (1-based), ttl (ms), userId; then the idempotency fingerprint and window
// (ms).
// With Web Push on, a message whose user has a subscription gets its fan-out due push (see
// webpush.go) in the same atomic step.
// Returns {1, id..., trimmed} when stored; {2, fingerprint, results, body or false} when the
// idempotency record existed (nothing stored).
const appendSrc = `#!lua
` + prelude + `
local now = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local chprefix = ARGV[3]
local ndata = tonumber(ARGV[5])
local drafts = #KEYS - 6
local expiryKey, epochKey, floorKey, rec = KEYS[drafts+1], KEYS[drafts+2], KEYS[drafts+3], KEYS[drafts+4]
local pushUsers, pushDue, pushDelay = KEYS[drafts+5], KEYS[drafts+6], tonumber(ARGV[6])
local a = 6 + ndata
local nowstr = fmt(now)
if rec ~= '' and redis.call('EXISTS', rec) == 1 then
  local r = redis.call('HMGET', rec, 'f', 'r', 'b')
  return {2, r[1], r[2], r[3]}
end
epochOf(epochKey, ARGV[4])
local out = {1}
local results = {}
local trimmed = 0
for i = 1, drafts do
  local key = KEYS[i]
  local data = ARGV[6 + tonumber(ARGV[a+1])]
  local ttl = tonumber(ARGV[a+2])
  local user = ARGV[a+3]
  a = a + 3
  local n, q, f, count, mixed = meta(key)
  local fresh = n == nil
  if fresh then
    n = num(redis.call('GET', floorKey))
    q, count, mixed = n, 0, false
  elseif not mixed then
    -- Expiries along the list are non-decreasing unless a shorter ttl follows a longer one;
    -- the sweeper then has to look past the head.
    local tail = split(redis.call('LINDEX', key, -2))
    if tail[1] ~= 'X' and expiresAt(tail) > now + ttl then mixed = true end
  end
  local id = n + 1
  redis.call('RPUSH', key, nowstr .. ',' .. fmt(ttl), data)
  count = count + 1
  local k = 0
  if count > maxlen then k = count - maxlen end
  local first = id - count + 1 + k
  if q < first - 1 then q = first - 1 end
  if fresh then
    redis.call('LPUSH', key, metaOf(id, q, mixed))
  elseif k > 0 then
    popOldest(key, k, id, q, mixed)
  else
    setMeta(key, id, q, mixed)
  end
  trimmed = trimmed + k
  redis.call('ZADD', expiryKey, 'LT', now + ttl, user)
  if chprefix ~= '' then
    redis.call('PUBLISH', chprefix .. user, fmt(id) .. ':' .. nowstr .. ':' .. data)
  end
  if pushDelay and redis.call('SISMEMBER', pushUsers, user) == 1 then
    redis.call('ZADD', pushDue, 'NX', now + pushDelay, user .. ' ' .. fmt(id) .. ' * 0')
  end
  out[#out+1] = id
  results[#results+1] = user .. ' ' .. fmt(id)
end
out[#out+1] = trimmed
if rec ~= '' then
  local fp, window = ARGV[a+1], tonumber(ARGV[a+2])
  redis.call('HSET', rec, 'f', fp, 'r', table.concat(results, ' '))
  redis.call('PEXPIRE', rec, window)
end
return out
`

// headSrc: KEYS user list, epoch, floor. ARGV epoch candidate. Returns {epoch, last id}: the
// list's last id, or the floor for a user with no list (every id it ever had is at or below it).
const headSrc = prelude + `
local e = epochOf(KEYS[2], ARGV[1])
local n = meta(KEYS[1])
if n == nil then n = num(redis.call('GET', KEYS[3])) end
return {e, n}
`

// epochSrc: KEYS epoch. ARGV candidate. Returns the epoch, creating it when missing.
const epochSrc = prelude + `return epochOf(KEYS[1], ARGV[1])`

// backlogSrc: KEYS user list. ARGV after, since, pending ('1'/'0'), limit (0 = none), maxBytes
// (0 = none), now. Returns 3 strings per message: id, status, data. The message that takes the
// page's data to maxBytes or beyond is the page's last.
const backlogSrc = prelude + `
local n, q, f = meta(KEYS[1])
if n == nil then return {} end
local after, since = tonumber(ARGV[1]), tonumber(ARGV[2])
local pending = ARGV[3] == '1'
local limit, maxBytes, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lo = since
if pending and q < lo then lo = q end
if after > lo then lo = after end
if lo < f - 1 then lo = f - 1 end
local out, count, bytes = {}, 0, 0
local id = lo + 1
while id <= n do
  -- Small reads: a page may stop after any message, and each read copies the data it covers.
  local chunk = math.min(n - id + 1, 8)
  local start = statusIndex(f, id)
  local items = redis.call('LRANGE', KEYS[1], start, start + 2 * chunk - 1)
  for j = 1, #items, 2 do
    local cur = id + (j - 1) / 2
    local st = split(items[j])
    if not expired(st, now) and (cur > since or (pending and cur > q and st[3] ~= '1')) then
      local d = items[j+1]
      out[#out+1] = fmt(cur)
      out[#out+1] = items[j]
      out[#out+1] = d
      count = count + 1
      bytes = bytes + #d
      if limit > 0 and count >= limit then return out end
      if maxBytes > 0 and bytes >= maxBytes then return out end
    end
  end
  id = id + chunk
end
return out
`

// statusesSrc: KEYS user list. ARGV since, limit, now. Returns 3 strings per stored, unexpired
// message with id > since, oldest first: id, status, data.
const statusesSrc = prelude + `
local n, q, f = meta(KEYS[1])
if n == nil then return {} end
local since, limit, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id = since + 1
if id < f then id = f end
local out, count = {}, 0
while id <= n and count < limit do
  local chunk = math.min(n - id + 1, limit - count, 32)
  local start = statusIndex(f, id)
  local items = redis.call('LRANGE', KEYS[1], start, start + 2 * chunk - 1)
  for j = 1, #items, 2 do
    if not expired(split(items[j]), now) and count < limit then
      out[#out+1] = fmt(id + (j - 1) / 2)
      out[#out+1] = items[j]
      out[#out+1] = items[j+1]
      count = count + 1
    end
  end
  id = id + chunk
end
return out
`

// statsSrc: KEYS user list. ARGV now. Returns {stored, pending}. It reads statuses one by one
// (LINDEX), never the data.
const statsSrc = prelude + `
local n, q, f, count = meta(KEYS[1])
if n == nil then return {0, 0} end
local now = tonumber(ARGV[1])
local stored, pend = 0, 0
for id = f, n do
  local st = split(redis.call('LINDEX', KEYS[1], statusIndex(f, id)))
  if not expired(st, now) then
    stored = stored + 1
    if id > q and st[3] ~= '1' then pend = pend + 1 end
  end
end
return {stored, pend}
`

// purgeSrc: KEYS user list, expiry, floor. ARGV now, userId. Deletes the user's list (the floor
// keeps its ids); returns how many unexpired messages there were.
const purgeSrc = prelude + `
local n, q, f = meta(KEYS[1])
if n == nil then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
local now, stored = tonumber(ARGV[1]), 0
for id = f, n do
  if not expired(split(redis.call('LINDEX', KEYS[1], statusIndex(f, id))), now) then stored = stored + 1 end
end
drop(KEYS[1], KEYS[3], KEYS[2], ARGV[2], n)
return stored
`

// markSrc: KEYS user list. ARGV[1] now (unix ms), then triples of kind, id, at (unix ms), in the
// order they were made.
// Kinds: 'w' written, 'W' written and out of the queue (version 1), 'a' acknowledged (also sent,
// and out of the queue), 'p' pushed. A timestamp is set only once; ids that are not stored are
// ignored. Then the cursor moves over every id right above it that left the queue (or expired).
// Returns {cursor, messages that became sent, acked, pushed}.
const markSrc = prelude + `
local n, q, f, count, mixed = meta(KEYS[1])
if n == nil then return {0, 0, 0, 0} end
local sent, acked, pushed = 0, 0, 0
for i = 2, #ARGV, 3 do
  local kind, id, at = ARGV[i], tonumber(ARGV[i+1]), tonumber(ARGV[i+2])
  if id and id >= f and id <= n then
    local idx = statusIndex(f, id)
    local old = redis.call('LINDEX', KEYS[1], idx)
    local st = split(old)
    if st[1] == 'X' then st = nil end
  if st then
    -- Times are kept as ms after createdAt, negative when a node's clock is behind.
    local d = at - tonumber(st[1])
    if kind ~= 'p' and st[4] == '' then st[4] = fmt(d); sent = sent + 1 end
    if kind == 'a' and st[5] == '' then st[5] = fmt(d); acked = acked + 1 end
    if kind == 'p' and st[6] == '' then st[6] = fmt(d); pushed = pushed + 1 end
    if kind == 'W' or kind == 'a' then st[3] = '1' end
    local new = join(st)
    if new ~= old then redis.call('LSET', KEYS[1], idx, new) end
  end
  end
end
local old = q
local now = tonumber(ARGV[1])
while q < n do
  local st = split(redis.call('LINDEX', KEYS[1], statusIndex(f, q + 1)))
  if st[3] ~= '1' and not expired(st, now) then break end
  q = q + 1
end
if q ~= old then setMeta(KEYS[1], n, q, mixed) end
return {q, sent, acked, pushed}
`

// sweepSrc: KEYS user list, expiry, floor. ARGV now, maxPerUser, userId. Drops the messages
// beyond maxPerUser and the expired head of the list; when expiries are mixed, also empties the
// expired messages behind the head into tombstones (counted once, popped when they reach the
// head). Deletes the list (raising the floor) when nothing is left, and re-indexes the user by
// the earliest expiry left. Returns {expired, trimmed}.
const sweepSrc = prelude + `
local n, q, f, count, mixed = meta(KEYS[1])
if n == nil then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {0, 0}
end
local now, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2])
local trimmed = 0
if count > maxlen then trimmed = count - maxlen end
local expiredN, gone, nextExp = 0, trimmed, nil
while gone < count do
  local st = split(redis.call('LINDEX', KEYS[1], statusIndex(f, f + gone)))
  if not expired(st, now) then
    nextExp = expiresAt(st)
    break
  end
  if st[1] ~= 'X' then expiredN = expiredN + 1 end
  gone = gone + 1
end
if nextExp ~= nil and mixed then
  -- Look past the head: tombstone what expired, find the earliest expiry left, and whether
  -- the expiries left are in order again.
  local prev, ordered = nextExp, true
  for id = f + gone + 1, n do
    local idx = statusIndex(f, id)
    local st = split(redis.call('LINDEX', KEYS[1], idx))
    if st[1] ~= 'X' then
      if expired(st, now) then
        redis.call('LSET', KEYS[1], idx, 'X')
        redis.call('LSET', KEYS[1], idx + 1, '')
        expiredN = expiredN + 1
      else
        local e = expiresAt(st)
        if e < nextExp then nextExp = e end
        if e < prev then ordered = false end
        prev = e
      end
    end
  end
  mixed = not ordered
end
if nextExp == nil then
  drop(KEYS[1], KEYS[3], KEYS[2], ARGV[3], n)
else
  local first = f + gone
  if q < first - 1 then q = first - 1 end
  if gone > 0 then
    popOldest(KEYS[1], gone, n, q, mixed)
  else
    setMeta(KEYS[1], n, q, mixed)
  end
  redis.call('ZADD', KEYS[2], nextExp, ARGV[3])
end
return {expiredN, trimmed}
`

// statusSrc: KEYS user list. ARGV id, now. Returns {status, data}, or {} when not stored.
const statusSrc = prelude + `
local n, q, f = meta(KEYS[1])
local id = tonumber(ARGV[1])
if n == nil or id < f or id > n then return {} end
local idx = statusIndex(f, id)
local items = redis.call('LRANGE', KEYS[1], idx, idx + 1)
if expired(split(items[1]), tonumber(ARGV[2])) then return {} end
return items
`

// probeSrc: KEYS probe. ARGV payload. A write through the scripting path, refused up front
// (the shebang) when Redis is out of memory.
const probeSrc = `#!lua
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
return 1
`

// beginSrc: KEYS record, claim. ARGV token, lease (ms). Returns {'busy'} while another request
// holds the claim, {'done', f, r, b or false} when a record exists (b is false when the request
// that stored it never finished: its caller saw a failure), else takes the claim: {'new'}.
const beginSrc = `
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy'} end
local r = redis.call('HMGET', KEYS[1], 'f', 'r', 'b')
if r[1] then return {'done', r[1], r[2], r[3]} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]))
return {'new'}
`

// finishSrc: KEYS record, claim. ARGV token, body. Saves the body on the record (if the record
// exists) and releases the claim if it is still ours.
const finishSrc = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'b', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`

// releaseSrc: KEYS claim. ARGV token. Releases the claim if it is still ours.
const releaseSrc = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`

// scripts are the store's Lua scripts; EVALSHA first, the source when Redis lost its cache.
type scripts struct {
	append, head, epoch, backlog, statuses, status, stats, purge, mark, sweep, probe *goredis.Script
	begin, finish, release                                                           *goredis.Script
}

func newScripts() scripts {
	return scripts{
		append:   goredis.NewScript(appendSrc),
		head:     goredis.NewScript(headSrc),
		epoch:    goredis.NewScript(epochSrc),
		backlog:  goredis.NewScript(backlogSrc),
		statuses: goredis.NewScript(statusesSrc),
		status:   goredis.NewScript(statusSrc),
		stats:    goredis.NewScript(statsSrc),
		purge:    goredis.NewScript(purgeSrc),
		mark:     goredis.NewScript(markSrc),
		sweep:    goredis.NewScript(sweepSrc),
		probe:    goredis.NewScript(probeSrc),
		begin:    goredis.NewScript(beginSrc),
		finish:   goredis.NewScript(finishSrc),
		release:  goredis.NewScript(releaseSrc),
	}
}
