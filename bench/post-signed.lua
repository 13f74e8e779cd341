-- The seed body with its GitHub signature (scripts/load computes it with
-- `hookflow sign` and passes it in SIGNATURE).
wrk.method = "POST"
wrk.body = '{"status":"paid","order":{"id":"A-1"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
