-- SPDX-License-Identifier: BSD-2-Clause
-- lookup.lua - the MAIL FROM lookup of relaymilter on one Redis primary
-- (with or without Sentinel): one round trip, the one a message may cost at
-- MAIL FROM (doc/OPERATIONS, "What happens to a message").
--
-- KEYS[1] = PREFIX.."sasl", KEYS[2] = PREFIX.."limits:"..FALLBACK
-- ARGV[1] = SASL login, canonical ("" when none),
-- ARGV[2] = PREFIX.."limits:",
-- ARGV[3] = sender domain (canonical, "" for none),
-- ARGV[4] = PREFIX.."domain:", ARGV[5] = blocked-domains set key ("": not
-- wanted this time), ARGV[6] = the most members to return,
-- ARGV[7] = characters no customer name may hold, ARGV[8..] = the prefixes
-- reserved for relaymilter's own names (identity.h)
-- -> { customer-from-sasl-hash or "", garbage-flag, { field, value, ... },
--      owned-level or "", customer-is-member, blocked-status (0 not asked,
--      1 here, 2 too large or wrong type), { blocked... }, bad-mapping (1:
--      the hash names a customer that may not be one; its name is the first
--      element, and the fallback applies) }
--
-- Why it is a script of its own, without the strict keys of relay.lua: the
-- limits and domain keys are chosen here, from what the sasl hash says and
-- from the sender domain's parents, so they cannot all be declared, and they
-- lie in many hash slots. That is fine on one primary, and it keeps MAIL FROM
-- at one round trip there. On a Redis Cluster the store reads the same keys
-- with routed single-key commands instead (policy/clookup.c); this script is
-- never sent to a cluster.

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
  for i = 1, #ARGV[7] do
    if string.find(c, string.sub(ARGV[7], i, i), 1, true) then return false end
  end
  for i = 8, #ARGV do
    if string.sub(c, 1, #ARGV[i]) == ARGV[i] then return false end
  end
  return true
end

local customer = ''
local limkey = KEYS[2]
local garbage, badmap = 0, 0
if ARGV[1] ~= '' then
  local c = redis.pcall('HGET', KEYS[1], ARGV[1])
  if type(c) == 'table' and c.err then
    garbage = 1
  elseif c and c ~= '' and not name_ok(c) then
    customer, badmap = c, 1
  elseif c and c ~= '' then
    customer = c
    limkey = ARGV[2] .. c
  end
end
local fields = redis.pcall('HGETALL', limkey)
if fields.err then
  garbage = 1
  fields = {}
end
local who = badmap == 0 and customer ~= '' and customer
  or string.sub(KEYS[2], #ARGV[2] + 1)
local level, member = owners(ARGV[3], ARGV[4], who)
local bstatus, blocked = 0, {}
if ARGV[5] ~= '' then
  local n = redis.pcall('SCARD', ARGV[5])
  if type(n) ~= 'number' or n > tonumber(ARGV[6]) then
    bstatus = 2
  else
    bstatus, blocked = 1, redis.call('SMEMBERS', ARGV[5])
  end
end
return { customer, garbage, fields, level, member, bstatus, blocked, badmap }
