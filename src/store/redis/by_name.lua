local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return {} end
local rec = redis.call('HGET', KEYS[2], id)
if not rec then return {id} end
return {id, rec}
