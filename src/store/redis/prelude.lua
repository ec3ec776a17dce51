-- The type of each key, or why it is wrong: a command on a key of the wrong type fails, and a
-- failure after the first write would leave the write half-done.
local function wrong_type(expected)
  for _, want in ipairs(expected) do
    local t = redis.call('TYPE', want[1])['ok']
    if t ~= 'none' and t ~= want[2] then
      return want[1] .. ' holds a ' .. t .. ', not a ' .. want[2]
    end
  end
  return nil
end

-- The next state revision, checked against the feed so the XADD that follows cannot fail.
local function next_revision(revkey, feed)
  local cur = redis.call('GET', revkey)
  if cur == false then cur = '0' end
  if not string.match(cur, '^%d+$') then
    return nil, revkey .. ' is not a revision number'
  end
  local nxt = tonumber(cur) + 1
  if redis.call('EXISTS', feed) == 1 then
    local info = redis.call('XINFO', 'STREAM', feed)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        local ms = tonumber(string.match(info[i + 1], '^(%d+)-'))
        if ms == nil or ms >= nxt then
          return nil, feed .. ' already holds revision ' .. info[i + 1] ..
            ' but the counter is at ' .. cur
        end
      end
    end
  end
  return nxt
end

local function add_change(feed, retention, rev, change)
  redis.call('XADD', feed, 'MAXLEN', '~', retention, string.format('%d-0', rev), 'change', change)
end

-- Whether a record other than `id` is a super-admin live at `now` (RFC 3339 text in whole
-- seconds, UTC, with Z, as records hold their times): then its expiry, if any, sorts after.
local function other_super_admin(records, id, now)
  local all = redis.call('HGETALL', records)
  for i = 1, #all, 2 do
    if all[i] ~= id then
      local ok, rec = pcall(cjson.decode, all[i + 1])
      if ok and type(rec) == 'table' and type(rec.permissions) == 'table'
          and rec.permissions.super_admin == true then
        local at = rec.expires_at
        if at == nil or at == cjson.null or (type(at) == 'string' and at > now) then
          return true
        end
      end
    end
  end
  return false
end
