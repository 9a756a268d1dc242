-- Stores tool calls of the message being answered, and publishes their events
-- (`function_called`) in the same step, fenced like every write of a worker: refused
-- when another attempt owns the message or it was cancelled. A call is stored when the
-- model makes it (no result) and again when it ran (with the result), so a worker that
-- takes over after a crash knows which calls finished and which to send again.
-- The calls hash belongs to one message (field `message`, also meta's `calls`, which
-- tells begin_work.lua and finish_work.lua that there is a hash to read or delete);
-- finish_work.lua deletes it.
-- KEYS: meta, calls, events
-- ARGV: channel, log max entries, ttl secs, attempt, message id, n, m,
--       last seq the worker saw ('' = unknown, see publish_batch.lua),
--       (slot, call json) x n, event json x m
-- Returns {'ok', last seq (0: no events)} | 'fenced' | 'cancelled' | 'gone'
local fence = redis.call('HMGET', KEYS[1], 'attempt', 'cancel')
if not fence[1] then return 'gone' end
if fence[1] ~= ARGV[4] then return 'fenced' end
if fence[2] == ARGV[5] then return 'cancelled' end
local n = tonumber(ARGV[6])
local m = tonumber(ARGV[7])
redis.call('HSET', KEYS[2], 'message', ARGV[5])
redis.call('HSET', KEYS[1], 'calls', ARGV[5])
for i = 0, n - 1 do
  redis.call('HSET', KEYS[2], ARGV[9 + 2 * i], ARGV[10 + 2 * i])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
local last = 0
if m > 0 then
  last = publish_batch(KEYS[3], ARGV[1], ARGV[2], ARGV[8], argv_slice(9 + 2 * n, m))
  if last == m then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
end
return {'ok', last}
