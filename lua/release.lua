-- Release an admission whose record certainly never reached Kafka.
-- KEYS[1] users hash, KEYS[2] pending hash; ARGV[1] userId, ARGV[2] rank
-- Removes the user only while it still holds this rank (a later admission of
-- the same user keeps its slot), and drops a pending mark of the same rank.
-- The seq counter is never decremented: ranks never repeat.
-- Reply 1 if released, 0 if the user did not hold this rank.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
