"""Turns the webhook signature vectors of both official SDKs
(tests/vectors/*.json) into portable scenarios: one on-webhook call per
vector, with the vector's secrets as the merchant's signing keys and its
clock. Usage: vectors.py OUT_DIR VECTORS.json..."""
import json
import pathlib
import sys

FORMAT = "billing-stripe-plugin-scenario/1"
ACCOUNT = "acct_vectors"


def merchant(tolerance):
    return {
        "account-id": ACCOUNT,
        "auto-charge": False,
        "livemode": False,
        "notification-email": "finance@merchant.example",
        "pay-link-base": "https://billing.example.com",
        "retry-days": [1, 3, 5, 7],
        "show-payment-link": True,
        "stripe-api-base": "https://api.stripe.com",
        "stripe-receipts": False,
        "webhook-tolerance-secs": tolerance,
    }


def scenario(generator, v):
    request = {
        "headers": [["Content-Type", "application/json"], ["Stripe-Signature", v["header"]]],
        "body": list(v["payload"].encode()),
    }
    return {
        "format": FORMAT,
        "name": f"{generator}: {v['name']}",
        "keys": {ACCOUNT: {"webhook-signing": v["secrets"], "pay-link": ["plk_vectors"]}},
        "kv": {},
        "http": {},
        "calls": [{"handler": "on-webhook", "now-ms": v["now"] * 1000, "args": [merchant(v["tolerance"]), request]}],
    }


def main(out, *paths):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        doc = json.load(open(path))
        stem = pathlib.Path(path).stem
        for i, v in enumerate(doc["vectors"]):
            (out / f"{stem}-{i:02}.json").write_text(json.dumps(scenario(doc["generator"], v), indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
