"""The Redis store's Lua scripts: each ledger operation runs atomically inside Redis.

Why Lua: ``reserve`` must read every window, counter and the wallet, decide, and then write,
with no other gateway process in between (SPEC §7: spend exact under concurrency), and it
must do so in one round trip on the hot path. The scripts read the store's own clock
(``TIME``) so that every gateway process uses one clock, whatever its host's.

Every key a script touches is ``<prefix>…`` for one workspace prefix (``redis_keys``), passed
as the first ARGV; ``KEYS[1]`` names one of them so that a cluster client routes the call to
the prefix's slot. Amounts travel as decimal strings and are written back with ``%d``:
Lua 5.1 numbers are doubles (exact up to 2^53 micro-dollars, about 9 billion USD), and
a string never turns into ``1e+15`` on the way to ``HINCRBY``.
"""

from __future__ import annotations

from gateway.store.ledger import ALERT_LEVELS, WINDOW_MS

_COMMON = f"""
local WINDOW = {WINDOW_MS}
local function int(n) return string.format('%d', n) end
local function num(v) return tonumber(v) or 0 end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Give back what a reservation held (never below zero), and forget it.
local function release(p, id)
  local raw = redis.call('HGET', p .. 'resv', id)
  if not raw then return end
  local held = cjson.decode(raw)
  for _, b in ipairs(held.b) do
    local key = p .. 'budget:' .. b[1]
    local left = num(redis.call('HGET', key, 'reserved')) - tonumber(b[2])
    redis.call('HSET', key, 'reserved', int(math.max(0, left)))
  end
  if held.w then
    local key = p .. 'wallet'
    local left = num(redis.call('HGET', key, 'reserved')) - tonumber(held.w)
    redis.call('HSET', key, 'reserved', int(math.max(0, left)))
  end
  redis.call('HDEL', p .. 'resv', id)
  redis.call('ZREM', p .. 'resv:exp', id)
end
"""

RESERVE = (
    _COMMON
    + """
-- Forget window entries older than the window: O(expired), with their tokens off the sum.
local function window(p, lim, now)
  local z, h, s = p .. 'win:' .. lim, p .. 'wtok:' .. lim, p .. 'wsum:' .. lim
  local edge = now - WINDOW
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', edge)
  if #old > 0 then
    local gone = 0
    for i = 1, #old, 256 do
      local chunk = {unpack(old, i, math.min(i + 255, #old))}
      local toks = redis.call('HMGET', h, unpack(chunk))
      for j = 1, #chunk do gone = gone + num(toks[j]) end
      redis.call('HDEL', h, unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', edge)
    redis.call('DECRBY', s, int(gone))
  end
  local count = redis.call('ZCARD', z)
  local tokens = num(redis.call('GET', s))
  local reset = 0
  if count > 0 then
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    reset = math.max(1, tonumber(first[2]) + WINDOW - now)
  elseif tokens ~= 0 then
    redis.call('DEL', s)
    tokens = 0
  end
  return {count, tokens, reset}
end

local p, id, ttl, holds, ws = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local now = clock()
local i = 6

-- 1. Expired reservations give their budget and wallet holds back.
local expired = redis.call('ZRANGEBYSCORE', p .. 'resv:exp', '-inf', now)
for _, rid in ipairs(expired) do release(p, rid) end

local budgets, limits = {}, {}
local nb = tonumber(ARGV[i]); i = i + 1
for b = 1, nb do
  budgets[b] = {ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
                ARGV[i + 4] == '1', ARGV[i + 3]}
  i = i + 5
end
local wallet = ARGV[i]; i = i + 1
local nl = tonumber(ARGV[i]); i = i + 1
for l = 1, nl do
  limits[l] = {ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
               ARGV[i + 3]}
  i = i + 4
end

local kind, ref, retry = '', '', 0
-- 2. Rate windows.
local wins = {}
for l, lim in ipairs(limits) do
  local w = window(p, lim[1], now)
  wins[l] = w
  if kind == '' then
    local wait = w[3]
    if wait == 0 then wait = WINDOW end
    if lim[2] and w[1] >= lim[2] then
      kind, ref, retry = 'rpm', lim[1], wait
    elseif lim[3] and w[2] + lim[4] > lim[3] then
      kind, ref, retry = 'tpm', lim[1], wait
    end
  end
end
-- 3. Budgets (settled spend is reported whatever the outcome).
local spends = {}
for b, hold in ipairs(budgets) do
  local v = redis.call('HMGET', p .. 'budget:' .. hold[2], 'spend', 'reserved')
  local used = num(v[1]) + num(v[2])
  spends[b] = num(v[1])
  if kind == '' and hold[5] and (used >= hold[3] or used + hold[4] > hold[3]) then
    kind, ref = 'budget', hold[1]
  end
end
-- 4. The wallet, when prepaid.
if kind == '' and wallet ~= '' then
  local v = redis.call('HMGET', p .. 'wallet', 'balance', 'reserved', 'tier')
  local free = num(v[1]) - num(v[2])
  if v[3] == 'prepaid' and (free <= 0 or free - tonumber(wallet) < 0) then
    kind, ref = 'wallet', ws
  end
end
-- 5. Granted: window entries, holds, and the reservation itself.
if kind == '' then
  for l, lim in ipairs(limits) do
    local z, h, s = p .. 'win:' .. lim[1], p .. 'wtok:' .. lim[1], p .. 'wsum:' .. lim[1]
    local prev = redis.call('HGET', h, id)
    if prev then redis.call('DECRBY', s, prev) end
    redis.call('ZADD', z, now, id)
    redis.call('HSET', h, id, lim[5])
    redis.call('INCRBY', s, lim[5])
    for _, k in ipairs({z, h, s}) do redis.call('PEXPIRE', k, WINDOW + 1000) end
    local w = wins[l]
    local reset = w[3]
    if reset == 0 then reset = WINDOW end
    wins[l] = {w[1] + 1, w[2] + lim[4], reset}
  end
  for _, hold in ipairs(budgets) do
    redis.call('HINCRBY', p .. 'budget:' .. hold[2], 'reserved', hold[6])
  end
  if wallet ~= '' then redis.call('HINCRBY', p .. 'wallet', 'reserved', wallet) end
  redis.call('HSET', p .. 'resv', id, holds)
  redis.call('ZADD', p .. 'resv:exp', now + ttl, id)
end

local out = {kind == '' and 1 or 0, kind, ref, retry}
for b = 1, nb do out[#out + 1] = spends[b] end
for l = 1, nl do
  for k = 1, 3 do out[#out + 1] = wins[l][k] end
end
return out
"""
)

_LEVELS = ", ".join(str(level) for level in ALERT_LEVELS)

COMMIT = (
    _COMMON
    + f"""
-- A batch of one workspace's settlements in one call (ARGV[2] of them, each laid out as
-- ``redis_ledger.settlement_args``): one call per workspace per batch, on a cluster as on one
-- server. Exactly once per request id: a replayed settlement finds its record and is skipped.
local p, n = ARGV[1], tonumber(ARGV[2])
local now = clock()
local alerts = {{}}
local levels = {{{_LEVELS}}}
local i = 3
for _ = 1, n do
  local rid, record, created, resv, wallet = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
                                             ARGV[i + 4]
  local b0 = i + 6
  local nb = tonumber(ARGV[i + 5])
  local t0 = b0 + 4 * nb + 1
  local nt = tonumber(ARGV[t0 - 1])
  i = t0 + 2 * nt
  if redis.call('HSETNX', p .. 'usage', rid, record) == 1 then
    local seq = redis.call('INCR', p .. 'seq')
    local member = created .. '\\0' .. string.format('%016d', seq) .. rid
    redis.call('ZADD', p .. 'usage:time', 0, member)
    if resv ~= '' then release(p, resv) end

    for b = 0, nb - 1 do
      local k = b0 + 4 * b
      local budget, counter, amount = ARGV[k], ARGV[k + 1], ARGV[k + 2]
      local limit = tonumber(ARGV[k + 3])
      local key = p .. 'budget:' .. counter
      local after = redis.call('HINCRBY', key, 'spend', amount)
      local fired = num(redis.call('HGET', key, 'alerts'))
      for bit, level in ipairs(levels) do
        local flag = 2 ^ (bit - 1)
        if math.floor(fired / flag) % 2 == 0 and after * 100 >= level * limit then
          fired = fired + flag
          for _, v in ipairs({{budget, counter, level, after, limit}}) do
            alerts[#alerts + 1] = v
          end
        end
      end
      redis.call('HSET', key, 'alerts', int(fired))
    end

    if tonumber(wallet) ~= 0 then
      local v = redis.call('HMGET', p .. 'wallet', 'balance', 'tier')
      if v[2] == 'prepaid' then
        local left = math.max(0, num(v[1]) - tonumber(wallet))
        redis.call('HSET', p .. 'wallet', 'balance', int(left))
      end
    end

    for t = 0, nt - 1 do
      local lim, tokens = ARGV[t0 + 2 * t], ARGV[t0 + 2 * t + 1]
      if resv ~= '' then
        local at = redis.call('ZSCORE', p .. 'win:' .. lim, resv)
        if at and tonumber(at) > now - WINDOW then
          local h, s = p .. 'wtok:' .. lim, p .. 'wsum:' .. lim
          local prev = num(redis.call('HGET', h, resv))
          redis.call('HSET', h, resv, tokens)
          redis.call('INCRBY', s, int(tonumber(tokens) - prev))
        end
      end
    end
  end
end
return alerts
"""
)

ADD_CREDITS = """
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
redis.call('HSET', KEYS[1], 'tier', 'prepaid')
return redis.call('HMGET', KEYS[1], 'balance', 'reserved')
"""

INSERT = """
-- An ordered record: refused (0) when the id exists, else stored with the next sequence.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return 1
"""

REPLACE = """
-- Replace a record only if it still exists (an update never resurrects a deleted one).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

LIST = """
-- An ordered collection's records, oldest first (ids without a record are skipped).
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local out = {}
for i = 1, #ids, 256 do
  local values = redis.call('HMGET', KEYS[1], unpack(ids, i, math.min(i + 255, #ids)))
  for _, v in ipairs(values) do
    if v then out[#out + 1] = v end
  end
end
return out
"""

EXCHANGE_HEALTH = """
-- Publish this process's snapshot, forget expired ones, and return all (field, value, ...).
-- KEYS: data hash, expiry zset; ARGV: process id, snapshot, now, this snapshot's expiry.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
for i = 1, #stale, 256 do
  local chunk = {unpack(stale, i, math.min(i + 255, #stale))}
  redis.call('HDEL', KEYS[1], unpack(chunk))
  redis.call('ZREM', KEYS[2], unpack(chunk))
end
return redis.call('HGETALL', KEYS[1])
"""

DELETE = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""
