-- Ends a message, all or nothing: stores the answer, publishes its last events,
-- acknowledges the inbox entry and makes the next pending message, if any, the
-- session's current one (see accept_message.lua) with a new inbox entry. Fenced by
-- the attempt number; resets the message's tries, any cancel request and its stored
-- tool calls (the answer carries them now).
-- KEYS: meta, history, pending, idem, events, inbox, sessions, calls
-- ARGV: session id, attempt, message id, answer json ('' = none), channel,
--       log max entries, ttl secs, entry id, group, now ms, history max,
--       ready channel ('' = none: one Redis wakes a blocked reader itself), last seq the worker saw ('' = unknown, see publish_batch.lua), n, event json x n
-- Returns 'ok' | 'fenced' | 'gone'
-- Meta's `last_seq` is left at the last seq of the published batch: a hint, not the
-- counter (the log is, see publish_batch.lua), valid as `after` since it is a batch's
-- last seq; a publish since then only costs the next begin one read of the log.
-- Hot path: HMGET, RPUSH, the batch's XADD and SPUBLISH, LPOP (nothing waits), XACK,
-- XDEL and one HSET; the TTLs as refresh_ttl.lua says.
local function ack()
  redis.call('XACK', KEYS[6], ARGV[9], ARGV[8])
  redis.call('XDEL', KEYS[6], ARGV[8])
end
local meta = redis.call('HMGET', KEYS[1], 'attempt', 'count', 'cancel', 'calls',
  'refreshed_ms', 'head_id')
if not meta[1] then ack() return 'gone' end
if meta[1] ~= ARGV[2] then return 'fenced' end
local fields = {'last_ms', ARGV[10]}
-- Whether the session has a current message when this one is done.
local more = meta[6] and meta[6] ~= ''
if meta[6] == ARGV[3] then
  if ARGV[4] ~= '' then
    local kept = tonumber(ARGV[11])
    local length = redis.call('RPUSH', KEYS[2], ARGV[4])
    if length > kept then redis.call('LTRIM', KEYS[2], -kept, -1) end
    if length == 1 then redis.call('EXPIRE', KEYS[2], ARGV[7]) end
    fields[#fields + 1] = 'count'
    fields[#fields + 1] = tonumber(meta[2] or 0) + 1
  end
  local n = tonumber(ARGV[14])
  if n > 0 then
    local last = publish_batch(KEYS[5], ARGV[5], ARGV[6], ARGV[13], argv_slice(15, n))
    -- A log this batch made (nothing was published before) has no TTL yet.
    if last == n then redis.call('EXPIRE', KEYS[5], ARGV[7]) end
    -- Where the next answer's begin starts numbering without reading the log.
    fields[#fields + 1] = 'last_seq'
    fields[#fields + 1] = last
  end
  -- The next message, if one waits, becomes the current one.
  local next = redis.call('LPOP', KEYS[3])
  local next_id = ''
  if next then next_id = cjson.decode(next)['id'] else next = '' end
  more = next ~= ''
  for _, field in ipairs({'head', next, 'head_id', next_id, 'tries', 0}) do
    fields[#fields + 1] = field
  end
  local dropped = {}
  if meta[3] then dropped[#dropped + 1] = 'cancel' end
  if meta[4] then
    redis.call('DEL', KEYS[8])
    dropped[#dropped + 1] = 'calls'
  end
  if #dropped > 0 then redis.call('HDEL', KEYS[1], unpack(dropped)) end
end
ack()
if more then
  fields[#fields + 1] = 'entry'
  fields[#fields + 1] = redis.call('XADD', KEYS[6], '*', 'session', ARGV[1])
  if ARGV[12] ~= '' then redis.call('SPUBLISH', ARGV[12], '1') end
end
if refresh_due(meta[5], ARGV[10], ARGV[7]) then
  refresh_ttl(5, ARGV[7], KEYS[7], ARGV[10], ARGV[1])
  fields[#fields + 1] = 'refreshed_ms'
  fields[#fields + 1] = ARGV[10]
end
redis.call('HSET', KEYS[1], unpack(fields))
return 'ok'
