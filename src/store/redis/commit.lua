local records, names, state, drops, revkey, feed, audit, usage, outbox, due =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local op, id = ARGV[1], ARGV[2]
local problem = wrong_type({{records, 'hash'}, {names, 'hash'}, {state, 'hash'},
  {drops, 'zset'}, {revkey, 'string'}, {feed, 'stream'}, {audit, 'list'}, {usage, 'hash'},
  {outbox, 'hash'}, {due, 'zset'}})
if problem then return {'corrupt', problem} end

local rev = nil
if ARGV[6] ~= 'none' then
  local why
  rev, why = next_revision(revkey, feed)
  if not rev then return {'corrupt', why} end
end

-- Preconditions: nothing has been written yet.
local name = nil
-- The record the event shows: the new one, or for a deletion the one deleted.
local shown = ARGV[4]
if op == 'create' then
  if redis.call('HEXISTS', names, ARGV[3]) == 1 then return {'name_taken'} end
  if redis.call('HEXISTS', records, id) == 1 then return {'conflict', '0'} end
elseif op == 'replace' or op == 'delete' then
  local raw = redis.call('HGET', records, id)
  if not raw then return {'not_found'} end
  local ok, rec = pcall(cjson.decode, raw)
  if not ok or type(rec) ~= 'table' or type(rec.revision) ~= 'number'
      or type(rec.name) ~= 'string' then
    return {'corrupt', 'the record of ' .. id .. ' in ' .. records .. ' is not readable'}
  end
  if rec.revision ~= tonumber(ARGV[3]) then
    return {'conflict', string.format('%d', rec.revision)}
  end
  name = rec.name
  if op == 'delete' then shown = raw end
  -- Keep a super-admin (ARGV[11], the time it must be live at): another record must be one.
  if ARGV[11] ~= '' and not other_super_admin(records, id, ARGV[11]) then
    return {'last_super_admin'}
  end
else
  return {'corrupt', 'unknown write ' .. tostring(op)}
end

-- Writes: every one of them is on a key of the right type, so none can fail.
if op == 'create' then
  redis.call('HSET', records, id, ARGV[4])
  redis.call('HSET', names, ARGV[3], id)
elseif op == 'replace' then
  redis.call('HSET', records, id, ARGV[4])
else
  redis.call('HDEL', records, id)
  redis.call('HDEL', usage, id)
  -- Free the name only if it is this token's (as the embedded store does).
  if redis.call('HGET', names, name) == id then redis.call('HDEL', names, name) end
end
if rev then
  redis.call('ZREM', drops, id)
  if ARGV[6] == 'set' then
    redis.call('HSET', state, id, ARGV[7])
    if ARGV[8] ~= '' then redis.call('ZADD', drops, ARGV[8], id) end
  else
    redis.call('HDEL', state, id)
  end
  redis.call('SET', revkey, string.format('%d', rev))
  add_change(feed, ARGV[10], rev, ARGV[9])
end
local seq = redis.call('RPUSH', audit, ARGV[5])
-- The event: ARGV[12] its id, ARGV[13] and ARGV[14] its JSON around the record, ARGV[15] due.
redis.call('HSET', outbox, ARGV[12],
  ARGV[13] .. shown .. ARGV[14] .. string.format('%d', seq) .. '}')
redis.call('ZADD', due, ARGV[15], ARGV[12])
return {'ok', string.format('%d', rev or 0), string.format('%d', seq)}
