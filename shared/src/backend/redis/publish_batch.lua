-- Prepended to the scripts that publish events (see `Scripts::load`): numbers event
-- bodies (a table of JSON objects, e.g. `argv_slice(first, n)`) on from the session's
-- last seq, appends them to its log as one entry and publishes them as one
-- newline-separated payload on the session's shard channel. Returns the new last seq.
-- The `{"seq":N,` prefix is the one `backend::batch` defines and parses.
--
-- The log is the seq counter (no counter of its own to read and bump per batch): an
-- entry's id is `<its first seq>-0` (entries written before this scheme are keyed by
-- their last seq; the ids of both grow with the seqs) and the last seq is the last
-- line's of the newest entry, 0 with no log. A publisher passes `after`, the last seq
-- its previous publish returned ('' = none), and the entry goes in as `<after + 1>-0`
-- without reading the log first. That is exact: `after` is always some batch's last
-- seq (`model::LogPosition`), so a batch published since starts at `after + 1` or
-- later and its id is at least `<after + 1>-0`, which XADD refuses (an id must exceed
-- the newest); with none since, the newest id is at most `after`. Refused, the script
-- reads the log's last seq and numbers from there: a stale `after` costs one read,
-- never a seq twice or a gap.

-- The last seq of the newest entry of the log `events`; 0 when there is none.
local function log_last(events)
  local newest = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
  if not newest then return 0 end
  local fields, payload = newest[2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then payload = fields[i + 1] end
  end
  local line = 1
  while payload do
    local newline = string.find(payload, '\n', line, true)
    if not newline then break end
    line = newline + 1
  end
  local seq = payload and tonumber(string.match(payload, '^{"seq":(%d+),', line))
  if not seq then error('event log entry ' .. newest[1] .. ' carries no seq') end
  return seq
end

-- Whether an XADD (run with `redis.pcall`) was refused.
local function refused(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- ARGV[first] .. ARGV[first + n - 1] as a table.
local function argv_slice(first, n)
  local slice = {}
  for i = 1, n do slice[i] = ARGV[first + i - 1] end
  return slice
end

local function publish_batch(events, channel, max_entries, after, bodies)
  local n = #bodies
  local function append(from)
    local lines = {}
    for i = 1, n do
      lines[i] = '{"seq":' .. (from + i) .. ',' .. string.sub(bodies[i], 2)
    end
    local payload = table.concat(lines, '\n')
    return redis.pcall('XADD', events, 'MAXLEN', '~', max_entries, (from + 1) .. '-0',
      'e', payload), payload
  end
  local from = tonumber(after)
  local reply, payload
  if from then reply, payload = append(from) end
  if not from or refused(reply) then
    -- Only "another batch came first" is worth a retry.
    if from and not string.find(reply.err, 'equal or smaller', 1, true) then error(reply) end
    from = log_last(events)
    reply, payload = append(from)
    if refused(reply) then error(reply) end
  end
  redis.call('SPUBLISH', channel, payload)
  return from + n
end

