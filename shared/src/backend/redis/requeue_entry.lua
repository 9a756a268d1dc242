-- Gives back an inbox entry a worker read past its free slots (one Redis serves a
-- blocked multi-partition read up to its count from every partition that has
-- entries): acknowledged and added again at its partition's end, where the next
-- reader takes it, with meta's `entry` naming the new one. An entry that is no longer
-- its session's current one (see accept_message.lua) is only dropped, as begin would.
-- KEYS: meta, inbox
-- ARGV: entry id, group, session id
-- Returns the new entry id, or '' when the entry was stale and dropped
local current = redis.call('HGET', KEYS[1], 'entry')
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
if current ~= ARGV[1] then return '' end
local entry = redis.call('XADD', KEYS[2], '*', 'session', ARGV[3])
redis.call('HSET', KEYS[1], 'entry', entry)
return entry
