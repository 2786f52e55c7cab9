-- wrk script: GET one path of the service with its headers, the same request every time.
--
--   wrk -t1 -c32 -d10s -s bench/wrk_get.lua http://127.0.0.1:PORT -- PATH TOKEN COLLECTION HOST
--
-- done() prints one line "BENCH {json}" with the counts and latency percentiles (microseconds), as
-- bench/wrk_body.lua does.

local threads = {}
counter = 0 -- global: done() reads it from every thread
local raw

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path, token, collection, host = args[1], args[2], args[3], args[4]
  raw = "GET " .. path .. " HTTP/1.1\r\n" ..
    "Host: " .. host .. "\r\n" ..
    "Authorization: Bearer " .. token .. "\r\n" ..
    "ercollectionid: " .. collection .. "\r\n\r\n"
end

function request()
  counter = counter + 1
  return raw
end

function done(summary, latency, requests)
  local sent = 0
  for _, thread in ipairs(threads) do sent = sent + thread:get("counter") end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"sent":%d,' ..
    '"latency_p50_us":%d,"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d,"latency_mean_us":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, sent,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
