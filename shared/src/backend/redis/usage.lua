-- Tokens spent by one scope (a user or an address), summed in fixed windows aligned to
-- the epoch; every window is a field `name:start_ms` of one hash, so recording an
-- answer touches one key. Past windows' fields are dropped when a new one is written;
-- the key lapses when its longest window ends. Time is Redis's own (`TIME`).
-- KEYS: the scope's usage hash
-- ARGV: tokens to add (0: only read), then name, length ms for each window
-- Returns: used, resets_at_ms for each window, in ARGV's order.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local out, current = {}, {}
local last_end = 0
for i = 2, #ARGV, 2 do
  local length = tonumber(ARGV[i + 1])
  local start = now - (now % length)
  local field = ARGV[i] .. ':' .. string.format('%d', start)
  current[field] = true
  local used
  if tokens > 0 then
    used = redis.call('HINCRBY', key, field, tokens)
  else
    used = tonumber(redis.call('HGET', key, field) or '0')
  end
  out[#out + 1] = used
  out[#out + 1] = start + length
  if start + length > last_end then last_end = start + length end
end
if tokens > 0 then
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if not current[field] then redis.call('HDEL', key, field) end
  end
  redis.call('PEXPIREAT', key, last_end)
end
return out
