-- Bounded holder sets ("at most N sockets per user", "at most N sessions per user"),
-- shared by every pod. The set is a sorted set of holder ids scored by the epoch ms at
-- which each holder's claim lapses; a live holder refreshes its claim, so the claims of
-- a pod that crashed lapse on their own and never leak a slot for longer than a TTL.
-- Time is Redis's own (`TIME`), so pods with skewed clocks agree.
-- KEYS: the set
-- ARGV: op (acquire | refresh | release | count), holder, limit, ttl ms
-- Returns: acquire -> {1 | 0, holders now}; refresh -> 1 | 0 (not held); release -> 1;
-- count -> holders.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local op = ARGV[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)

-- The key lives as long as its longest claim.
local function keep_alive()
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', key, math.floor(tonumber(last[2])) + 1) end
end

if op == 'count' then return redis.call('ZCARD', key) end
if op == 'release' then
  redis.call('ZREM', key, ARGV[2])
  return 1
end
local expires = now + tonumber(ARGV[4])
local held = redis.call('ZSCORE', key, ARGV[2])
if op == 'refresh' then
  if not held then return 0 end
  redis.call('ZADD', key, expires, ARGV[2])
  keep_alive()
  return 1
end
-- acquire: a holder that already has a slot keeps it (and refreshes it).
if not held and redis.call('ZCARD', key) >= tonumber(ARGV[3]) then
  return {0, redis.call('ZCARD', key)}
end
redis.call('ZADD', key, expires, ARGV[2])
keep_alive()
return {1, redis.call('ZCARD', key)}
