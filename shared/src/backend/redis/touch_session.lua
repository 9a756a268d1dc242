-- Marks activity: the session's last activity time, and the idle TTL of every key of
-- the session when a refresh is due (see refresh_ttl.lua).
-- KEYS: meta, history, pending, idem, events, sessions
-- ARGV: session id, now ms, ttl secs
-- Returns 1 | 0 (gone)
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'refreshed_ms')
if not meta[1] then return 0 end
if refresh_due(meta[2], ARGV[2], ARGV[3]) then
  refresh_ttl(5, ARGV[3], KEYS[6], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'last_ms', ARGV[2], 'refreshed_ms', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'last_ms', ARGV[2])
end
return 1
