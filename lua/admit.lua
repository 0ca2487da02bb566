-- Admit one user to one coupon, atomically.
-- KEYS[1] users hash (userId -> rank), KEYS[2] seq counter (exists once initialised)
-- ARGV[1] userId, ARGV[2] total supply
-- Reply {code, rank}: {0, new rank} admitted; {1, existing rank} already admitted;
-- {2, 0} sold out; {3, 0} gate state lost (seq missing: refuse until rebuilt).
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {3, 0}
end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {1, tonumber(existing)}
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return {2, 0}
end
-- Ranks come from the counter, never from HLEN: they never repeat, even
-- after a release frees a slot.
local rank = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], rank)
return {0, rank}
