-- Shared by bench/wrk_body.lua and bench/wrk_get.lua (each loads it with dofile): the list of wrk's threads
-- and done(), which prints one line "BENCH {json}" with the counts and latency percentiles (microseconds).
-- A script that loads it adds each thread to `threads` in its setup() and counts its requests in the global
-- `counter`.

threads = {}

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
