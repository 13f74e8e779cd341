"""The providers' official webhook libraries, for tests/tests/official_sdks.rs.

Reads one JSON request on stdin and prints one JSON answer:
  {"op": "sign", "preset": P, "secret": S, "body": B, ...}  -> {"headers": [[name, value], ...]}
  {"op": "verify", "preset": P, "secret": S, "body": B, "headers": [[name, value], ...], ...}
                                                             -> {"valid": bool, "why": text}
Twilio also takes "url" (the URL Twilio requests, with its query), "form" ([[name,
value], ...], for a form body; absent for a JSON body) and "algorithm". Standard
Webhooks takes "id", "timestamp" and "names" ("svix" or "webhook").

An import that fails is an error (exit 1), never a skip: scripts/test installs them.
"""

import json
import sys
import time
from datetime import datetime, timezone

import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from twilio.request_validator import RequestValidator


class MultiDict(dict):
    """A form as Flask's MultiDict: every value of a repeated name (`getall`)."""

    def getall(self, name):
        return self[name]


def form_of(pairs):
    form = MultiDict()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def sign(req):
    preset, secret, body = req["preset"], req["secret"], req["body"]
    now = req.get("timestamp") or int(time.time())
    if preset == "stripe":
        value = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=now)
        return [["Stripe-Signature", value]]
    if preset == "slack":
        verifier = slack_sdk.signature.SignatureVerifier(secret)
        value = verifier.generate_signature(timestamp=str(now), body=body)
        return [["X-Slack-Request-Timestamp", str(now)], ["X-Slack-Signature", value]]
    if preset == "standard-webhooks":
        at = datetime.fromtimestamp(now, tz=timezone.utc)
        if req.get("names") == "svix":
            value = svix.webhooks.Webhook(secret).sign(req["id"], at, body)
            prefix = "svix"
        else:
            value = standardwebhooks.Webhook(secret).sign(req["id"], at, body)
            prefix = "webhook"
        return [[f"{prefix}-id", req["id"]], [f"{prefix}-timestamp", str(now)], [f"{prefix}-signature", value]]
    if preset == "twilio":
        validator = RequestValidator(secret)
        params = form_of(req["form"]) if "form" in req else {}
        value = validator.compute_signature(req["url"], params, req.get("algorithm"))
        return [["X-Twilio-Signature", value]]
    raise ValueError(f"no official signer for {preset}")


def verify(req):
    preset, secret, body = req["preset"], req["secret"], req["body"]
    headers = {name: value for name, value in req["headers"]}
    if preset == "stripe":
        stripe.WebhookSignature.verify_header(body, headers.get("Stripe-Signature"), secret, 300)
        return True
    if preset == "slack":
        return slack_sdk.signature.SignatureVerifier(secret).is_valid_request(body, headers)
    if preset == "standard-webhooks":
        # svix's verifier reads svix-* and webhook-* names; standardwebhooks only the latter.
        svix.webhooks.Webhook(secret).verify(body, headers)
        if not any(name.lower().startswith("svix-") for name in headers):
            standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)
        return True
    if preset == "twilio":
        lower = {name.lower(): value for name, value in headers.items()}
        params = form_of(req["form"]) if "form" in req else body
        algorithm = twilio_algorithm(lower.get("x-twilio-webhooks-signature-settings"))
        return RequestValidator(secret).validate(
            req["url"], params, lower.get("x-twilio-signature", ""), algorithm
        )
    raise ValueError(f"no official verifier for {preset}")


def twilio_algorithm(settings):
    from twilio.request_validator import get_signature_algorithm

    return get_signature_algorithm(settings)


def main():
    req = json.load(sys.stdin)
    if req["op"] == "sign":
        print(json.dumps({"headers": sign(req)}))
        return
    try:
        valid, why = bool(verify(req)), ""
    except Exception as e:  # each library raises its own error type for a refusal
        valid, why = False, f"{type(e).__name__}: {e}"
    print(json.dumps({"valid": valid, "why": why}))


if __name__ == "__main__":
    main()
