-- Prepended to the scripts that mark a session active (see `Scripts::load`): the idle
-- TTL of a session's keys is refreshed at most once per TTL/20, not on every message
-- and answer (five EXPIREs and a ZADD each time). The meta field `refreshed_ms` says
-- when it last was; a session therefore lives between 0.95 x TTL and TTL after its
-- last activity, and its entry in the live-session index (scored by that time) is
-- dropped with it. A key made between two refreshes (the pending list, the history)
-- gets its TTL from the script that makes it.

-- Whether the keys' TTLs are due for a refresh at `now_ms`, given meta's `refreshed_ms`.
local function refresh_due(refreshed_ms, now_ms, ttl_secs)
  if not refreshed_ms then return true end
  return tonumber(now_ms) - tonumber(refreshed_ms) >= tonumber(ttl_secs) * 50
end

-- Sets the TTL of KEYS[1] .. KEYS[n] and the session's score in the index `sessions`;
-- the caller writes `refreshed_ms` = `now_ms` into meta (in the HSET it makes anyway).
local function refresh_ttl(n, ttl_secs, sessions, now_ms, session_id)
  for i = 1, n do redis.call('EXPIRE', KEYS[i], ttl_secs) end
  redis.call('ZADD', sessions, now_ms, session_id)
end

