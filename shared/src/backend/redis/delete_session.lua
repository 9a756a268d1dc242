-- Deletes every key of a session and tells the pods holding its sockets (on the
-- session's own shard channel: only those pods subscribe to it).
-- KEYS: meta, history, pending, idem, events, sessions, calls
-- ARGV: session id, channel, control payload
-- Returns 1 | 0 (there was none)
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[7])
redis.call('ZREM', KEYS[6], ARGV[1])
if existed == 1 then redis.call('SPUBLISH', ARGV[2], ARGV[3]) end
return existed
