-- wrk script: POST a fresh 100-relationship body per request, every id new (see bench/workload.py).
--
--   wrk -t1 -c32 -d10s -s bench/wrk_body.lua http://127.0.0.1:PORT -- TEMPLATE PHASE TOKEN COLLECTION HOST
--
-- TEMPLATE is the body with {T} (tag: PHASE byte + thread number) and {C} (the request counter scrambled as
-- bench.workload.scramble does, 8 hex digits).
-- The whole raw request (request line, headers, body) is prebuilt as chunks around the counter slots, so a
-- request costs one string.format and one table.concat of ~33 KB: measured far below one core at the
-- ceiling's rate, so the generator does not bottleneck the servers it drives.
-- done() (bench/wrk_report.lua) prints one line "BENCH {json}" with the counts and latency percentiles.

-- threads and done(): bench/wrk_report.lua, next to this script
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
counter = 0 -- global: done() reads it from every thread
local parts, slots

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local template_path, phase, token, collection, host = args[1], args[2], args[3], args[4], args[5]
  local file = assert(io.open(template_path, "rb"))
  local text = file:read("*a")
  file:close()
  text = text:gsub("{T}", string.format("%s%02x", phase, thread_index))
  local chunks, start = {}, 1
  while true do
    local first, last = text:find("{C}", start, true)
    if not first then
      chunks[#chunks + 1] = text:sub(start)
      break
    end
    chunks[#chunks + 1] = text:sub(start, first - 1)
    start = last + 1
  end
  slots = #chunks - 1
  local length = #text + slots * (8 - 3)
  chunks[1] = "POST /apollo/er/relationships HTTP/1.1\r\n" ..
    "Host: " .. host .. "\r\n" ..
    "Authorization: Bearer " .. token .. "\r\n" ..
    "Content-Type: application/json\r\n" ..
    "ercollectionid: " .. collection .. "\r\n" ..
    "async: false\r\n" ..
    "Content-Length: " .. length .. "\r\n\r\n" .. chunks[1]
  parts = {}
  for i = 1, #chunks do parts[2 * i - 1] = chunks[i] end
end

-- counter * 2654435761 mod 2^32, exact in doubles: each partial product stays below 2^53
local function scramble(c)
  local low, high = c % 65536, math.floor(c / 65536)
  return (low * 2654435761 + ((high * 2654435761) % 65536) * 65536) % 4294967296
end

function request()
  local value = string.format("%08x", scramble(counter))
  counter = counter + 1
  for i = 1, slots do parts[2 * i] = value end
  return table.concat(parts)
end
