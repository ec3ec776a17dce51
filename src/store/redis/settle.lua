local outbox, due = KEYS[1], KEYS[2]
local problem = wrong_type({{outbox, 'hash'}, {due, 'zset'}})
if problem then return {'corrupt', problem} end
-- An event pruned meanwhile stays gone.
if redis.call('HEXISTS', outbox, ARGV[1]) == 0 then return {'ok'} end
redis.call('HSET', outbox, ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', due, ARGV[1])
else
  redis.call('ZADD', due, ARGV[3], ARGV[1])
end
return {'ok'}
