local outbox, due = KEYS[1], KEYS[2]
local problem = wrong_type({{outbox, 'hash'}, {due, 'zset'}})
if problem then return {'corrupt', problem} end
-- Due at ARGV[1] (Unix ms), at most ARGV[3] of them, each leased until ARGV[2].
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {'ok'}
for _, id in ipairs(ids) do
  local event = redis.call('HGET', outbox, id)
  if event then
    redis.call('ZADD', due, ARGV[2], id)
    out[#out + 1] = event
  else
    redis.call('ZREM', due, id)
  end
end
return out
