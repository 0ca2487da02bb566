-- Create a coupon's gate state, its hash with seq 0 and the supply, unless
-- a state exists in either layout (the hash's seq field, or the seq key of
-- the layout before it, which lua/migrate.lua moves): it is left untouched.
-- KEYS[1] gate hash, KEYS[2] the old seq key; ARGV[1] total
-- Reply 1 if created, 0 if a state existed.
if redis.call('HEXISTS', KEYS[1], 'seq') == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', 0, 'total', ARGV[1])
return 1
