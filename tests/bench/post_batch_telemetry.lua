-- wrk script: batch mode like post_batch.lua (100 CloudEvents per request, one ack
-- each), but with data that compresses like real telemetry rather than a run of one
-- letter: each event is a JSON reading from one of 1000 devices with varying values
-- and a random 16-hex-digit trace id, about 100 bytes. 64 different bodies, made once
-- and sent in turn, so a batch the log writes (requests coalesced per partition and
-- loop turn) holds different events, not copies of one request.
math.randomseed(20261126)
local function hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end
local bodies = {}
local seq = 0
for b = 1, 64 do
  local events = {}
  for i = 1, 100 do
    seq = seq + 1
    local dev = math.random(1, 1000)
    local data = string.format(
      '{"device":"sensor-%04d","seq":%d,"temp_c":%.2f,"humidity":%.1f,"hpa":%.1f,"trace":"%s"}',
      dev, seq, math.random() * 40 - 5, math.random() * 100, 950 + math.random() * 100, hex(16))
    events[i] = string.format(
      '{"specversion":"1.0","id":"%s","source":"/site/%d","type":"telemetry.reading",' ..
      '"subject":"sensor-%04d","datacontenttype":"application/json","data":%s}',
      hex(12), dev % 10, dev, data)
  end
  bodies[b] = "[" .. table.concat(events, ",") .. "]"
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/topics/telemetry",
                    {["Content-Type"] = "application/cloudevents-batch+json"},
                    bodies[(n % 64) + 1])
end
