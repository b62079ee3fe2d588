-- wrk script for bench/bench.py: optionally POSTs the JSON body in the file named by
-- WRK_BODY_FILE (a /query request), and at the end prints one JSON line with the figures the
-- benchmark reports, so nothing has to scrape wrk's human-readable output.
--
-- With WRK_DISTINCT=1, every request asks about a domain of its own: each "__DOMAIN__" in the
-- body becomes synthetic-<thread>x<n>.com (the fake DomainTools API knows every such name).
-- Identical concurrent queries would share one upstream call in our server (coalescing), so
-- only distinct ones measure a query that really goes upstream.
local body_file = os.getenv("WRK_BODY_FILE")
local distinct = os.getenv("WRK_DISTINCT") == "1"
local template = nil
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  template = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.body = template
  wrk.headers["Content-Type"] = "application/json"
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
if distinct and template then
  function request()
    counter = counter + 1
    local domain = string.format("synthetic-%dx%d.com", tid or 0, counter)
    local body = template:gsub("__DOMAIN__", domain)
    return wrk.format("POST", nil, nil, body)
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"rps":%.2f,"bytes":%d,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
