-- loadtest/soak's wrk script: loadtest/mix.lua's request mix, loaded from it (X-Forwarded-For from
-- real addresses, a write-token cookie on every 10th request, every 4th on /static),
-- paced to SOAK_RATE requests/s when set: delay() gives each request the next slot of
-- a fixed schedule (one every 1/SOAK_RATE s, on the monotonic clock via LuaJIT's FFI),
-- so the rate does not depend on latency as long as some connection is free; a
-- schedule fallen behind by over 50 ms restarts from now instead of bursting. wrk
-- waits whole milliseconds, so delays are dithered. Every response is counted by
-- status and X-Meridian-Region; done() prints one line the harness parses:
-- "SOAK key=value ...". Meant for wrk -t1.
-- The mix itself (request()) comes from mix.lua; MIX_LUA is its path.
dofile(os.getenv("MIX_LUA"))
local rate = tonumber(os.getenv("SOAK_RATE") or "")
counts = {}

if rate then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
    int clock_gettime(int clk, soak_timespec *ts);
  ]]
  local ts = ffi.new("soak_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval, slot = 1000 / rate, nil
  delay = function()
    local now = now_ms()
    if slot == nil or slot < now - 50 then slot = now - 50 end
    slot = slot + interval
    local d = slot - now
    if d <= 0 then return 0 end
    local whole = math.floor(d)
    if math.random() < d - whole then return whole + 1 end
    return whole
  end
end

response = function(status, headers)
  local region = headers["x-meridian-region"] or headers["X-Meridian-Region"] or "none"
  local k1, k2 = "status_" .. status, "region_" .. region
  counts[k1] = (counts[k1] or 0) + 1
  counts[k2] = (counts[k2] or 0) + 1
end

local threads = {}
setup = function(thread) table.insert(threads, thread) end

done = function(summary, latency)
  local e = summary.errors
  local out = string.format(
    "SOAK requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max)
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do out = out .. " " .. k .. "=" .. v end
  end
  print(out)
end
