-- Starts (or restarts) answering a session's current message (see
-- accept_message.lua): bumps the attempt fence so an earlier holder can no longer
-- publish or finish, counts the tries of this message (reset when it is finished) and
-- returns the recent history the prompt is built from, the owner and metadata tool
-- calls carry, the tool calls an earlier try of this message stored (see
-- save_tool_calls.lua) and who pays for the answer (the charge, see
-- `backend::limits`), all in one round trip. On a first try that is not cancelled and
-- has no charge to check first, it also publishes the `typing` status (see
-- publish_batch.lua), so the worker's next publish needs no read.
-- An entry that is not the session's current one (see accept_message.lua) is stale.
-- Stored calls of another message are leftovers and are dropped.
-- A session an earlier release wrote (no `head_id`, no `charge` in meta) has its
-- current message first in the pending list and its charge in a key of its own: the
-- message moves to meta here, the charge is read from its key.
-- KEYS: meta, pending, inbox, history, calls, events, charge
-- ARGV: entry id, group, history messages wanted (0 = none), channel,
--       log max entries, ttl secs, the typing event's JSON before and after its
--       message id ('' and '' = announce nothing)
-- Returns {'ok', message json, attempt, tries, cancelled 0|1, {history json...},
--          user id ('' = none), metadata json, {call json...}, charge json ('' = none),
--          last seq after typing (0 = typing not published)}
--       | {'gone'} | {'idle'}
-- Hot path: HMGET, HSET, the history's LRANGE, `typing`'s XADD and SPUBLISH.
-- `user_id` is set on every live session, so one HMGET tells gone, stale and cancelled.
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'entry', 'cancel', 'metadata',
  'attempt', 'tries', 'calls', 'last_seq', 'head', 'head_id', 'charge')
local head, message_id = meta[9], meta[10]
local fields = {}
if meta[1] and meta[2] == ARGV[1] and not message_id then
  head = redis.call('LPOP', KEYS[2])
  if head then
    message_id = cjson.decode(head)['id']
    fields = {'head', head, 'head_id', message_id}
  end
end
if not head or head == '' or meta[2] ~= ARGV[1] then
  redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  if not meta[1] then return {'gone'} end
  return {'idle'}
end
local attempt = tonumber(meta[5] or 0) + 1
local tries = tonumber(meta[6] or 0) + 1
fields[#fields + 1] = 'attempt'
fields[#fields + 1] = attempt
fields[#fields + 1] = 'tries'
fields[#fields + 1] = tries
redis.call('HSET', KEYS[1], unpack(fields))
local cancelled = 0
if meta[3] and meta[3] == message_id then cancelled = 1 end
local history = {}
local wanted = tonumber(ARGV[3])
-- `LRANGE key -0 -1` is the whole list, not none of it.
if wanted > 0 then history = redis.call('LRANGE', KEYS[4], -wanted, -1) end
local calls = {}
if meta[7] == message_id then
  local stored = redis.call('HGETALL', KEYS[5])
  for i = 1, #stored, 2 do
    if stored[i] ~= 'message' then calls[#calls + 1] = stored[i + 1] end
  end
elseif meta[7] then
  redis.call('DEL', KEYS[5])
  redis.call('HDEL', KEYS[1], 'calls')
end
local charge = meta[11]
if not charge then charge = redis.call('GET', KEYS[7]) or '' end
local last = 0
if ARGV[7] ~= '' and tries == 1 and cancelled == 0 and charge == '' then
  -- From the last finish's seq (see finish_work.lua): no read of the log unless
  -- something was published since.
  last = publish_batch(KEYS[6], ARGV[4], ARGV[5], meta[8] or '',
    {ARGV[7] .. message_id .. ARGV[8]})
  if last == 1 then redis.call('EXPIRE', KEYS[6], ARGV[6]) end
end
return {'ok', head, attempt, tries, cancelled, history, meta[1], meta[4] or '{}', calls,
  charge, last}
