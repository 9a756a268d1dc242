-- Accepts a user message: stores it in the history, appends it to the session's
-- pending list and, when the session was idle, puts one entry for the session on the
-- inbox. Invariant: a session has exactly one inbox entry while its pending list is
-- non-empty, so no two workers ever answer one session at once, and answers follow
-- the order of acceptance. The meta field `entry` names that entry, so an older
-- entry left behind (a deleted and re-created session) is recognised as stale.
-- On a Redis Cluster a new inbox entry is announced on the partition's ready channel,
-- waking idle workers; one Redis wakes one blocked reader itself (no channel given).
-- KEYS: meta, history, pending, idem, events, inbox, sessions (all of the session's partition)
-- ARGV: session id, message json, message id, client message id ('' = none),
--       max pending, ttl secs, now ms, history max, queued json (the message with
--       the trace it was accepted in: what a worker takes from the pending list),
--       ready channel ('' = announce nothing)
-- Returns {'ok', message id} | {'dup', message id} | {'full'} | {'gone'}
-- Hot path (an idle session, no client message id): HMGET, two RPUSHes, XADD,
-- (SPUBLISH on a cluster), the new pending list's EXPIRE and one HSET; the TTLs as
-- refresh_ttl.lua says.
-- `user_id` is set on every live session, so one HMGET tells whether it is gone.
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'count', 'refreshed_ms')
if not meta[1] then return {'gone'} end
if ARGV[4] ~= '' then
  local previous = redis.call('HGET', KEYS[4], ARGV[4])
  if previous then return {'dup', previous} end
end
-- The pending list's new length tells both "full" (undone at once) and "was idle".
local waiting = redis.call('RPUSH', KEYS[3], ARGV[9])
if waiting > tonumber(ARGV[5]) then
  redis.call('RPOP', KEYS[3])
  return {'full'}
end
local kept = tonumber(ARGV[8])
local length = redis.call('RPUSH', KEYS[2], ARGV[2])
if length > kept then redis.call('LTRIM', KEYS[2], -kept, -1) end
local fields = {'count', tonumber(meta[2] or 0) + 1, 'last_ms', ARGV[7]}
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
if waiting == 1 then
  fields[#fields + 1] = 'entry'
  fields[#fields + 1] = redis.call('XADD', KEYS[6], '*', 'session', ARGV[1])
  if ARGV[10] ~= '' then redis.call('SPUBLISH', ARGV[10], '1') end
end
if refresh_due(meta[3], ARGV[7], ARGV[6]) then
  refresh_ttl(5, ARGV[6], KEYS[7], ARGV[7], ARGV[1])
  fields[#fields + 1] = 'refreshed_ms'
  fields[#fields + 1] = ARGV[7]
else
  if waiting == 1 then redis.call('EXPIRE', KEYS[3], ARGV[6]) end
  if length == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
end
redis.call('HSET', KEYS[1], unpack(fields))
return {'ok', ARGV[3]}
