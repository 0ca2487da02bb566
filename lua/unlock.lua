-- Releases a redis-lock baseline lock only while it still holds the caller's
-- token (compare-and-delete), so an expired lease never frees someone else's lock.
-- KEYS[1]: the lock key. ARGV[1]: the caller's token.
-- Returns 1 if the lock was released, 0 if it was not held by the token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
