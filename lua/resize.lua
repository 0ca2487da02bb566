-- Set a coupon's supply in the gate, atomically refusing a total below what
-- is already admitted (no check-then-set: an admission cannot slip between
-- the count and the write).
-- KEYS[1] users hash, KEYS[2] seq counter, KEYS[3] total, KEYS[4] revision
-- ARGV[1] new total, ARGV[2] the coupon's revision carrying this total
-- Reply {code, admitted}: {0, n} resized; {1, n} refused, n users are
-- admitted, more than the new total; {2, n} stale: a later revision is set
-- already, nothing changed; {3, 0} gate state lost (seq missing).
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {3, 0}
end
local held = redis.call('HLEN', KEYS[1])
local rev = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(ARGV[2]) < rev then
  return {2, held}
end
if held > tonumber(ARGV[1]) then
  return {1, held}
end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], ARGV[2])
return {0, held}
