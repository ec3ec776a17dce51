-- wrk script: rotate through a file of tokens, one a line, one token per request.
--
--   TESSERA_BENCH_TOKENS=tokens.txt wrk -t1 -c64 -d10s --latency \
--       -s rotate.lua http://127.0.0.1:8080/v1/auth
--
-- Each wrk thread reads the file once at init and pre-formats one request per token, so the
-- per-request Lua work is an index increment and a table read. Thread k starts at offset
-- floor(k * 0.618... * n) mod n, so threads do not walk the list in step.
--
-- With TESSERA_BENCH_ORDER=random, each request takes a token at random instead (uniform,
-- with replacement): the order a gateway with many clients sees, where no token comes back at
-- a fixed period.
--
-- A file holding one token many times measures the cost of this script itself (the Lua
-- callback wrk makes per request) against one_token.lua.

local thread_ids = 0

function setup(thread)
   thread:set("thread_id", thread_ids)
   thread_ids = thread_ids + 1
end

local requests = {}
local n = 0
local i = 0
local random_order = false

function init(args)
   local path = os.getenv("TESSERA_BENCH_TOKENS")
   if path == nil or path == "" then
      error("set TESSERA_BENCH_TOKENS to a file of tokens, one a line")
   end
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      local token = line:match("^%s*(.-)%s*$")
      if token ~= "" then
         n = n + 1
         requests[n] = wrk.format(nil, nil, {
            ["Host"] = wrk.headers["Host"],
            ["Authorization"] = "Bearer " .. token,
         })
      end
   end
   file:close()
   if n == 0 then
      error(path .. " holds no token")
   end
   local id = thread_id or 0
   i = math.floor(id * 0.6180339887 * n) % n
   random_order = os.getenv("TESSERA_BENCH_ORDER") == "random"
   math.randomseed(os.time() + 7919 * id)
end

function request()
   if random_order then
      return requests[math.random(n)]
   end
   i = i % n + 1
   return requests[i]
end
