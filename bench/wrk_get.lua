-- wrk script: GET one path of the service with its headers, the same request every time.
--
--   wrk -t1 -c32 -d10s -s bench/wrk_get.lua http://127.0.0.1:PORT -- PATH TOKEN COLLECTION HOST
--
-- done() (bench/wrk_report.lua) prints one line "BENCH {json}" with the counts and latency percentiles.

-- threads and done(): bench/wrk_report.lua, next to this script
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
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
