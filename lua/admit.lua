-- Admit users to one or more coupons, atomically, each coupon's users in
-- argument order.
-- KEYS: one per coupon, its gate hash: userId -> rank for the admitted
-- users, plus the field seq (the rank counter; present once initialised)
-- and the field total (the gate's supply, set at creation and by the resize
-- script; when missing, the caller's total is the supply).
-- ARGV, one coupon (1 KEY): total supply as the caller knows it, then one
-- or more userIds (canonical decimal).
-- ARGV, several coupons (1 KEY each), per coupon in KEYS order: total, the
-- number n of its userIds, then those n userIds.
-- Reply: a flat array with one {code, rank} pair per userId, in argument
-- order: {0, new rank} admitted; {1, existing rank} already admitted (a
-- userId repeated for a coupon in one call is admitted by its first
-- occurrence); {2, 0} sold out; {3, 0} no seq field: the gate state is lost
-- (refuse until rebuilt) or still in the layout before the hash held seq
-- (the caller migrates it, lua/migrate.lua, and calls again).
-- A coupon costs the server two commands whatever its number of users (one
-- HMGET of seq, total and the users; one HSET of the new users and seq),
-- plus an HLEN once the supply may run out in this call, and a call
-- whatever its number of coupons costs one script run: the gateway sends
-- one call per pipeline (per slot in Redis Cluster, where one call's keys
-- must share a slot).
local out, n = {}, 0

local function admit(key, callerTotal, first, last)
  local state
  if first == last then
    state = redis.call('HMGET', key, 'seq', 'total', ARGV[first])
  else
    state = redis.call('HMGET', key, 'seq', 'total', unpack(ARGV, first, last))
  end
  local seq = state[1]
  if not seq then
    for _ = first, last do
      out[n + 1], out[n + 2], n = 3, 0, n + 2
    end
    return
  end
  seq = tonumber(seq)
  -- The stored total wins over the caller's: a gateway whose cache still
  -- holds a total from before a resize cannot admit past the new one.
  local total = tonumber(state[2] or callerTotal)
  -- The counter is never below the number of users held (an admission
  -- raises both by one, a release lowers only the users, a restore and the
  -- migration set the counter to at least the users' number), so while seq
  -- plus this call's users fit in the total nobody can find it sold out and
  -- the users need not be counted.
  local held = seq
  if seq + (last - first + 1) > total then
    held = redis.call('HLEN', key) - (state[2] and 2 or 1)
  end
  if first == last then -- one user (most coupons of a call over many): the loop below, without its tables
    local rank = state[3]
    if rank then
      out[n + 1], out[n + 2], n = 1, tonumber(rank), n + 2
    elseif held >= total then
      out[n + 1], out[n + 2], n = 2, 0, n + 2
    else
      seq = seq + 1
      redis.call('HSET', key, ARGV[first], seq, 'seq', seq)
      out[n + 1], out[n + 2], n = 0, seq, n + 2
    end
    return
  end
  local new = {}    -- userId -> rank admitted by this call
  local fields = {} -- HSET arguments
  local admitted = 0
  for i = first, last do
    local user = ARGV[i]
    local rank = state[i - first + 3] or new[user]
    if rank then
      out[n + 1], out[n + 2], n = 1, tonumber(rank), n + 2
    elseif held >= total then
      out[n + 1], out[n + 2], n = 2, 0, n + 2
    else
      -- Ranks come from the counter, never from HLEN: they never repeat,
      -- even after a release frees a slot.
      admitted = admitted + 1
      held = held + 1
      rank = seq + admitted
      new[user] = rank
      fields[#fields + 1] = user
      fields[#fields + 1] = rank
      out[n + 1], out[n + 2], n = 0, rank, n + 2
    end
  end
  if admitted > 0 then
    fields[#fields + 1] = 'seq'
    fields[#fields + 1] = seq + admitted
    redis.call('HSET', key, unpack(fields))
  end
end

if #KEYS == 1 then
  admit(KEYS[1], ARGV[1], 2, #ARGV)
  return out
end
local at = 1
for c = 1, #KEYS do
  local k = tonumber(ARGV[at + 1])
  admit(KEYS[c], ARGV[at], at + 2, at + 1 + k)
  at = at + 2 + k
end
return out
