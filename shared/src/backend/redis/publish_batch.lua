-- Prepended to the scripts that publish events (see `Scripts::load`): assigns the next
-- seqs to n event bodies (ARGV[first] .. ARGV[first + n - 1], each a JSON object),
-- appends them to the session's log as one entry keyed by the last seq, and publishes
-- them as one newline-separated payload on the session's shard channel. Returns the
-- last seq. The `{"seq":N,` prefix is the one `backend::batch` defines and parses.
local function publish_batch(meta, events, channel, max_entries, first, n)
  local last = redis.call('HINCRBY', meta, 'seq', n)
  local lines = {}
  for i = 1, n do
    lines[i] = '{"seq":' .. (last - n + i) .. ',' .. string.sub(ARGV[first + i - 1], 2)
  end
  local payload = table.concat(lines, '\n')
  redis.call('XADD', events, 'MAXLEN', '~', max_entries, last .. '-0', 'e', payload)
  redis.call('SPUBLISH', channel, payload)
  return last
end

