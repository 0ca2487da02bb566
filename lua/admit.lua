-- Admit users to one coupon, atomically, in argument order.
-- KEYS[1] users hash (userId -> rank), KEYS[2] seq counter (exists once
-- initialised), KEYS[3] total: the gate's supply (set at creation and by the
-- resize script; when missing, ARGV[1] is the supply)
-- ARGV[1] total supply as the caller knows it, ARGV[2..] one or more userIds
-- (canonical decimal)
-- Reply: a flat array with one {code, rank} pair per userId, in order:
-- {0, new rank} admitted; {1, existing rank} already admitted (a userId
-- repeated in one call is admitted by its first occurrence); {2, 0} sold out;
-- {3, 0} gate state lost (seq missing: refuse until rebuilt).
-- A call costs the server five commands whatever its size (the gateway makes
-- one call per coupon of a pipeline): that, not one call per user, is what
-- its micro-batches pay.
local out = {}
local state = redis.call('MGET', KEYS[2], KEYS[3])
local seq = state[1]
if not seq then
  for _ = 2, #ARGV do
    out[#out + 1] = 3
    out[#out + 1] = 0
  end
  return out
end
seq = tonumber(seq)
-- The stored total wins over the caller's: a gateway whose cache still
-- holds a total from before a resize cannot admit past the new one.
local total = tonumber(state[2] or ARGV[1])
local held = redis.call('HLEN', KEYS[1])
local existing = redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
local new = {}    -- userId -> rank admitted by this call
local fields = {} -- HSET arguments
local admitted = 0
for i = 2, #ARGV do
  local user = ARGV[i]
  local rank = existing[i - 1] or new[user]
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
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('INCRBY', KEYS[2], admitted)
end
return out
