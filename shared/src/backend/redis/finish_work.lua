-- Ends a message, all or nothing: stores the answer, publishes its last events,
-- drops it from the pending list, acknowledges the inbox entry and, when more
-- messages wait, queues the session again. Fenced by the attempt number; resets the
-- message's tries, any cancel request and its stored tool calls (the answer carries
-- them now).
-- KEYS: meta, history, pending, idem, events, inbox, sessions, calls
-- ARGV: session id, attempt, message id, answer json ('' = none), channel,
--       log max entries, ttl secs, entry id, group, now ms, history max, ready channel,
--       last seq the worker saw ('' = unknown, see publish_batch.lua), n, event json x n
-- Returns 'ok' | 'fenced' | 'gone'
local function ack()
  redis.call('XACK', KEYS[6], ARGV[9], ARGV[8])
  redis.call('XDEL', KEYS[6], ARGV[8])
end
if redis.call('EXISTS', KEYS[1]) == 0 then ack() return 'gone' end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 'fenced' end
local head = redis.call('LINDEX', KEYS[3], 0)
if head and cjson.decode(head)['id'] == ARGV[3] then
  if ARGV[4] ~= '' then
    redis.call('RPUSH', KEYS[2], ARGV[4])
    redis.call('LTRIM', KEYS[2], -tonumber(ARGV[11]), -1)
    redis.call('HINCRBY', KEYS[1], 'count', 1)
  end
  local n = tonumber(ARGV[14])
  if n > 0 then publish_batch(KEYS[5], ARGV[5], ARGV[6], ARGV[13], 15, n) end
  redis.call('LPOP', KEYS[3])
  redis.call('DEL', KEYS[8])
  redis.call('HSET', KEYS[1], 'tries', 0)
  redis.call('HDEL', KEYS[1], 'cancel')
end
ack()
if redis.call('LLEN', KEYS[3]) > 0 then
  redis.call('HSET', KEYS[1], 'entry', redis.call('XADD', KEYS[6], '*', 'session', ARGV[1]))
  redis.call('SPUBLISH', ARGV[12], '1')
end
redis.call('HSET', KEYS[1], 'last_ms', ARGV[10])
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
redis.call('ZADD', KEYS[7], ARGV[10], ARGV[1])
return 'ok'
