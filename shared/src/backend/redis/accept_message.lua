-- Accepts a user message: stores it in the history, appends it to the session's
-- pending list and, when the session was idle, puts one entry for the session on the
-- inbox. Invariant: a session has exactly one inbox entry while its pending list is
-- non-empty, so no two workers ever answer one session at once, and answers follow
-- the order of acceptance. The meta field `entry` names that entry, so an older
-- entry left behind (a deleted and re-created session) is recognised as stale.
-- A new inbox entry is announced on the partition's ready channel, waking idle workers.
-- KEYS: meta, history, pending, idem, events, inbox, sessions (all of the session's partition)
-- ARGV: session id, message json, message id, client message id ('' = none),
--       max pending, ttl secs, now ms, history max, queued json (the message with
--       the trace it was accepted in: what a worker takes from the pending list),
--       ready channel
-- Returns {'ok', message id} | {'dup', message id} | {'full'} | {'gone'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
if ARGV[4] ~= '' then
  local previous = redis.call('HGET', KEYS[4], ARGV[4])
  if previous then return {'dup', previous} end
end
local waiting = redis.call('LLEN', KEYS[3])
if waiting >= tonumber(ARGV[5]) then return {'full'} end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
redis.call('RPUSH', KEYS[3], ARGV[9])
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[7])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[4], ARGV[3]) end
if waiting == 0 then
  redis.call('HSET', KEYS[1], 'entry', redis.call('XADD', KEYS[6], '*', 'session', ARGV[1]))
  redis.call('SPUBLISH', ARGV[10], '1')
end
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
redis.call('ZADD', KEYS[7], ARGV[7], ARGV[1])
return {'ok', ARGV[3]}
