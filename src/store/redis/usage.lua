local records, usage = KEYS[1], KEYS[2]
local problem = wrong_type({{records, 'hash'}, {usage, 'hash'}})
if problem then return {'corrupt', problem} end
for i = 1, #ARGV, 3 do
  local id, ms = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', records, id) == 1 then
    local old = redis.call('HGET', usage, id)
    local old_ms = old and tonumber(string.match(old, '^(%d+) '))
    if not old_ms or old_ms <= ms then
      redis.call('HSET', usage, id, ARGV[i + 1] .. ' ' .. ARGV[i + 2])
    end
  end
end
return {'ok'}
