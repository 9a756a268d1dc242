-- Starts (or restarts) answering a session's oldest pending message: bumps the
-- attempt fence so an earlier holder can no longer publish or finish, and counts the
-- tries of this message (reset when it is finished). An entry that is not the
-- session's current one (see accept_message.lua) is stale.
-- KEYS: meta, pending, inbox
-- ARGV: entry id, group
-- Returns {'ok', message json, attempt, tries, cancelled 0|1} | {'gone'} | {'idle'}
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  return {'gone'}
end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or redis.call('HGET', KEYS[1], 'entry') ~= ARGV[1] then
  redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  return {'idle'}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local cancelled = 0
if redis.call('HGET', KEYS[1], 'cancel') == cjson.decode(head)['id'] then cancelled = 1 end
return {'ok', head, attempt, tries, cancelled}
