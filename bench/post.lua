wrk.method = "POST"
wrk.body = '{"status":"paid","order":{"id":"A-1"}}'
wrk.headers["Content-Type"] = "application/json"
