-- Creates a session unless one exists under that id. The other keys of an earlier
-- session under this id may outlive its meta (publishing refreshes only the event
-- log's TTL), so they are cleared: a new session starts with no history and its
-- seqs from 1 (the log is the seq counter, see publish_batch.lua: a leftover log would
-- carry on from its last seq).
-- KEYS: meta, history, pending, idem, events, sessions
-- ARGV: session id, user id ('' = none), created ms, protocol, metadata json, ttl secs
-- Returns 1 | 0 (the id is taken)
-- `refreshed_ms`: when the keys' TTLs were set (see refresh_ttl.lua); `head`,
-- `head_id`: no current message (see accept_message.lua); `charge`: no payer yet.
-- Also drops sessions idle past the TTL from the live-session index, so counting
-- them (`/health`) stays a read.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'created_ms', ARGV[3], 'last_ms', ARGV[3],
  'count', 0, 'protocol', ARGV[4], 'metadata', ARGV[5], 'attempt', 0,
  'refreshed_ms', ARGV[3], 'head', '', 'head_id', '', 'charge', '')
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[6]) * 1000)
return 1
