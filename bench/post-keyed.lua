-- Every request a new delivery (each one claims its key), or, with DUPLICATES set,
-- every request the same delivery (each one is answered from the first).
wrk.method = "POST"
wrk.body = '{"status":"paid","order":{"id":"A-1"}}'
wrk.headers["Content-Type"] = "application/json"
local duplicates = os.getenv("DUPLICATES")
local n = 0
local salt = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  if duplicates then
    wrk.headers["X-Delivery"] = "the-same-delivery"
  else
    wrk.headers["X-Delivery"] = salt .. "-" .. n
  end
  return wrk.format()
end
