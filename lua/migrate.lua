-- Move a coupon's gate state from the layout before the hash held the rank
-- counter and the supply (the string keys seq and total beside the users
-- hash) into the hash, atomically. The old keys are deleted: a gateway of
-- the previous version then refuses the coupon as lost (503) rather than
-- admitting from a counter nobody advances any more.
-- KEYS[1] gate hash, KEYS[2] the old seq key, KEYS[3] the old total key
-- Reply 1 if the hash holds seq (migrated now or already), 0 if there is no
-- state in either layout (lost, or never initialised).
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 then
  return 1
end
local seq = redis.call('GET', KEYS[2])
if not seq then
  return 0
end
local total = redis.call('GET', KEYS[3])
-- The admit script counts on seq being at least the number of users held
-- (lua/admit.lua); a state the gate wrote keeps that already.
seq = math.max(tonumber(seq), redis.call('HLEN', KEYS[1]))
if total then
  redis.call('HSET', KEYS[1], 'seq', seq, 'total', total)
else
  redis.call('HSET', KEYS[1], 'seq', seq)
end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
