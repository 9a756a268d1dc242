-- Moves one session from the layout before partitions (`P:{S}:...`, global inbox
-- and index) to its partition, keeping TTLs (RENAME does): run by
-- `migrate.rs` at start, on one Redis only (the old layout never ran on a cluster,
-- and its keys span slots). Idempotent, and safe when two pods migrate at once: the
-- session leaves the old index in the same step. A session with pending messages gets
-- an entry on its partition's inbox and it becomes the live one, so an entry of the
-- old inbox can never be answered twice (`begin_work.lua` drops any other entry).
-- KEYS: n old keys (meta, history, pending first), the same n new keys,
--       new inbox, new sessions, old sessions
-- ARGV: session id, ready channel, n
-- Returns 1 moved | 0 nothing to move (expired, or already moved)
local n = tonumber(ARGV[3])
local inbox, index, old_index = KEYS[2 * n + 1], KEYS[2 * n + 2], KEYS[2 * n + 3]
local score = redis.call('ZSCORE', old_index, ARGV[1])
redis.call('ZREM', old_index, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[n + 1]) == 1 then
  return 0
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + n]) end
end
local meta, pending = KEYS[n + 1], KEYS[n + 3]
redis.call('ZADD', index, score or redis.call('HGET', meta, 'last_ms'), ARGV[1])
redis.call('HDEL', meta, 'entry')
if redis.call('LLEN', pending) > 0 then
  redis.call('HSET', meta, 'entry', redis.call('XADD', inbox, '*', 'session', ARGV[1]))
  redis.call('SPUBLISH', ARGV[2], '1')
end
return 1
