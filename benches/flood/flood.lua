-- wrk script: a flood of forged tokens, each request from a client address of its own choosing.
--
--   TESSERA_BENCH_TOKENS=forged.txt TESSERA_BENCH_SOURCES=16 wrk -t1 -c64 -d10s \
--       -s flood.lua http://127.0.0.1:8080/v1/auth
--
-- Request i carries token i of the file and `X-Forwarded-For: 10.a.b.c`, source i mod
-- TESSERA_BENCH_SOURCES (the server must trust 127.0.0.1 as a proxy). With
-- TESSERA_BENCH_SOURCE=ADDR instead, every request names that one address. Requests are
-- formatted once, at init.

local requests = {}
local n = 0
local i = 0

function init(args)
   local path = os.getenv("TESSERA_BENCH_TOKENS")
   if path == nil or path == "" then
      error("set TESSERA_BENCH_TOKENS to a file of tokens, one a line")
   end
   local fixed = os.getenv("TESSERA_BENCH_SOURCE")
   local sources = tonumber(os.getenv("TESSERA_BENCH_SOURCES") or "1")
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      local token = line:match("^%s*(.-)%s*$")
      if token ~= "" then
         local source = fixed
         if source == nil or source == "" then
            local s = n % sources
            source = string.format("10.%d.%d.%d", math.floor(s / 65536) % 256,
               math.floor(s / 256) % 256, s % 256)
         end
         n = n + 1
         requests[n] = wrk.format(nil, nil, {
            ["Host"] = wrk.headers["Host"],
            ["Authorization"] = "Bearer " .. token,
            ["X-Forwarded-For"] = source,
         })
      end
   end
   file:close()
   if n == 0 then
      error(path .. " holds no token")
   end
end

function request()
   i = i % n + 1
   return requests[i]
end
