-- wrk script: batch mode, 100 CloudEvents of ~100 bytes of data per request, one ack each.
local events = {}
for i = 1, 100 do
  events[i] = string.format('{"specversion":"1.0","id":"e%d","source":"/bench","type":"bench","subject":"bench","data":"%s"}', i, string.rep("y", 100))
end
local body = "[" .. table.concat(events, ",") .. "]"
request = function()
  return wrk.format("POST", "/topics/benchbatch",
                    {["Content-Type"] = "application/cloudevents-batch+json"}, body)
end
