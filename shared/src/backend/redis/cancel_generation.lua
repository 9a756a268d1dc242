-- Asks for the session's message in progress (its oldest pending one) to stop: marks
-- it in meta, where the worker's next publish sees it, and tells the workers on the
-- partition's control channel (a shard channel in the session's slot: one shard
-- carries it, not the whole cluster).
-- KEYS: meta, pending
-- ARGV: control channel, session id
-- Returns 'cancelled' | 'idle' | 'gone'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then return 'idle' end
local id = cjson.decode(head)['id']
redis.call('HSET', KEYS[1], 'cancel', id)
redis.call('SPUBLISH', ARGV[1],
  cjson.encode({type = 'cancel', session_id = ARGV[2], message_id = id}))
return 'cancelled'
