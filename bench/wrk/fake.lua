-- wrk script for bench/bench.py's baseline: signed Iris Investigate calls straight to the fake
-- DomainTools API, with the same client (wrk) and settings as the server phases, so the
-- server's overhead is a difference between two wrk runs. WRK_FORM_FILE holds the signed form
-- body (the signature covers user, timestamp and path, not the domain); each "__DOMAIN__" in it
-- becomes synthetic-<thread>x<n>.com, as in bench.lua.
local f = assert(io.open(os.getenv("WRK_FORM_FILE"), "rb"))
local template = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
function request()
  counter = counter + 1
  local domain = string.format("synthetic-base%dx%d.com", tid or 0, counter)
  return wrk.format("POST", nil, nil, (template:gsub("__DOMAIN__", domain)))
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
