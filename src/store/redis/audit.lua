local problem = wrong_type({{KEYS[1], 'list'}})
if problem then return {'corrupt', problem} end
return {'ok', string.format('%d', redis.call('RPUSH', KEYS[1], ARGV[1]))}
