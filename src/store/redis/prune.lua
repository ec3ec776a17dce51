local state, drops, revkey, feed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local problem = wrong_type({{state, 'hash'}, {drops, 'zset'}, {revkey, 'string'},
  {feed, 'stream'}})
if problem then return {'corrupt', problem} end
-- drop_after < now, at second granularity.
local due = redis.call('ZRANGEBYSCORE', drops, '-inf', '(' .. ARGV[1], 'LIMIT', 0,
  tonumber(ARGV[2]))
if #due == 0 then return {'ok', '0'} end
for _, id in ipairs(due) do
  if not string.match(id, '^%x+%-%x+%-%x+%-%x+%-%x+$') then
    return {'corrupt', drops .. ' holds ' .. id .. ', not a token id'}
  end
end
local rev, why = next_revision(revkey, feed)
if not rev then return {'corrupt', why} end
for i, id in ipairs(due) do
  redis.call('ZREM', drops, id)
  redis.call('HDEL', state, id)
  -- ARGV[4], a random tag below 2^52: adding a batch index to it stays exact and unique.
  local tag = string.format('%d', tonumber(ARGV[4]) + i - 1)
  add_change(feed, ARGV[3], rev + i - 1, '{"id":"' .. id .. '","tag":' .. tag .. ',"entry":null}')
end
redis.call('SET', revkey, string.format('%d', rev + #due - 1))
return {'ok', string.format('%d', #due)}
