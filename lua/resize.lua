-- Set a coupon's supply in the gate, atomically refusing a total below what
-- is already admitted (no check-then-set: an admission cannot slip between
-- the count and the write).
-- KEYS[1] gate hash (userId -> rank, plus the fields seq and total),
-- KEYS[2] revision
-- ARGV[1] new total, ARGV[2] the coupon's revision carrying this total
-- Reply {code, admitted}: {0, n} resized; {1, n} refused, n users are
-- admitted, more than the new total; {2, n} stale: a later revision is set
-- already, nothing changed; {3, 0} no seq field: the gate state is lost, or
-- in the layout before the hash held seq (lua/migrate.lua moves it).
local state = redis.call('HMGET', KEYS[1], 'seq', 'total')
if not state[1] then
  return {3, 0}
end
local held = redis.call('HLEN', KEYS[1]) - (state[2] and 2 or 1)
local rev = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) < rev then
  return {2, held}
end
if held > tonumber(ARGV[1]) then
  return {1, held}
end
redis.call('HSET', KEYS[1], 'total', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return {0, held}
