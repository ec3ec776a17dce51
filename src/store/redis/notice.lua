local notices, outbox, due = KEYS[1], KEYS[2], KEYS[3]
local problem = wrong_type({{notices, 'hash'}, {outbox, 'hash'}, {due, 'zset'}})
if problem then return {'corrupt', problem} end
-- ARGV: the marker, until when it is kept (Unix s), the event's id, JSON, due (Unix ms).
if redis.call('HSETNX', notices, ARGV[1], ARGV[2]) == 0 then return {'ok', '0'} end
redis.call('HSET', outbox, ARGV[3], ARGV[4])
redis.call('ZADD', due, ARGV[5], ARGV[3])
return {'ok', '1'}
