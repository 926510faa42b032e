#!lua
-- SPDX-License-Identifier: BSD-2-Clause
-- relay.lua - the quota script of relaymilter: charge, refund, usage.
--
-- ARGV[1] selects the operation. Every operation is one round trip and runs
-- atomically inside Redis, which is what makes N milters on N hosts share one
-- exact quota: no other client can read or write between our check and charge.
-- The counters of one message all carry its customer's hash tag (keys.h), so
-- on a Redis Cluster they share one slot and this stays one call on one node.
--
-- charge  KEYS[1..NC] = counter hash of one (subject, window) each;
--         KEYS[NC+1], when present, the events stream to record a refusal in
--         (one primary; on a cluster the stream lives in another slot and the
--         store writes the event with a call of its own)
--         ARGV[2] = recipients of the message, ARGV[3] = NC
--         ARGV[5i-1 .. 5i+3] = window ms, message limit, recipient limit (-1:
--         not limited), and the two limits' field names, for KEYS[i]
--         then the event to record if refused: MAXLEN, queue id, customer,
--         login, sender, recipients, action
--         -> { 1, now_ms } admitted and charged, or
--            { 0, i, metric ("m"|"r"), retry_ms } refused, nothing charged
--
-- refund  as charge without the events stream, and after the per-key
--         arguments only the charge time; gives back what that charge took,
--         if its buckets are still there.
--
-- usage   KEYS[i] = counter hash of one (subject, window); reads, never writes
--         ARGV[1 + i] = window ms of KEYS[i]
--         -> { now_ms, { garbage, present, est_m, est_r, m, r, pm, pr,
--                        decay_m_ms, decay_r_ms } per key }
--         garbage 1: the hash holds something that is not a count, which the
--         charge refuses (the counter is full until the key goes); present 1:
--         the key exists. est_m / est_r are the estimates over the last W as
--         the charge computes them (estimate below), and m r pm pr the counts
--         as of the current window; all six as text, since Redis would cut a
--         Lua number in a reply to an integer. decay_*_ms: how long until that
--         count has left the window entirely (0: nothing counted; -1: garbage).
--         relaymilter-ctl usage prints this; the arithmetic lives here only.
--
-- Counter hash (sliding window counter): e = number of the current fixed
-- window (floor(now / W)), m / r = messages / recipients in it, pm / pr =
-- those of the window before. The estimate over the last W is
--     pm * (1 - f) + m     (f = elapsed fraction of the current window)
-- and each key expires at the end of the window after its current one, i.e.
-- within 2 W, once nothing more can depend on it.
--
-- Strict keys. The first line is a Redis 7 shebang ("Eval scripts", "Script
-- flags" in the Redis documentation): with it, on a cluster, a key outside
-- the declared keys' slot is an error even on the same node (without it Redis
-- runs such a command silently). Redis still lets a script reach an
-- undeclared key of the same slot, and a server that is no cluster checks
-- nothing, so every keyed command goes through call() / try() below, which
-- refuse any key that is not in KEYS: a key this script was not given is an
-- error in every topology, never a silent wrong answer. (Verified on Redis
-- 7.0; test/integration/it_script.c keeps it so.)
local declared = {}
for i = 1, #KEYS do declared[KEYS[i]] = true end

local function keyed(f, cmd, key, ...)
  if not declared[key] then
    error('relaymilter: ' .. cmd .. ' on an undeclared key')
  end
  return f(cmd, key, ...)
end

local function call(cmd, key, ...) return keyed(redis.call, cmd, key, ...) end
local function try(cmd, key, ...) return keyed(redis.pcall, cmd, key, ...) end
-- end of the strict header

local op = ARGV[1]
local NC = tonumber(ARGV[3]) -- charge, refund: the counters among KEYS

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
  local v = try('HMGET', key, 'e', 'm', 'r', 'pm', 'pr')
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

-- The window to judge in, and the elapsed fraction of it. A counter stored
-- in a later window than the clock's (a clock that stepped back: a failover
-- to a server whose clock is behind, or a local caller's late stamp) is
-- judged in its own window from that window's start, the strictest reading:
-- taking the clock's would find neither window, count nothing and, on the
-- write, lose both windows' counts, lifting the limit.
local function window_of(now, w, e)
  local epoch = math.floor(now / w)
  if e and e > epoch then return e, 0 end
  return epoch, (now % w) / w
end

-- The sliding estimate over the last window: the previous window's count
-- weighted by the share of it still inside, plus the current window's count.
-- The charge judges by it and relaymilter-ctl usage reports it.
local function estimate(prev, cur, f)
  return prev * (1 - f) + cur
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
  local e = 5 * NC + 4
  if #KEYS == NC or tonumber(ARGV[e]) == 0 then return end
  call('XADD', KEYS[NC + 1], 'MAXLEN', '~', ARGV[e], '*',
    'time', math.floor(now / 1000), 'queue_id', ARGV[e + 1], 'customer', ARGV[e + 2],
    'login', ARGV[e + 3], 'sender', ARGV[e + 4], 'recipients', ARGV[e + 5],
    'reason', ARGV[5 * i + (metric == 'm' and 2 or 3)], 'action', ARGV[e + 6])
end

local n = tonumber(ARGV[2])

if op == 'charge' then
  local now = now_ms()
  -- per key, from 7i-6: window, epoch, stored e, m, r, pm, pr as of epoch
  local st = {}
  for i = 1, NC do
    local a = 5 * i - 1
    local w, lm, lr = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local ok, e, m, r, pm, pr = load(KEYS[i])
    if not ok then
      local epoch = math.floor(now / w)
      call('PEXPIREAT', KEYS[i], (epoch + 2) * w)
      local metric = lm >= 0 and 'm' or 'r'
      record(i, metric, now)
      return { 0, i, metric, (epoch + 2) * w - now }
    end
    local epoch, f = window_of(now, w, e)
    m, r, pm, pr = as_of(epoch, e, m, r, pm, pr)
    local metric, retry
    if lm >= 0 and estimate(pm, m, f) + 1 > lm then
      metric, retry = 'm', retry_after(w, f, pm, m, 1, lm)
    elseif lr >= 0 and estimate(pr, r, f) + n > lr then
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
  for i = 1, NC do
    local b = 7 * i - 6
    local w, epoch = st[b], st[b + 1]
    if st[b + 2] == epoch then
      call('HSET', KEYS[i], 'm', st[b + 3] + 1, 'r', st[b + 4] + n)
    else
      call('HSET', KEYS[i], 'e', epoch, 'm', st[b + 3] + 1, 'r', st[b + 4] + n,
        'pm', st[b + 5], 'pr', st[b + 6])
      call('PEXPIREAT', KEYS[i], (epoch + 2) * w)
    end
  end
  return { 1, now }
end

if op == 'refund' then
  -- Give back what the charge at ARGV[5 * NC + 4] took, to the bucket it
  -- went into, whichever slot that sits in now; garbage is left alone (it
  -- expires by itself).
  local charged = tonumber(ARGV[5 * NC + 4])
  for i = 1, NC do
    local epoch = math.floor(charged / tonumber(ARGV[5 * i - 1]))
    local ok, e, m, r, pm, pr = load(KEYS[i])
    if ok and e == epoch then
      call('HSET', KEYS[i], 'm', math.max(m - 1, 0), 'r', math.max(r - n, 0))
    elseif ok and e == epoch + 1 then
      call('HSET', KEYS[i], 'pm', math.max(pm - 1, 0), 'pr', math.max(pr - n, 0))
    end
  end
  return { 1, charged }
end

-- How long until what is counted as of epoch has left the window: a count
-- in the current window stays for two windows from its start, one in the
-- previous window until the current one ends.
local function decay_ms(w, epoch, now, cur, prev)
  if cur > 0 then return (epoch + 2) * w - now end
  if prev > 0 then return (epoch + 1) * w - now end
  return 0
end

local function text(x)
  return string.format('%.17g', x)
end

if op == 'usage' then
  local now = now_ms()
  local out = { now }
  for i = 1, #KEYS do
    local w = tonumber(ARGV[i + 1])
    local present = call('EXISTS', KEYS[i])
    local ok, e, m, r, pm, pr = load(KEYS[i])
    if ok then
      local epoch, f = window_of(now, w, e)
      m, r, pm, pr = as_of(epoch, e, m, r, pm, pr)
      out[i + 1] = { 0, present, text(estimate(pm, m, f)), text(estimate(pr, r, f)),
        text(m), text(r), text(pm), text(pr),
        decay_ms(w, epoch, now, m, pm), decay_ms(w, epoch, now, r, pr) }
    else
      out[i + 1] = { 1, present, '0', '0', '0', '0', '0', '0', -1, -1 }
    end
  end
  return out
end

return redis.error_reply('relaymilter: unknown operation')
