-- Assigns the next seqs to a batch of events, appends the batch to the session's
-- event log and publishes it, in one step so no subscriber can see an event the log
-- does not have, or a seq twice. A worker's publish carries its fence (attempt and
-- message id): it is refused when another attempt owns the message, or when the
-- message was cancelled (the worker then finishes with what it has).
-- KEYS: meta, events
-- ARGV: channel, log max entries, ttl secs, attempt ('' = no fence), message id,
--       last seq the publisher saw ('' = unknown, see publish_batch.lua), n, event json x n
-- Returns the last seq, 0 when the session is gone, -1 when fenced, -2 when cancelled.
-- Hot path (every chunk): one read of the fence fields, no separate EXISTS, the log
-- appended to without reading it first (EVALSHA, HMGET, XADD, SPUBLISH), and the
-- log's TTL set only when this batch created it (accept and finish refresh it).
local fence = redis.call('HMGET', KEYS[1], 'attempt', 'cancel')
if not fence[1] then return 0 end
if ARGV[4] ~= '' then
  if fence[1] ~= ARGV[4] then return -1 end
  if fence[2] == ARGV[5] then return -2 end
end
local n = tonumber(ARGV[7])
local last = publish_batch(KEYS[2], ARGV[1], ARGV[2], ARGV[6], argv_slice(8, n))
if last == n then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return last
