-- wrk script for the flood: unauthenticated requests (a bad token, a
-- 4,000-character path) at a paced rate: each connection waits
-- BENCH_DELAY_MS between its requests, so the rate is about connections x
-- 1000 / BENCH_DELAY_MS per second. done() appends one JSON line to
-- BENCH_OUT with the requests made and the statuses answered.

local path = "/v1/jobs/" .. string.rep("x", 4000)
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "2")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}

function request()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer not-a-token" })
end

function delay()
  return pause
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _)
  local by_status = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(by_status) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local out = io.open(os.getenv("BENCH_OUT"), "a")
  out:write(string.format('{"requests":%d,"duration_us":%d,"by_status":{%s},"socket_errors":%d}\n',
    summary.requests, summary.duration, table.concat(parts, ","),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  out:close()
end
