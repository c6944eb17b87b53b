-- wrk script for triggers: POST /v1/connections/{id}/sync, each with a
-- distinct Idempotency-Key, rotating over the connection ids in
-- BENCH_CONNECTIONS, with the token in BENCH_TOKENS. Each thread stops once
-- it has BENCH_PER_THREAD accepted (202) answers, so the queue ends up
-- holding threads x BENCH_PER_THREAD jobs, and creates BENCH_DONE.<thread>
-- (wrk's own duration is the -d it was given, so bench/run times the run
-- and interrupts wrk once every thread is done). done() appends one JSON
-- line to BENCH_OUT.

local token
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if #line > 0 then token = line; break end
end
local connections = {}
for line in io.lines(os.getenv("BENCH_CONNECTIONS")) do
  if #line > 0 then connections[#connections + 1] = line end
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local target = tonumber(os.getenv("BENCH_PER_THREAD"))
local sent = 0
accepted = 0
refused = 0
statuses = {}

function request()
  sent = sent + 1
  local connection = connections[(sent * 7 + id) % #connections + 1]
  return wrk.format("POST", "/v1/connections/" .. connection .. "/sync", {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = string.format("bench-%d-%d", id, sent),
  })
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    if accepted == target then
      -- Tell bench/run, which times the run and then stops wrk.
      io.open(os.getenv("BENCH_DONE") .. "." .. id, "w"):close()
      wrk.thread:stop()
    end
  else
    refused = refused + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, _)
  local total_accepted, total_refused, by_status = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_accepted = total_accepted + (thread:get("accepted") or 0)
    total_refused = total_refused + (thread:get("refused") or 0)
    for status, n in pairs(thread:get("statuses") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local refused_by_status = {}
  for status, n in pairs(by_status) do
    refused_by_status[#refused_by_status + 1] = string.format('"%d":%d', status, n)
  end
  local out = io.open(os.getenv("BENCH_OUT"), "a")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"accepted":%d,"refused":%d,"refused_by_status":{%s},"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, total_accepted, total_refused, table.concat(refused_by_status, ","),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
  out:close()
end
