-- Accepts a user message: stores it in the history and, when the session was idle,
-- makes it the session's current message (meta's `head`, its id in `head_id`) and
-- puts one entry for the session on the inbox; a message accepted while another is
-- current waits in the pending list behind it. Invariant: a session has exactly one
-- inbox entry while it has a current message, so no two workers ever answer one
-- session at once, and answers follow the order of acceptance. The meta field `entry`
-- names that entry, so an older entry left behind (a deleted and re-created session)
-- is recognised as stale. Keeping the current message in meta, not first in the
-- list, spares the steady case (one message at a time) every command on the list.
-- A session written by an earlier release has no `head_id` field: its current
-- message is still first in its pending list (begin_work.lua moves it to meta).
-- On a Redis Cluster a new inbox entry is announced on the partition's ready channel,
-- waking idle workers; one Redis wakes one blocked reader itself (no channel given).
-- KEYS: meta, history, pending, idem, events, inbox, sessions (all of the session's partition)
-- ARGV: session id, message json, message id, client message id ('' = none),
--       max pending, ttl secs, now ms, history max, queued json (the message with
--       the trace it was accepted in: what a worker answers), ready channel ('' =
--       announce nothing), charge json ('' = none: who pays for the answers, see
--       `backend::limits`)
-- Returns {'ok', message id} | {'dup', message id} | {'full'} | {'gone'}
-- Hot path (an idle session, no client message id): HMGET, RPUSH, XADD, (SPUBLISH on
-- a cluster) and one HSET; the TTLs as refresh_ttl.lua says.
-- `user_id` is set on every live session, so one HMGET tells whether it is gone.
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'count', 'refreshed_ms', 'head_id')
if not meta[1] then return {'gone'} end
if ARGV[4] ~= '' then
  local previous = redis.call('HGET', KEYS[4], ARGV[4])
  if previous then return {'dup', previous} end
end
local fields = {'count', tonumber(meta[2] or 0) + 1, 'last_ms', ARGV[7], 'charge', ARGV[11]}
local idle
if meta[4] then
  idle = meta[4] == ''
else
  -- An earlier release's layout: the list holds the current message too.
  idle = redis.call('LLEN', KEYS[3]) == 0
end
local waiting = 0
if not idle then
  -- Its new length tells "full" (undone at once); the current message counts too.
  waiting = redis.call('RPUSH', KEYS[3], ARGV[9])
  local held = waiting
  if meta[4] then held = waiting + 1 end
  if held > tonumber(ARGV[5]) then
    redis.call('RPOP', KEYS[3])
    return {'full'}
  end
elseif tonumber(ARGV[5]) < 1 then
  return {'full'}
end
local kept = tonumber(ARGV[8])
local length = redis.call('RPUSH', KEYS[2], ARGV[2])
if length > kept then redis.call('LTRIM', KEYS[2], -kept, -1) end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
if idle then
  for _, field in ipairs({'head', ARGV[9], 'head_id', ARGV[3], 'entry',
      redis.call('XADD', KEYS[6], '*', 'session', ARGV[1])}) do
    fields[#fields + 1] = field
  end
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
