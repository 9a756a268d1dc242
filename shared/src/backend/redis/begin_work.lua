-- Starts (or restarts) answering a session's oldest pending message: bumps the
-- attempt fence so an earlier holder can no longer publish or finish, counts the
-- tries of this message (reset when it is finished) and returns the recent history
-- the prompt is built from, the owner and metadata tool calls carry, and the tool
-- calls an earlier try of this message stored (see save_tool_calls.lua), all in one
-- round trip. An entry that is not the session's current one (see
-- accept_message.lua) is stale. Stored calls of another message are leftovers and
-- are dropped.
-- KEYS: meta, pending, inbox, history, calls
-- ARGV: entry id, group, history messages wanted (0 = none)
-- Returns {'ok', message json, attempt, tries, cancelled 0|1, {history json...},
--          user id ('' = none), metadata json, {call json...}}
--       | {'gone'} | {'idle'}
-- `user_id` is set on every live session, so one HMGET tells gone, stale and cancelled.
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'entry', 'cancel', 'metadata')
local head = meta[1] and redis.call('LINDEX', KEYS[2], 0)
if not head or meta[2] ~= ARGV[1] then
  redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  if not meta[1] then return {'gone'} end
  return {'idle'}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local message_id = cjson.decode(head)['id']
local cancelled = 0
if meta[3] and meta[3] == message_id then cancelled = 1 end
local history = {}
local wanted = tonumber(ARGV[3])
-- `LRANGE key -0 -1` is the whole list, not none of it.
if wanted > 0 then history = redis.call('LRANGE', KEYS[4], -wanted, -1) end
local calls = {}
local owner = redis.call('HGET', KEYS[5], 'message')
if owner == message_id then
  local fields = redis.call('HGETALL', KEYS[5])
  for i = 1, #fields, 2 do
    if fields[i] ~= 'message' then calls[#calls + 1] = fields[i + 1] end
  end
elseif owner then
  redis.call('DEL', KEYS[5])
end
return {'ok', head, attempt, tries, cancelled, history, meta[1], meta[4] or '{}', calls}
