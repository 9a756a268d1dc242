-- Marks activity: refreshes the idle TTL of every key of the session.
-- KEYS: meta, history, pending, idem, events, sessions
-- ARGV: session id, now ms, ttl secs
-- Returns 1 | 0 (gone)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_ms', ARGV[2])
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
return 1
