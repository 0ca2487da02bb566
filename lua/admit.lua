-- Admit users to one or more coupons, atomically, each coupon's users in
-- argument order.
-- KEYS: three per coupon: users hash (userId -> rank), seq counter (exists
-- once initialised), total (the gate's supply, set at creation and by the
-- resize script; when missing, the caller's total is the supply).
-- ARGV, one coupon (3 KEYS): total supply as the caller knows it, then one
-- or more userIds (canonical decimal).
-- ARGV, several coupons (3 KEYS each), per coupon in KEYS order: total,
-- the number n of its userIds, then those n userIds.
-- Reply: a flat array with one {code, rank} pair per userId, in argument
-- order: {0, new rank} admitted; {1, existing rank} already admitted (a
-- userId repeated for a coupon in one call is admitted by its first
-- occurrence); {2, 0} sold out; {3, 0} gate state lost (seq missing: refuse
-- until rebuilt).
-- A coupon costs the server five commands whatever its number of users, and
-- a call whatever its number of coupons costs one script run: the gateway
-- sends one call per pipeline (per slot in Redis Cluster, where one call's
-- keys must share a slot).
local out = {}

local function admit(users, seqKey, totalKey, callerTotal, first, last)
  local state = redis.call('MGET', seqKey, totalKey)
  local seq = state[1]
  if not seq then
    for _ = first, last do
      out[#out + 1] = 3
      out[#out + 1] = 0
    end
    return
  end
  seq = tonumber(seq)
  -- The stored total wins over the caller's: a gateway whose cache still
  -- holds a total from before a resize cannot admit past the new one.
  local total = tonumber(state[2] or callerTotal)
  local held = redis.call('HLEN', users)
  local existing = redis.call('HMGET', users, unpack(ARGV, first, last))
  local new = {}    -- userId -> rank admitted by this call
  local fields = {} -- HSET arguments
  local admitted = 0
  for i = first, last do
    local user = ARGV[i]
    local rank = existing[i - first + 1] or new[user]
    if rank then
      out[#out + 1] = 1
      out[#out + 1] = tonumber(rank)
    elseif held >= total then
      out[#out + 1] = 2
      out[#out + 1] = 0
    else
      -- Ranks come from the counter, never from HLEN: they never repeat,
      -- even after a release frees a slot.
      admitted = admitted + 1
      held = held + 1
      rank = seq + admitted
      new[user] = rank
      fields[#fields + 1] = user
      fields[#fields + 1] = rank
      out[#out + 1] = 0
      out[#out + 1] = rank
    end
  end
  if admitted > 0 then
    redis.call('HSET', users, unpack(fields))
    redis.call('INCRBY', seqKey, admitted)
  end
end

if #KEYS == 3 then
  admit(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 2, #ARGV)
  return out
end
local at = 1
for c = 1, #KEYS, 3 do
  local n = tonumber(ARGV[at + 1])
  admit(KEYS[c], KEYS[c + 1], KEYS[c + 2], ARGV[at], at + 2, at + 1 + n)
  at = at + 2 + n
end
return out
