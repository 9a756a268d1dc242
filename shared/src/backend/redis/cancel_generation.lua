-- Asks for the session's message in progress (its current one, see
-- accept_message.lua) to stop: marks it in meta, where the worker's next publish sees
-- it, and tells the workers on the partition's control channel (a shard channel in the
-- session's slot: one shard carries it, not the whole cluster).
-- KEYS: meta, pending
-- ARGV: control channel, session id
-- Returns 'cancelled' | 'idle' | 'gone'
local meta = redis.call('HMGET', KEYS[1], 'user_id', 'head_id')
if not meta[1] then return 'gone' end
local id = meta[2]
if not id then
  -- An earlier release's layout: the current message is first in the pending list.
  local head = redis.call('LINDEX', KEYS[2], 0)
  id = head and cjson.decode(head)['id']
end
if not id or id == '' then return 'idle' end
redis.call('HSET', KEYS[1], 'cancel', id)
redis.call('SPUBLISH', ARGV[1],
  cjson.encode({type = 'cancel', session_id = ARGV[2], message_id = id}))
return 'cancelled'
