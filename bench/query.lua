-- wrk script for the suite's query scenarios: GETs the paths listed in the file named by
-- the URLS environment variable, round robin (each thread starts at its own offset), and
-- prints one RESULT line with queries/s, p50/p99 latency and non-2xx answers.
local paths = {}
local f = assert(io.open(os.getenv("URLS"), "r"))
for line in f:lines() do
  if #line > 0 then paths[#paths + 1] = line end
end
f:close()
local i = 0
local counter = 0
function setup(thread)
  thread:set("i", counter * 7919)
  counter = counter + 1
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT qps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, bad))
end
