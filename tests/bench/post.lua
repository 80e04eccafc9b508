-- wrk script: keep-alive POSTs of a 100-byte body (binary mode), keys rotating over 1000.
local body = string.rep("x", 100)
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/topics/bench?key=k" .. (n % 1000),
                    {["Content-Type"] = "text/plain"}, body)
end
