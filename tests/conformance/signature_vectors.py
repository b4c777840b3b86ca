"""Webhook signature vectors made by Stripe's official Python SDK, so that the
plugin's verifier is tested against code it does not share. Prints JSON; the
committed copy is tests/vectors/stripe-python-signatures.json, and tests/run
checks that the SDK still produces exactly it.

Each vector has the SDK's own verdict (`sdk`) and the plugin's (`expect`),
which is stricter where that is safe: a timestamp far in the future, a
duplicated `t`, and oversized headers are refused."""

import json
from unittest import mock

import stripe
from stripe import _webhook

NOW = 1764288000  # 2025-11-28T00:00:00Z
TOLERANCE = 300
SECRET = "whsec_vector_secret"
ROTATED = "whsec_vector_rotated"
PAYLOAD = json.dumps({"id": "evt_vector", "object": "event", "type": "payment_intent.succeeded",
                      "data": {"object": {"id": "pi_1", "amount": 1200, "metadata": {"invoice_id": "inv_1"}}}},
                     separators=(",", ":"))


def header(secret=SECRET, t=NOW, payload=PAYLOAD):
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=t)


def v1(secret=SECRET, t=NOW, payload=PAYLOAD):
    return header(secret, t, payload).split(",v1=")[1]


def sdk_verdict(payload, head, secrets):
    with mock.patch.object(_webhook.time, "time", return_value=NOW):
        errors = []
        for s in secrets:
            try:
                stripe.WebhookSignature.verify_header(payload, head, s, tolerance=TOLERANCE)
                return "ok"
            except stripe.SignatureVerificationError as e:
                errors.append(str(e).split(" (")[0].split(".")[0])
            except Exception as e:  # the SDK raises IndexError and the like on some headers
                errors.append(type(e).__name__)
        return errors[0] if errors else "no secret"


tampered = PAYLOAD.replace("1200", "1201")
cases = [
    ("valid", PAYLOAD, header(), [SECRET], "ok"),
    ("only the last of several v1 is valid", PAYLOAD, f"t={NOW},v1={'0' * 64},v1={'ab' * 32},v1={v1()}", [SECRET], "ok"),
    ("signed with the second of two secrets", PAYLOAD, header(ROTATED), [SECRET, ROTATED], "ok"),
    ("one v1 per secret during a roll", PAYLOAD, f"t={NOW},v1={v1(ROTATED)},v1={v1()}", [SECRET], "ok"),
    ("wrong secret", PAYLOAD, header("whsec_someone_else"), [SECRET], "no_valid_signature"),
    ("t exactly at the tolerance", PAYLOAD, header(t=NOW - TOLERANCE), [SECRET], "ok"),
    ("t just inside the tolerance", PAYLOAD, header(t=NOW - TOLERANCE + 1), [SECRET], "ok"),
    ("t just past the tolerance", PAYLOAD, header(t=NOW - TOLERANCE - 1), [SECRET], "too_old"),
    ("t in the future (the SDK accepts; the plugin does not)", PAYLOAD, header(t=NOW + 3600), [SECRET], "too_new"),
    ("body tampered by one byte", tampered, header(), [SECRET], "no_valid_signature"),
    ("missing t", PAYLOAD, f"v1={v1()}", [SECRET], "malformed_header"),
    ("empty v1", PAYLOAD, f"t={NOW},v1=", [SECRET], "no_valid_signature"),
    ("non-hex v1", PAYLOAD, f"t={NOW},v1={'zz' * 32}", [SECRET], "no_valid_signature"),
    ("duplicated t (the SDK takes the first; the plugin refuses)", PAYLOAD, f"t={NOW},t={NOW - 9999},v1={v1()}", [SECRET], "malformed_header"),
    ("whitespace after the comma", PAYLOAD, f"t={NOW}, v1={v1()}", [SECRET], "no_valid_signature"),
    ("unknown elements are ignored", PAYLOAD, f"t={NOW},v0=abc,x=1,v1={v1()}", [SECRET], "ok"),
    ("a huge header", PAYLOAD, f"t={NOW}," + ",".join(["v1=" + "ab" * 32] * 200) + f",v1={v1()}", [SECRET], "malformed_header"),
]

vectors = [
    {"name": name, "payload": payload, "header": head, "secrets": secrets, "now": NOW, "tolerance": TOLERANCE,
     "sdk": sdk_verdict(payload, head, secrets), "expect": expect}
    for name, payload, head, secrets, expect in cases
]
print(json.dumps({"generator": f"stripe-python {stripe.VERSION}", "vectors": vectors}, indent=1))
