-- wrk script: every request carries the same token.
--
--   TESSERA_BENCH_TOKEN=v4.public.... wrk -t1 -c64 -d10s --latency \
--       -s one_token.lua http://127.0.0.1:8080/v1/auth
--
-- The header is set once, so wrk sends a fixed request and runs no Lua per request (like the
-- bare runs, which use no script at all). Put a permission question in the URL's query.

local token = os.getenv("TESSERA_BENCH_TOKEN")
if token == nil or token == "" then
   error("set TESSERA_BENCH_TOKEN to the token to send")
end
wrk.headers["Authorization"] = "Bearer " .. token
