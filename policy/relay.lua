-- SPDX-License-Identifier: BSD-2-Clause
-- relay.lua - the one server-side script of relaymilter.
--
-- ARGV[1] selects the operation. Every operation is one round trip and runs
-- atomically inside Redis, which is what makes N milters on N hosts share one
-- exact quota: no other client can read or write between our check and charge.
--
-- lookup  KEYS[1] = PREFIX.."sasl", KEYS[2] = PREFIX.."limits:"..FALLBACK
--         ARGV[2] = SASL login, canonical ("" when none),
--         ARGV[3] = PREFIX.."limits:",
--         ARGV[4] = sender domain (canonical, "" for none),
--         ARGV[5] = PREFIX.."domain:", ARGV[6] = blocked-domains set key ("":
--         not wanted this time), ARGV[7] = the most members to return,
--         ARGV[8] = characters no customer name may hold, ARGV[9..] = the
--         prefixes reserved for relaymilter's own names (identity.h)
--         -> { customer-from-sasl-hash or "", garbage-flag, { field, value, ... },
--              owned-level or "", customer-is-member, blocked-status (0 not
--              asked, 1 here, 2 too large or wrong type), { blocked... },
--              bad-mapping (1: the hash names a customer that may not be one;
--              its name is the first element, and the fallback applies) }
--         The limits and domain keys are chosen here (the customer may come
--         from the sasl hash); they are not declared, which Redis Cluster would
--         refuse: the supported topology is one primary, replicas, Sentinel.
--
-- charge  KEYS[i] = counter hash of one (subject, window)
--         ARGV[2] = recipients of the message
--         ARGV[5i-2 .. 5i+2] = window ms, message limit, recipient limit (-1:
--         not limited), and the two limits' field names, for KEYS[i]
--         then the event to record if refused: events stream key ("" none),
--         MAXLEN, queue id, customer, login, sender, recipients, action
--         -> { 1, now_ms } admitted and charged, or
--            { 0, i, metric ("m"|"r"), retry_ms } refused, nothing charged
--
-- refund  as charge, but after the per-key arguments only the charge time;
--         gives back what that charge took, if its buckets are still there.
--
-- Counter hash (sliding window counter): e = number of the current fixed
-- window (floor(now / W)), m / r = messages / recipients in it, pm / pr =
-- those of the window before. The estimate over the last W is
--     pm * (1 - f) + m     (f = elapsed fraction of the current window)
-- and each key expires at the end of the window after its current one, i.e.
-- within 2 W, once nothing more can depend on it.

local op = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The most specific suffix of domain with a non-empty owner set decides; a
-- set of the wrong type counts as no owners (and is reported as garbage).
local function owners(domain, prefix, customer)
  local d = domain
  while d and d ~= '' do
    local key = prefix .. d
    local n = redis.pcall('SCARD', key)
    if type(n) == 'number' and n > 0 then
      return d, redis.call('SISMEMBER', key, customer)
    end
    local dot = string.find(d, '.', 1, true)
    d = dot and string.sub(d, dot + 1) or nil
  end
  return '', 0
end

-- A customer name the sasl hash may hold: none of the forbidden characters,
-- no reserved prefix, so a hash entry can never name "ip:..." or "sasl:...".
local function name_ok(c)
  for i = 1, #ARGV[8] do
    if string.find(c, string.sub(ARGV[8], i, i), 1, true) then return false end
  end
  for i = 9, #ARGV do
    if string.sub(c, 1, #ARGV[i]) == ARGV[i] then return false end
  end
  return true
end

if op == 'lookup' then
  local customer = ''
  local limkey = KEYS[2]
  local garbage, badmap = 0, 0
  if ARGV[2] ~= '' then
    local c = redis.pcall('HGET', KEYS[1], ARGV[2])
    if type(c) == 'table' and c.err then
      garbage = 1
    elseif c and c ~= '' and not name_ok(c) then
      customer, badmap = c, 1
    elseif c and c ~= '' then
      customer = c
      limkey = ARGV[3] .. c
    end
  end
  local fields = redis.pcall('HGETALL', limkey)
  if fields.err then
    garbage = 1
    fields = {}
  end
  local who = badmap == 0 and customer ~= '' and customer
    or string.sub(KEYS[2], #ARGV[3] + 1)
  local level, member = owners(ARGV[4], ARGV[5], who)
  local bstatus, blocked = 0, {}
  if ARGV[6] ~= '' then
    local n = redis.pcall('SCARD', ARGV[6])
    if type(n) ~= 'number' or n > tonumber(ARGV[7]) then
      bstatus = 2
    else
      bstatus, blocked = 1, redis.call('SMEMBERS', ARGV[6])
    end
  end
  return { customer, garbage, fields, level, member, bstatus, blocked, badmap }
end

-- A finite count >= 0, or nil. Redis's Lua reads "nan" and "inf" as numbers;
-- every comparison with NaN is false, so they must be caught here or they
-- would admit everything.
local function count(x)
  local n = tonumber(x)
  if n and n == n and n >= 0 and n < math.huge then return n end
  return nil
end

-- Why the charge is written the way it is: it runs for every message, and
-- Redis runs one script at a time, so its cost is the ceiling of every relay
-- front-end sharing this Redis. Per key it makes one HMGET and one HSET and
-- keeps its state in locals and one flat table (no table per key, each
-- value converted once); within a window it writes back only the two counts
-- that changed. The commands themselves are cheap; the Lua around them and
-- each number Redis must format are what a call costs.

-- One counter hash: ok, then e, m, r, pm, pr as stored (e false when absent,
-- as HMGET gives a missing field to Lua).
-- Anything that is not a count (text, NaN, a negative number, a key of
-- another type) makes it not ok: the caller refuses and lets the key expire
-- within two windows. Bad data never lifts a limit.
local function load(key)
  local v = redis.pcall('HMGET', key, 'e', 'm', 'r', 'pm', 'pr')
  if v.err then return false end
  for j = 1, 5 do
    local x = v[j]
    if x then
      x = count(x)
      if not x then return false end
      v[j] = x
    elseif j > 1 then
      v[j] = 0
    end
  end
  return true, v[1], v[2], v[3], v[4], v[5]
end

-- The counts as of window number epoch: the stored window if it is this
-- one, its counts as the previous window's if it is the one before, else
-- nothing.
local function as_of(epoch, e, m, r, pm, pr)
  if e == epoch then return m, r, pm, pr end
  if e == epoch - 1 then return 0, 0, m, r end
  return 0, 0, 0, 0
end

-- How long until cost more fits under lim, given the window state: first the
-- previous window's share decays; if the current window alone is too full,
-- wait into the next window, where the current one becomes the previous.
local function retry_after(w, f, prev, cur, cost, lim)
  if cost > lim then return w end
  if cur + cost <= lim then
    return math.ceil(((1 - (lim - cur - cost) / prev) - f) * w)
  end
  return math.ceil((1 - f) * w + (1 - (lim - cost) / cur) * w)
end

-- An over-limit message, for the events stream: support's first stop.
local function record(i, metric, now)
  local e = 5 * #KEYS + 3
  if ARGV[e] == '' or tonumber(ARGV[e + 1]) == 0 then return end
  redis.call('XADD', ARGV[e], 'MAXLEN', '~', ARGV[e + 1], '*',
    'time', math.floor(now / 1000), 'queue_id', ARGV[e + 2], 'customer', ARGV[e + 3],
    'login', ARGV[e + 4], 'sender', ARGV[e + 5], 'recipients', ARGV[e + 6],
    'reason', ARGV[5 * i + (metric == 'm' and 1 or 2)], 'action', ARGV[e + 7])
end

local n = tonumber(ARGV[2])

if op == 'charge' then
  local now = now_ms()
  -- per key, from 7i-6: window, epoch, stored e, m, r, pm, pr as of epoch
  local st = {}
  for i = 1, #KEYS do
    local a = 5 * i - 2
    local w, lm, lr = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local epoch = math.floor(now / w)
    local ok, e, m, r, pm, pr = load(KEYS[i])
    if not ok then
      redis.call('PEXPIREAT', KEYS[i], (epoch + 2) * w)
      local metric = lm >= 0 and 'm' or 'r'
      record(i, metric, now)
      return { 0, i, metric, (epoch + 2) * w - now }
    end
    m, r, pm, pr = as_of(epoch, e, m, r, pm, pr)
    local f = (now % w) / w
    local metric, retry
    if lm >= 0 and pm * (1 - f) + m + 1 > lm then
      metric, retry = 'm', retry_after(w, f, pm, m, 1, lm)
    elseif lr >= 0 and pr * (1 - f) + r + n > lr then
      metric, retry = 'r', retry_after(w, f, pr, r, n, lr)
    end
    if metric then
      record(i, metric, now)
      return { 0, i, metric, retry }
    end
    local b = 7 * i - 6
    st[b], st[b + 1], st[b + 2], st[b + 3], st[b + 4], st[b + 5], st[b + 6] =
      w, epoch, e, m, r, pm, pr
  end
  for i = 1, #KEYS do
    local b = 7 * i - 6
    local w, epoch = st[b], st[b + 1]
    if st[b + 2] == epoch then
      redis.call('HSET', KEYS[i], 'm', st[b + 3] + 1, 'r', st[b + 4] + n)
    else
      redis.call('HSET', KEYS[i], 'e', epoch, 'm', st[b + 3] + 1, 'r', st[b + 4] + n,
        'pm', st[b + 5], 'pr', st[b + 6])
      redis.call('PEXPIREAT', KEYS[i], (epoch + 2) * w)
    end
  end
  return { 1, now }
end

if op == 'refund' then
  -- Give back what the charge at ARGV[5 * #KEYS + 3] took, to the bucket it
  -- went into, whichever slot that sits in now; garbage is left alone (it
  -- expires by itself).
  local charged = tonumber(ARGV[5 * #KEYS + 3])
  for i = 1, #KEYS do
    local epoch = math.floor(charged / tonumber(ARGV[5 * i - 2]))
    local ok, e, m, r, pm, pr = load(KEYS[i])
    if ok and e == epoch then
      redis.call('HSET', KEYS[i], 'm', math.max(m - 1, 0), 'r', math.max(r - n, 0))
    elseif ok and e == epoch + 1 then
      redis.call('HSET', KEYS[i], 'pm', math.max(pm - 1, 0), 'pr', math.max(pr - n, 0))
    end
  end
  return { 1, charged }
end

return redis.error_reply('relaymilter: unknown operation')
