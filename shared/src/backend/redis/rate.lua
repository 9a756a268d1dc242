-- A GCRA rate check shared by every pod ("at most R requests per minute, B at once"):
-- the key holds the bucket's theoretical arrival time (TAT, epoch microseconds). A
-- request at `now` would move it to max(TAT, now) + interval; it passes when that is
-- at most burst * interval ahead of now. One key, lapsing when the bucket is full
-- again, so idle callers leave nothing behind. Time is Redis's own (`TIME`), so pods
-- with skewed clocks agree.
-- KEYS: the bucket
-- ARGV: interval us, burst
-- Returns: {1, remaining} when counted; {0, retry after us} when over the rate.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval)}
