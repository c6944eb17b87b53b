-- wrk script for authenticated reads: every request carries one token of
-- the file named by BENCH_TOKENS (one per line), in turn, so a file of one
-- line sends the same token every time and a file of 1,000 lines sends
-- 1,000 distinct tokens. Every scenario (direct upstream included) runs
-- through this script, so the load tool's own cost is the same for all.
-- done() appends one JSON line to BENCH_OUT.

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local i = 0
non2xx = 0

function init(args)
  for n, token in ipairs(tokens) do
    requests[n] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. token })
  end
  -- Threads start at different places in the pool.
  i = (id * 997) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end

function done(summary, latency, _)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non2xx") or 0) end
  local out = io.open(os.getenv("BENCH_OUT"), "a")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"non200":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  out:close()
end
